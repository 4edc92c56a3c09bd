"""The codec server on a real socket, for tests."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn

from codec_server.app import create_app
from core.settings import Settings


@asynccontextmanager
async def serving_codec_server(settings: Settings) -> AsyncIterator[str]:
    """`settings`' codec server under uvicorn on its configured port; yields its base URL."""
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=settings.codec_server_port, log_level="warning", lifespan="off"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{settings.codec_server_port}"
    finally:
        server.should_exit = True
        await task
