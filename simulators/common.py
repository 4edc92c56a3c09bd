"""What every simulator shares: its FastAPI application's common parts (`/healthz`, validation errors
that never echo the input), its counts (`GET` and `DELETE /_sim/stats`), its logging and its start-up.

Each simulator runs as its own process (`python -m simulators.<name>`) under uvicorn, which stops it
on SIGINT or SIGTERM.
"""

import copy
import logging
import logging.config
import threading
from collections import Counter
from collections.abc import Callable, Hashable
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

import uvicorn
import uvicorn.config
from fastapi import APIRouter, FastAPI, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel

# In-flight calls may be sleeping in a latency fault or a backoff: they must not hold a restart up.
GRACEFUL_SHUTDOWN_SECONDS = 2
# Idle connections outlive the clients' own expiry (httpx's 5 s), as the service's API does: a server
# that closes at the same moment a client reuses the connection fails that request.
KEEP_ALIVE_SECONDS = 75


class Health(BaseModel):
    """`GET /healthz`."""

    status: str = "ok"


def create_app(title: str, lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]]) -> FastAPI:
    """A simulator's application, with `/healthz` and validation errors that name where and what only
    (FastAPI's default echoes the input, which would put a password in the answer)."""
    app = FastAPI(title=title, version="1", lifespan=lifespan)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        detail = [{"type": e["type"], "loc": e["loc"], "msg": e["msg"]} for e in exc.errors()]
        return JSONResponse({"detail": detail}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)

    @app.get("/healthz", tags=["simulator"])
    async def healthz() -> Health:
        return Health()

    return app


class Counts:
    """Counts a test reads at `GET /_sim/stats`, by name, from the start or the last `reset()`.

    Locked: a simulator counts on the event loop and in the thread pool alike. A subclass keeps more
    under the same lock (`_lock`) and clears it in `_reset`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[Hashable] = Counter()
        self.reset()

    def reset(self) -> None:
        """Start counting afresh."""
        with self._lock:
            self._counts.clear()
            self._reset()

    def _reset(self) -> None:
        """Clear what a subclass keeps besides the counts (called with the lock held)."""

    def add(self, name: Hashable) -> None:
        """Count one more `name`."""
        with self._lock:
            self._counts[name] += 1


class StatsSource(Protocol):
    """What `stats_routes` serves: the counts' view, and starting afresh."""

    def view(self) -> BaseModel: ...

    def reset(self) -> None: ...


def stats_routes(stats_of: Callable[[Request], StatsSource], view: type[BaseModel], what: str) -> APIRouter:
    """`GET /_sim/stats` (`view`, described by `what`) and `DELETE /_sim/stats` (start afresh)."""
    router = APIRouter(prefix="/_sim")

    @router.get("/stats", response_model=view, description=what)
    async def get_stats(request: Request) -> BaseModel:
        return stats_of(request).view()

    @router.delete("/stats", status_code=status.HTTP_204_NO_CONTENT)
    async def reset_stats(request: Request) -> Response:
        """Start counting afresh."""
        stats_of(request).reset()
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    return router


def start_logging(logger: str, *filters: type[logging.Filter]) -> dict[str, Any]:
    """Log as uvicorn does, with the simulator's own lines (`logger`) beside its access log and
    `filters` on every handler, from now on (the first line goes out before uvicorn starts); returns
    the configuration, for `serve`."""
    config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    for n, log_filter in enumerate(filters):
        config.setdefault("filters", {})[f"filter{n}"] = {"()": log_filter}
        for handler in config["handlers"].values():
            handler.setdefault("filters", []).append(f"filter{n}")
    config["loggers"][logger] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    logging.config.dictConfig(config)
    return config


def serve(app: FastAPI, host: str, port: int, logging_config: dict[str, Any]) -> None:
    """Serve `app` on `host:port` until SIGINT or SIGTERM (uvicorn's own handling)."""
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_config=logging_config,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
    )
