"""The codec server on a real socket, for tests, and what tests of the codec share: key rings, settings,
payloads encoded as the data converter stores them, and the calls the Temporal UI's browser makes."""

import base64
from contextlib import AbstractAsyncContextManager
from typing import Any

from google.protobuf import json_format
from temporalio.api.common.v1 import Payload

from codec_server.app import create_app
from core.settings import Settings
from core.temporal import data_converter
from tests.support.net import free_port
from tests.support.stack import serving

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


def serving_codec_server(settings: Settings) -> AbstractAsyncContextManager[str]:
    """`settings`' codec server under uvicorn on its configured port; yields its base URL."""
    return serving(
        create_app(settings.codec_server, settings.temporal.payload_keys, settings.environment),
        settings.codec_server.port,
        lifespan="off",
    )


def codec_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "environment": "test",
        "payload_keys": f"{NEW},{OLD}",
        "codec_server_token": TOKEN,
        "codec_server_port": free_port(),
    }
    return Settings(_env_file=None, **(values | overrides))


async def payload_of(keys: str, value: object) -> Payload:
    """`value` as the project's data converter stores it under `keys`."""
    converter = data_converter(codec_settings(payload_keys=keys).temporal)
    [payload] = await converter.encode([value])
    return payload


def as_json(*payloads: Payload) -> dict[str, Any]:
    return {"payloads": [json_format.MessageToDict(p) for p in payloads]}


def plain_values(body: dict[str, Any]) -> list[bytes]:
    return [base64.b64decode(p["data"]) for p in body["payloads"]]
