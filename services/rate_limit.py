"""Sliding-window rate limits shared by every API process: kept in the billing database, or in Redis.

No count lives in one process's memory, so two API processes behind a load balancer give a caller
no more tries than one. Each hit is kept with the moment it leaves its own window; the clean-up
removes only hits past that moment, so it never forgets a window that has not passed, whatever the
window of the request that triggers it. Time is wall-clock seconds (every process reads the same
clock, as NTP keeps it), injectable for tests.
"""

import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, cast

from redis.asyncio import Redis
from sqlalchemy import delete, func
from sqlmodel import col, select

from billing.db import SessionMaker, snapshot, transaction
from billing.models import RateLimitHit

Clock = Callable[[], float]


@dataclass(frozen=True)
class Verdict:
    """A hit's outcome: counted (with a token to take it back), or refused with the seconds to wait."""

    retry_after: int | None = None
    token: str | None = None

    @property
    def allowed(self) -> bool:
        return self.retry_after is None


@dataclass(frozen=True)
class Tally:
    """The hits in a window, and when the oldest of them leaves it (None: there are none)."""

    hits: int
    retry_after: int | None


class RateLimiter(Protocol):
    async def hit(self, key: str, limit: int, window: int) -> Verdict:
        """Count one hit for `key` unless `limit` hits are already in the last `window` seconds."""
        ...

    async def take_back(self, key: str, token: str) -> None:
        """Uncount a hit (the request turned out not to be one the limit is about)."""
        ...

    async def count(self, key: str, window: int) -> Tally:
        """The hits for `key` in the last `window` seconds, without counting one."""
        ...

    async def aclose(self) -> None: ...


def _wait(oldest: float, window: int, now: float) -> int:
    return max(1, math.ceil(oldest + window - now))


class DatabaseRateLimiter:
    """Hits as rows of `rate_limit_hit`; a key's hits are counted and added under one lock."""

    def __init__(self, sessions: SessionMaker, *, clock: Clock = time.time, clean_every: int = 200) -> None:
        self._sessions = sessions
        self._clock = clock
        self._clean_every = clean_every
        self._hits = 0

    async def hit(self, key: str, limit: int, window: int) -> Verdict:
        now = self._clock()
        async with transaction(self._sessions) as session:
            connection = await session.connection()
            if connection.dialect.name == "postgresql":
                # One key's hits in turn across processes (SQLite's write lock already does this).
                await session.exec(select(func.pg_advisory_xact_lock(func.hashtextextended(key, 0))))
            live = (col(RateLimitHit.key) == key) & (col(RateLimitHit.at) > now - window)
            count, oldest = (await session.exec(select(func.count(), func.min(col(RateLimitHit.at))).where(live))).one()
            if count >= limit:
                return Verdict(retry_after=_wait(oldest, window, now))
            row = RateLimitHit(key=key, at=now, expires_at=now + window)
            session.add(row)
            await session.flush()
            self._hits += 1
            if self._hits % self._clean_every == 0:
                await session.exec(delete(RateLimitHit).where(col(RateLimitHit.expires_at) <= now))
            return Verdict(token=str(row.id))

    async def take_back(self, key: str, token: str) -> None:
        async with transaction(self._sessions) as session:
            await session.exec(
                delete(RateLimitHit).where((col(RateLimitHit.id) == int(token)) & (col(RateLimitHit.key) == key))
            )

    async def count(self, key: str, window: int) -> Tally:
        now = self._clock()
        async with snapshot(self._sessions) as session:
            live = (col(RateLimitHit.key) == key) & (col(RateLimitHit.at) > now - window)
            hits, oldest = (await session.exec(select(func.count(), func.min(col(RateLimitHit.at))).where(live))).one()
        return Tally(hits, None if oldest is None else _wait(oldest, window, now))

    async def aclose(self) -> None:
        return None


# A key's hits are a sorted set (score: the hit's time); a hit is counted and added atomically, and the
# key expires with its newest hit's window, so Redis forgets a key only once all its hits are past.
_HIT = """
local now, window, limit = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) >= limit then
  return redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')[2]
end
redis.call('ZADD', KEYS[1], now, ARGV[4])
redis.call('PEXPIRE', KEYS[1], math.ceil(window * 1000))
return false
"""


class RedisRateLimiter:
    """The same windows in Redis (`REDIS_URL`), for deployments that keep such state there."""

    def __init__(self, url: str, *, clock: Clock = time.time, prefix: str = "rate-limit:") -> None:
        self._redis: Redis = Redis.from_url(url)
        self._clock = clock
        self._prefix = prefix
        self._script = self._redis.register_script(_HIT)

    async def hit(self, key: str, limit: int, window: int) -> Verdict:
        now = self._clock()
        token = f"{now:.6f}:{secrets.token_hex(8)}"
        oldest = await self._script(keys=[self._prefix + key], args=[now, window, limit, token])
        if oldest is not None:
            return Verdict(retry_after=_wait(float(cast(bytes, oldest)), window, now))
        return Verdict(token=token)

    async def take_back(self, key: str, token: str) -> None:
        await self._redis.zrem(self._prefix + key, token)

    async def count(self, key: str, window: int) -> Tally:
        now = self._clock()
        name = self._prefix + key
        hits = await self._redis.zcount(name, f"({now - window}", "+inf")
        if not hits:
            return Tally(0, None)
        oldest = await self._redis.zrangebyscore(name, f"({now - window}", "+inf", start=0, num=1, withscores=True)
        return Tally(int(hits), _wait(float(oldest[0][1]), window, now) if oldest else None)

    async def aclose(self) -> None:
        await self._redis.aclose()


def make_rate_limiter(sessions: SessionMaker, redis_url: str | None) -> RateLimiter:
    """Redis when a URL is given, else the billing database."""
    return RedisRateLimiter(redis_url) if redis_url else DatabaseRateLimiter(sessions)
