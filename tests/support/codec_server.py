"""The codec server on a real socket, for tests."""

from contextlib import AbstractAsyncContextManager

from codec_server.app import create_app
from core.settings import Settings
from tests.support.stack import serving


def serving_codec_server(settings: Settings) -> AbstractAsyncContextManager[str]:
    """`settings`' codec server under uvicorn on its configured port; yields its base URL."""
    return serving(
        create_app(settings.codec_server, settings.temporal.payload_keys, settings.environment),
        settings.codec_server.port,
        lifespan="off",
    )
