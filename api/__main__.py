"""`python -m api`: serve the API with uvicorn on the configured host and port."""

import uvicorn

from api.app import create_app
from core.logging import configure_logging
from core.memory import freeze_startup_objects
from core.settings import get_settings


def main() -> None:
    settings = get_settings()
    configure_logging(settings.log)
    app = create_app(settings)
    freeze_startup_objects()
    # log_config=None: uvicorn's lines go through the structured handler configured above.
    uvicorn.run(
        app,
        host=settings.api.host,
        port=settings.api.port,
        timeout_keep_alive=settings.api.keep_alive_seconds,
        log_config=None,
    )


if __name__ == "__main__":
    main()
