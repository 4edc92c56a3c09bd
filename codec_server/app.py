"""The codec server's HTTP surface: `POST /decode` and `POST /encode` in the Temporal UI's JSON
format (`{"payloads": [{"metadata": {k: base64}, "data": base64}]}`), `GET|POST /login` and
`POST /logout` for a browser session, and `GET /healthz`."""

import html
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated
from urllib.parse import parse_qs

from fastapi import Depends, FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse, JSONResponse, Response
from google.protobuf import json_format
from pydantic import SecretStr
from temporalio.api.common.v1 import Payload, Payloads

from codec_server.auth import (
    SESSION_COOKIE,
    LoginThrottle,
    authorised,
    local_caller,
    new_session,
    open_on_loopback,
    retry_after,
    token_matches,
)
from core.codec import EncryptionCodec
from core.crypto import DecryptionError, KeyRing, UnknownKeyError
from core.settings import CodecServerSettings

log = logging.getLogger("codec_server")
Transform = Callable[[Sequence[Payload]], Awaitable[list[Payload]]]


class Unauthorised(Exception):
    pass


def _problem(status: int, title: str, detail: str) -> JSONResponse:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    return JSONResponse(body, status_code=status, media_type="application/problem+json")


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(
        f"<!doctype html><html><head><title>{title}</title></head><body><h1>{title}</h1>{body}</body></html>",
        status_code=status,
    )


# A sign-in form holds one token: anything larger is not one, and is not read.
LOGIN_MAX_BYTES = 4 * 1024

LOGIN_FORM = """<form method="post" action="/login">
<label>Codec server token <input type="password" name="token" autocomplete="current-password" required></label>
<button type="submit">Sign in</button></form>"""


def create_app(settings: CodecServerSettings, payload_keys: SecretStr, environment: str) -> FastAPI:
    """The codec server for `settings` (its token and the UI origins it answers), decoding with the
    `payload_keys` ring (PAYLOAD_KEYS); it skips sign-in on loopback in the development `environment`."""
    codec = EncryptionCodec(KeyRing.parse(payload_keys.get_secret_value()))
    token = settings.token.get_secret_value()
    lifetime = settings.session_hours * 3600
    throttle = LoginThrottle(settings.login_limit, settings.login_window_seconds)
    open_locally = open_on_loopback(environment, settings.host)
    if open_locally:
        log.warning("development: decoding for callers on this machine without sign-in")

    def require_operator(request: Request) -> None:
        if open_locally and local_caller(request):
            return
        if not authorised(request, token):
            raise Unauthorised

    Operator = Annotated[None, Depends(require_operator)]
    app = FastAPI(title="Temporal codec server", version="1", docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(Unauthorised)
    async def unauthorised(request: Request, exc: Unauthorised) -> JSONResponse:
        response = _problem(401, "Unauthorized", "a codec server token (bearer) or a /login session is required")
        response.headers["WWW-Authenticate"] = 'Bearer realm="codec"'
        return response

    async def apply(transform: Transform, request: Request) -> Response:
        try:
            payloads = json_format.Parse(await request.body(), Payloads(), ignore_unknown_fields=True)
        except (json_format.ParseError, UnicodeDecodeError) as err:
            return _problem(400, "Bad Request", f"not a JSON Payloads message: {err}")
        try:
            result = await transform(payloads.payloads)
        except (UnknownKeyError, DecryptionError) as err:
            return _problem(422, "Unprocessable Content", str(err))
        # Never the payloads themselves: the count and the namespace are enough to follow usage.
        log.info("%s: %d payloads, namespace %s", request.url.path, len(result), request.headers.get("x-namespace"))
        return JSONResponse({"payloads": [json_format.MessageToDict(p) for p in result]})

    @app.post("/decode")
    async def decode(request: Request, _: Operator) -> Response:
        return await apply(codec.decode, request)

    @app.post("/encode")
    async def encode(request: Request, _: Operator) -> Response:
        return await apply(codec.encode, request)

    @app.get("/login", response_class=HTMLResponse)
    async def login_form() -> HTMLResponse:
        return _page("Codec server", LOGIN_FORM)

    async def login_body(request: Request) -> bytes | None:
        """The form, or None when it is larger than LOGIN_MAX_BYTES (read no further than that)."""
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > LOGIN_MAX_BYTES:
            return None
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > LOGIN_MAX_BYTES:
                return None
        return body

    @app.post("/login", response_class=HTMLResponse)
    async def login(request: Request) -> HTMLResponse:
        # Counted before anything is read: a caller past its attempts costs one dictionary lookup.
        wait = throttle.take(request.client.host if request.client is not None else "")
        if wait:
            refused = _page("Codec server", "<p>Too many sign-in attempts; try again shortly.</p>", status=429)
            refused.headers["Retry-After"] = retry_after(wait)
            return refused
        body = await login_body(request)
        if body is None:
            return _page("Codec server", "<p>The sign-in form is larger than a token.</p>", status=413)
        # A form post, not `?token=`: a query string would end up in the browser's history and logs.
        given = parse_qs(body.decode(errors="replace")).get("token", [""])[0]
        if not given or not token_matches(given, token):
            return _page("Codec server", "<p>Wrong token.</p>" + LOGIN_FORM, status=401)
        origins = ", ".join(html.escape(o) for o in settings.origins)
        response = _page(
            "Signed in",
            f"<p>This browser may now decode payloads in the Temporal UI ({origins}) for "
            f"{settings.session_hours} hours. In the UI's codec server settings, use this "
            "address with <em>Include cross-origin credentials</em> ticked.</p>",
        )
        response.set_cookie(
            SESSION_COOKIE,
            new_session(token, lifetime),
            max_age=lifetime,
            httponly=True,
            samesite="strict",  # the UI at 127.0.0.1:8233 is the same site as 127.0.0.1:8234
            secure=request.url.scheme == "https",
        )
        return response

    @app.post("/logout", response_class=HTMLResponse)
    async def logout() -> HTMLResponse:
        response = _page("Signed out", "<p>This browser can no longer decode payloads.</p>")
        response.delete_cookie(SESSION_COOKIE, httponly=True, samesite="strict")
        return response

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    # Outermost, so 401s and problems carry the CORS headers too and the UI can read them;
    # preflights (which never carry credentials) are answered here, before any authentication.
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.origins,
        allow_credentials=True,
        allow_methods=["POST"],
        allow_headers=["content-type", "x-namespace", "authorization"],
        max_age=600,
    )
    return app
