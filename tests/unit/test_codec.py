"""Encrypted payloads: the codec and key rotation, the settings that refuse development keys, and who the
codec server lets decode without signing in (the app called in-process, as from a given peer)."""

from typing import Any

import httpx
import pytest
from pydantic import SecretStr, ValidationError

from codec_server.app import create_app
from codec_server.auth import is_loopback
from core.codec import EncryptionCodec
from core.crypto import KeyRing, UnknownKeyError
from core.settings import DEV_PAYLOAD_KEYS, Settings
from core.temporal import data_converter
from tests.support.codec_server import (
    NEW,
    OLD,
    UI,
    UI_HEADERS,
    UI_PREFLIGHT,
    as_json,
    codec_settings,
    payload_of,
    plain_values,
)
from tests.support.production import PRODUCTION


async def test_payloads_are_stored_encrypted_under_a_named_key() -> None:
    payload = await payload_of(f"{NEW},{OLD}", {"order_id": "ord-secret-marker"})
    assert payload.metadata["encoding"] == b"binary/encrypted"
    assert payload.metadata["encryption-key-id"] == b"new"
    assert b"ord-secret-marker" not in payload.data
    [value] = await data_converter(codec_settings().temporal).decode([payload], [dict])
    assert value == {"order_id": "ord-secret-marker"}


async def test_an_old_key_still_decodes_after_rotation_and_a_retired_one_fails_clearly() -> None:
    before_rotation = await payload_of(OLD, "written under the old key")
    after = data_converter(codec_settings(payload_keys=f"{NEW},{OLD}").temporal)
    assert await after.decode([before_rotation], [str]) == ["written under the old key"]
    # New data goes under the new key only.
    assert (await after.encode(["x"]))[0].metadata["encryption-key-id"] == b"new"

    retired = EncryptionCodec(KeyRing.parse(NEW))
    with pytest.raises(UnknownKeyError, match="'old'"):
        await retired.decode([before_rotation])


@pytest.mark.parametrize(
    ("name", "overrides", "peer"),
    [
        ("production", PRODUCTION | {"payload_keys": NEW}, "127.0.0.1"),
        ("test", {"environment": "test"}, "127.0.0.1"),
        (
            "development, bound beyond loopback",
            {"environment": "development", "codec_server_host": "0.0.0.0"},
            "127.0.0.1",
        ),
        ("development, a caller from another machine", {"environment": "development"}, "192.0.2.7"),
    ],
)
async def test_without_sign_in_the_ui_is_refused_outside_local_development(
    name: str, overrides: dict[str, Any], peer: str
) -> None:
    payload = await payload_of(NEW, "still hidden")
    settings = codec_settings(**overrides)
    bearer = {"Authorization": f"Bearer {settings.codec_server.token.get_secret_value()}"}
    app = create_app(settings.codec_server, settings.temporal.payload_keys, settings.environment)
    transport = httpx.ASGITransport(app=app, client=(peer, 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8234") as ui:
        preflight = await ui.options("/decode", headers=UI_PREFLIGHT)
        refused = await ui.post("/decode", json=as_json(payload), headers=UI_HEADERS)
        signed_in = await ui.post("/decode", json=as_json(payload), headers=UI_HEADERS | bearer)
    assert preflight.status_code == 200  # the UI may ask, and reads the refusal
    assert refused.status_code == 401 and b"still hidden" not in refused.content, name
    assert refused.headers["access-control-allow-origin"] == UI
    # The token still works there: the sign-in is exactly as before.
    assert signed_in.status_code == 200 and plain_values(signed_in.json()) == [b'"still hidden"'], name


def test_development_keys_and_tokens_are_refused_in_production() -> None:
    Settings(_env_file=None, **PRODUCTION)  # all set: accepted
    for name, dev in (("payload_keys", f"{NEW},{DEV_PAYLOAD_KEYS}"), ("codec_server_token", None)):
        values: dict[str, Any] = dict(PRODUCTION)
        if dev is None:
            values.pop(name)
        else:
            values[name] = dev
        with pytest.raises(ValidationError, match=name.upper()):
            Settings(_env_file=None, **values)


def test_a_malformed_key_ring_is_refused_without_echoing_the_key() -> None:
    with pytest.raises(ValidationError, match="PAYLOAD_KEYS") as err:
        Settings(_env_file=None, payload_keys=SecretStr("k1:c2hvcnQta2V5"))
    assert "c2hvcnQta2V5" not in str(err.value)


def test_loopback_means_this_machine_only() -> None:
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost", "LOCALHOST"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "192.0.2.7", "rebind.example", "localhost.evil", ""))
