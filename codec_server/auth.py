"""Who may use the codec server: a caller with `Authorization: Bearer <CODEC_SERVER_TOKEN>` (the
Temporal CLI's `--codec-auth`, or the UI's "pass access token" behind HTTPS), or a browser holding
the session cookie that `POST /login` hands out for that token (the UI's "include cross-origin
credentials"). The cookie carries an expiry and an HMAC keyed by the token, never the token itself,
so changing the token ends every session.

In development only, a codec server bound to loopback also decodes for any caller on this machine
without sign-in (`open_on_loopback`), so `make run`'s UI shows payloads at once: its keys are the
published development keys, which protect nothing."""

import hashlib
import hmac
import ipaddress
import math
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


def is_loopback(host: str) -> bool:
    """Whether `host` (an address or `localhost`, IPv6 with or without brackets) is this machine."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def open_on_loopback(environment: str, bind_host: str) -> bool:
    """Whether the codec server may skip sign-in for local callers: in development, bound to loopback."""
    return environment == "development" and is_loopback(bind_host)


def local_caller(request: Request) -> bool:
    """A request from this machine, addressed to a loopback name: the peer is loopback, and so is the
    Host header, so a web page on another name that resolves to 127.0.0.1 (DNS rebinding) is refused."""
    peer = request.client.host if request.client is not None else ""
    host = request.url.hostname or ""
    return is_loopback(peer) and is_loopback(host)


class LoginThrottle:
    """Sign-in attempts per client address: a bucket of `limit` attempts that refills over `window_seconds`
    (so `limit` at once, then `limit` a window). Guessing the token, or making the server read and hash
    bodies, gets no faster than that from one address. Held in the process, for at most `max_addresses`
    addresses (the least recently seen are forgotten first: forgetting one only gives it a fresh bucket)."""

    def __init__(self, limit: int, window_seconds: float, max_addresses: int = 10_000) -> None:
        self._limit = limit
        self._rate = limit / window_seconds  # attempts regained per second
        self._max = max_addresses
        self._buckets: dict[str, tuple[float, float]] = {}  # address → (attempts left, when counted)

    def take(self, address: str, now: float | None = None) -> float:
        """Count an attempt from `address`: 0 when it may go ahead, else the seconds until it may."""
        now = time.monotonic() if now is None else now
        left, then = self._buckets.pop(address, (float(self._limit), now))
        left = min(float(self._limit), left + (now - then) * self._rate)
        if left >= 1:
            left -= 1
            wait = 0.0
        else:
            wait = (1 - left) / self._rate
        self._buckets[address] = (left, now)  # re-inserted: the dict's order is least recently seen first
        while len(self._buckets) > self._max:
            del self._buckets[next(iter(self._buckets))]
        return wait


def retry_after(wait: float) -> str:
    """A `Retry-After` value (whole seconds, at least 1) for a wait of `wait` seconds."""
    return str(max(1, math.ceil(wait)))
