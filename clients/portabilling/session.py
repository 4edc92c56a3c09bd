"""One PortaBilling API session shared by every call of a client: logged in on first use, renewed a
little before it expires and when PortaBilling refuses it (any of the faults of a session dropped early,
`clients.portabilling.errors.SESSION_FAULTS`: unused for 24 h, revoked, or PortaBilling restarted), one
login at a time.

PortaBilling's JSON API takes `Authorization: Bearer <access_token>` from `Session/login`, valid until
its `expires_at` ("Retrieving data from PortaBilling"). Calls that need a token while none is valid
join the one login in flight rather than each logging in: fifty calls at start-up, or fifty calls
refused together after PortaBilling dropped the session, cause one login, and when that login fails
they all fail with its error at once instead of queueing for a login each.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from contracts.portabilling import LoginAnswer

log = logging.getLogger(__name__)

# Renew this long before PortaBilling's expiry, or a quarter of the session's life when that is shorter.
RENEW_EARLY_SECONDS = 60.0


class Session:
    """The current access token; `login` asks PortaBilling for a new one."""

    def __init__(self, login: Callable[[], Awaitable[LoginAnswer]]) -> None:
        self._login = login
        self._token: str | None = None
        self._renew_at = 0.0  # time.monotonic(): local clock jumps do not move it
        self._in_flight: asyncio.Task[str] | None = None

    async def token(self) -> str:
        """A token valid for a while yet, logging in first when there is none."""
        if self._token is not None and time.monotonic() < self._renew_at:
            return self._token
        return await self._shared_login()

    async def renew(self, refused: str) -> str:
        """A token other than `refused` (the one PortaBilling just refused): a new login, unless a call
        refused with the same token has logged in already."""
        if self._token is not None and self._token != refused and time.monotonic() < self._renew_at:
            return self._token
        self._token = None
        return await self._shared_login()

    async def close(self) -> None:
        """Stop a login in flight."""
        task, self._in_flight = self._in_flight, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task

    async def _shared_login(self) -> str:
        # No await between the check and the start: one task logs in, every caller meanwhile joins it.
        if self._in_flight is None:
            self._in_flight = asyncio.create_task(self._log_in())
            self._in_flight.add_done_callback(self._finished)
        # A caller cancelled while waiting does not cancel the login the others wait for.
        return await asyncio.shield(self._in_flight)

    async def _log_in(self) -> str:
        answer = await self._login()
        lifetime = (answer.expires_at - datetime.now(UTC)).total_seconds()
        early = min(RENEW_EARLY_SECONDS, max(lifetime, 0.0) / 4)
        self._token = answer.access_token.get_secret_value()
        self._renew_at = time.monotonic() + lifetime - early
        log.info("PortaBilling session opened (renewed in %.0f s)", max(lifetime - early, 0.0))
        return self._token

    def _finished(self, task: asyncio.Task[str]) -> None:
        if self._in_flight is task:
            self._in_flight = None
        if not task.cancelled():
            task.exception()  # retrieved: every waiter has it already (or none is left to care)
