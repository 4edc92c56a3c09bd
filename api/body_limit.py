"""A request body limit, enforced before the body is read or the caller's key is checked.

A declared `Content-Length` over the limit is answered `413` at once, before the app sees the
request; a body without one (chunked) is counted as it streams in and refused as soon as it passes
the limit, so no handler ever holds more than the limit in memory. A route may have a limit of its own
(a bulk import's file), by its exact path. FastAPI reads the body before it
resolves a route's dependencies, the key check among them, so an oversized body is refused first.
"""

from collections.abc import Mapping

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.problems import problem_response

TITLE = "Content Too Large"


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than {limit} bytes")


def _too_large(detail: str) -> JSONResponse:
    return problem_response(413, TITLE, detail, {"Connection": "close"})


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int, by_path: Mapping[str, int] | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.by_path = dict(by_path or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.by_path.get(scope["path"], self.max_bytes)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await _too_large(BodyTooLarge(limit).detail)(scope, receive, send)
            return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            # Read outside a route (no handler translated it): answer here, if nothing was sent yet.
            if started:
                raise
            await _too_large(BodyTooLarge(limit).detail)(scope, receive, send)


async def _on_too_large(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, BodyTooLarge)
    return _too_large(exc.detail)


def install_body_limit(app: FastAPI, max_bytes: int, by_path: Mapping[str, int] | None = None) -> None:
    """Refuse request bodies over `max_bytes` (over `by_path[path]` for the paths named) with a `413`
    problem document."""
    app.add_middleware(BodyLimitMiddleware, max_bytes=max_bytes, by_path=by_path)
    app.add_exception_handler(BodyTooLarge, _on_too_large)
