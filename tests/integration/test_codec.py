"""Encrypted payloads: the codec, key rotation, and the codec server the Temporal UI decodes with,
served on a real socket and called as the UI's browser calls it."""

import base64
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from google.protobuf import json_format
from pydantic import SecretStr, ValidationError
from temporalio.api.common.v1 import Payload

from codec_server.app import create_app
from codec_server.auth import SESSION_COOKIE, is_loopback
from core.codec import EncryptionCodec
from core.crypto import KeyRing, UnknownKeyError
from core.settings import DEV_PAYLOAD_KEYS, Settings
from core.temporal import data_converter
from tests.support.codec_server import serving_codec_server
from tests.support.net import free_port
from tests.support.production import PRODUCTION

OLD = "old:" + base64.urlsafe_b64encode(b"o" * 32).decode()
NEW = "new:" + base64.urlsafe_b64encode(b"n" * 32).decode()
TOKEN = "test-codec-token"
UI = "http://127.0.0.1:8233"
# What the UI's browser sends: a preflight, then the decode call itself, with no credentials.
UI_PREFLIGHT = {
    "Origin": UI,
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "content-type,x-namespace",
}
UI_HEADERS = {"Origin": UI, "X-Namespace": "default"}


def _settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "environment": "test",
        "payload_keys": f"{NEW},{OLD}",
        "codec_server_token": TOKEN,
        "codec_server_port": free_port(),
    }
    return Settings(_env_file=None, **(values | overrides))


async def _encoded(keys: str, value: object) -> Payload:
    """`value` as the project's data converter stores it under `keys`."""
    converter = data_converter(_settings(payload_keys=keys))
    [payload] = await converter.encode([value])
    return payload


def _as_json(*payloads: Payload) -> dict[str, Any]:
    return {"payloads": [json_format.MessageToDict(p) for p in payloads]}


def _plain(body: dict[str, Any]) -> list[bytes]:
    return [base64.b64decode(p["data"]) for p in body["payloads"]]


@pytest.fixture(scope="module")
async def codec_url() -> AsyncIterator[str]:
    async with serving_codec_server(_settings()) as url:
        yield url


async def test_payloads_are_stored_encrypted_under_a_named_key() -> None:
    payload = await _encoded(f"{NEW},{OLD}", {"order_id": "ord-secret-marker"})
    assert payload.metadata["encoding"] == b"binary/encrypted"
    assert payload.metadata["encryption-key-id"] == b"new"
    assert b"ord-secret-marker" not in payload.data
    [value] = await data_converter(_settings()).decode([payload], [dict])
    assert value == {"order_id": "ord-secret-marker"}


async def test_an_old_key_still_decodes_after_rotation_and_a_retired_one_fails_clearly() -> None:
    before_rotation = await _encoded(OLD, "written under the old key")
    after = data_converter(_settings(payload_keys=f"{NEW},{OLD}"))
    assert await after.decode([before_rotation], [str]) == ["written under the old key"]
    # New data goes under the new key only.
    assert (await after.encode(["x"]))[0].metadata["encryption-key-id"] == b"new"

    retired = EncryptionCodec(KeyRing.parse(NEW))
    with pytest.raises(UnknownKeyError, match="'old'"):
        await retired.decode([before_rotation])


async def test_the_codec_server_refuses_a_call_without_credentials(codec_url: str) -> None:
    payload = await _encoded(OLD, "hidden")
    async with httpx.AsyncClient(base_url=codec_url) as http:
        anonymous = await http.post("/decode", json=_as_json(payload), headers={"Origin": UI})
        wrong = await http.post("/decode", json=_as_json(payload), headers={"Authorization": "Bearer nope"})
        encode = await http.post("/encode", json=_as_json(payload))
    assert anonymous.status_code == 401 and wrong.status_code == 401 and encode.status_code == 401
    assert anonymous.headers["content-type"] == "application/problem+json"
    assert b"hidden" not in anonymous.content
    # The UI can read the refusal (CORS headers on errors too) and tell the operator.
    assert anonymous.headers["access-control-allow-origin"] == UI


