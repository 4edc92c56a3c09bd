"""Who may use the codec server: a caller with `Authorization: Bearer <CODEC_SERVER_TOKEN>` (the
Temporal CLI's `--codec-auth`, or the UI's "pass access token" behind HTTPS), or a browser holding
the session cookie that `POST /login` hands out for that token (the UI's "include cross-origin
credentials"). The cookie carries an expiry and an HMAC keyed by the token, never the token itself,
so changing the token ends every session."""

import hashlib
import hmac
import time

from fastapi import Request

SESSION_COOKIE = "codec_session"


def token_matches(given: str, token: str) -> bool:
    return hmac.compare_digest(given.encode(), token.encode())


def _signature(token: str, expires: int) -> str:
    return hmac.new(token.encode(), f"codec-session:{expires}".encode(), hashlib.sha256).hexdigest()


def new_session(token: str, lifetime_seconds: int) -> str:
    """A cookie value good until `lifetime_seconds` from now."""
    expires = int(time.time()) + lifetime_seconds
    return f"{expires}.{_signature(token, expires)}"


def session_valid(value: str, token: str) -> bool:
    expires_text, _, signature = value.partition(".")
    if not expires_text.isdigit() or int(expires_text) < time.time():
        return False
    return hmac.compare_digest(signature, _signature(token, int(expires_text)))


def authorised(request: Request, token: str) -> bool:
    """Whether the request carries the bearer token or a live session cookie."""
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials and token_matches(credentials.strip(), token):
        return True
    cookie = request.cookies.get(SESSION_COOKIE)
    return cookie is not None and session_valid(cookie, token)
