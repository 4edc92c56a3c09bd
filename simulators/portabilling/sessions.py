"""The JSON API's session tokens ("Retrieving data from PortaBilling": `Session/login` answers an
access token valid until `expires_at`; every other call carries it as a bearer token)."""

import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta


@dataclass(frozen=True)
class Issued:
    """What `Session/login` answers."""

    access_token: str
    session_id: str
    refresh_token: str
    expires_at: datetime


class Sessions:
    """The tokens issued and still valid; `revoke_all` drops them (PortaBilling restarted, an admin
    ended the sessions), `refuse_all` makes every token check fail (a user without API access)."""

    def __init__(self, ttl_seconds: float) -> None:
        self._ttl = ttl_seconds
        self._valid_until: dict[str, float] = {}  # token → time.monotonic() deadline
        self.refuse_all = False

    def issue(self) -> Issued:
        token = secrets.token_urlsafe(24)
        self._valid_until[token] = time.monotonic() + self._ttl
        expires = datetime.now(UTC) + timedelta(seconds=self._ttl)
        return Issued(token, secrets.token_hex(16), secrets.token_urlsafe(24), expires)

    def valid(self, token: str | None) -> bool:
        if token is None or self.refuse_all:
            return False
        deadline = self._valid_until.get(token)
        if deadline is None:
            return False
        if time.monotonic() >= deadline:
            del self._valid_until[token]
            return False
        return True

    def revoke_all(self) -> None:
        self._valid_until.clear()