async def test_the_codec_server_decodes_for_a_bearer_token_old_keys_included(codec_url: str) -> None:
    payloads = [await _encoded(OLD, "old secret"), await _encoded(NEW, "new secret")]
    async with httpx.AsyncClient(base_url=codec_url, headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        decoded = await http.post("/decode", json=_as_json(*payloads), headers={"X-Namespace": "default"})
        assert decoded.status_code == 200
        assert _plain(decoded.json()) == [b'"old secret"', b'"new secret"']
        assert decoded.json()["payloads"][0]["metadata"]["encoding"] == base64.b64encode(b"json/plain").decode()

        # /encode is the inverse, under the current key: what the UI sends when an operator signals.
        plain = decoded.json()
        encoded = await http.post("/encode", json=plain)
        assert [p["metadata"]["encryption-key-id"] for p in encoded.json()["payloads"]] == ["bmV3"] * 2  # "new"
        again = await http.post("/decode", json=encoded.json())
        assert _plain(again.json()) == _plain(plain)


async def test_bad_bodies_and_unknown_keys_are_4xx_problems(codec_url: str) -> None:
    unknown = await _encoded("gone:" + base64.urlsafe_b64encode(b"g" * 32).decode(), "lost")
    async with httpx.AsyncClient(base_url=codec_url, headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        not_json = await http.post("/decode", content=b"{not json", headers={"Content-Type": "application/json"})
        lost = await http.post("/decode", json=_as_json(unknown))
    assert not_json.status_code == 400
    assert lost.status_code == 422 and "'gone'" in lost.json()["detail"]


async def test_cors_preflight_answers_only_the_ui_origins(codec_url: str) -> None:
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type,x-namespace"}
    async with httpx.AsyncClient(base_url=codec_url) as http:
        ui = await http.options("/decode", headers={"Origin": UI, **preflight})
        other = await http.options("/decode", headers={"Origin": "http://evil.example", **preflight})
        simple = await http.post("/decode", json={"payloads": []}, headers={"Origin": "http://evil.example"})
    assert ui.status_code == 200
    assert ui.headers["access-control-allow-origin"] == UI
    assert ui.headers["access-control-allow-credentials"] == "true"
    assert "x-namespace" in ui.headers["access-control-allow-headers"].lower()
    assert other.status_code == 400 and "access-control-allow-origin" not in other.headers
    assert "access-control-allow-origin" not in simple.headers


async def test_a_browser_session_from_login_decodes_and_a_forged_cookie_does_not(codec_url: str) -> None:
    payload = await _encoded(NEW, "for operators only")
    async with httpx.AsyncClient(base_url=codec_url) as browser:
        assert (await browser.get("/login")).status_code == 200
        refused = await browser.post("/login", data={"token": "guess"})
        assert refused.status_code == 401 and SESSION_COOKIE not in browser.cookies
        signed_in = await browser.post("/login", data={"token": TOKEN})
        assert signed_in.status_code == 200
        cookie = signed_in.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie and TOKEN not in cookie
        decoded = await browser.post("/decode", json=_as_json(payload), headers={"Origin": UI})
        assert decoded.status_code == 200 and _plain(decoded.json()) == [b'"for operators only"']
        assert decoded.headers["access-control-allow-credentials"] == "true"

        expires = browser.cookies[SESSION_COOKIE].split(".")[0]
        browser.cookies.set(SESSION_COOKIE, f"{expires}.{'0' * 64}")
        assert (await browser.post("/decode", json=_as_json(payload))).status_code == 401
        browser.cookies.set(SESSION_COOKIE, f"1.{'0' * 64}")  # long expired
        assert (await browser.post("/decode", json=_as_json(payload))).status_code == 401


async def test_in_development_the_ui_decodes_from_loopback_without_sign_in() -> None:
    payload = await _encoded(NEW, "shown at once")
    async with serving_codec_server(_settings(environment="development")) as url, httpx.AsyncClient(base_url=url) as ui:
        preflight = await ui.options("/decode", headers=UI_PREFLIGHT)
        decoded = await ui.post("/decode", json=_as_json(payload), headers=UI_HEADERS)
        # A page on another name that resolves to 127.0.0.1 (DNS rebinding) still has to sign in.
        rebound = await ui.post("/decode", json=_as_json(payload), headers={"Host": "rebind.example:8234"})
    assert preflight.status_code == 200 and preflight.headers["access-control-allow-origin"] == UI
    assert decoded.status_code == 200 and _plain(decoded.json()) == [b'"shown at once"']
    assert decoded.headers["access-control-allow-origin"] == UI
    assert rebound.status_code == 401


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
    payload = await _encoded(NEW, "still hidden")
    settings = _settings(**overrides)
    bearer = {"Authorization": f"Bearer {settings.codec_server_token.get_secret_value()}"}
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app, client=(peer, 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8234") as ui:
        preflight = await ui.options("/decode", headers=UI_PREFLIGHT)
        refused = await ui.post("/decode", json=_as_json(payload), headers=UI_HEADERS)
        signed_in = await ui.post("/decode", json=_as_json(payload), headers=UI_HEADERS | bearer)
    assert preflight.status_code == 200  # the UI may ask, and reads the refusal
    assert refused.status_code == 401 and b"still hidden" not in refused.content, name
    assert refused.headers["access-control-allow-origin"] == UI
    # The token still works there: the sign-in is exactly as before.
    assert signed_in.status_code == 200 and _plain(signed_in.json()) == [b'"still hidden"'], name


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
