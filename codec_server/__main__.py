"""`python -m codec_server`: serve the codec server (loopback by default) with uvicorn."""

import uvicorn

from codec_server.app import create_app
from core.logging import configure_logging
from core.settings import get_settings


def main() -> None:
    settings = get_settings()
    configure_logging(settings.log)
    codec = settings.codec_server
    app = create_app(codec, settings.temporal.payload_keys, settings.environment)
    uvicorn.run(app, host=codec.host, port=codec.port, log_config=None)


if __name__ == "__main__":
    main()
