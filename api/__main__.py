"""`python -m api`: serve the API with uvicorn on the configured host and port."""

import uvicorn

from api.app import create_app
from core.settings import get_settings


def main() -> None:
    settings = get_settings()
    uvicorn.run(create_app(settings), host=settings.api_host, port=settings.api_port, log_level="info")


if __name__ == "__main__":
    main()
