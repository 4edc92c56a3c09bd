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
from collections.abc import Callable, Sequence
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


@dataclass(frozen=True)
class Limit:
    """A key's limit: at most `limit` hits in the last `window` seconds."""

    key: str
    limit: int
    window: int


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

    async def hit_all(self, hits: Sequence[Limit]) -> list[Verdict]:
        """Count one hit for every key, or for none when one of them is at its limit: together, as one
        step (several budgets one request spends). A verdict per key, in order: refused ones say how
        long to wait; the others hold tokens only if every key was counted."""
        ...

    async def count_all(self, counts: Sequence[tuple[str, int]]) -> list[Tally]:
        """`count` for each (key, window), in order, read together."""
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
        return (await self.hit_all([Limit(key, limit, window)]))[0]

    async def hit_all(self, hits: Sequence[Limit]) -> list[Verdict]:
        now = self._clock()
        async with transaction(self._sessions) as session:
            connection = await session.connection()
            if connection.dialect.name == "postgresql":
                # Each key's hits in turn across processes (SQLite's write lock already does this); keys
                # locked in one order, so two requests never wait for each other's.
                for key in sorted({hit.key for hit in hits}):
                    await session.exec(select(func.pg_advisory_xact_lock(func.hashtextextended(key, 0))))
            verdicts = []
            for hit in hits:
                live = (col(RateLimitHit.key) == hit.key) & (col(RateLimitHit.at) > now - hit.window)
                query = select(func.count(), func.min(col(RateLimitHit.at))).where(live)
                count, oldest = (await session.exec(query)).one()
                verdicts.append(
                    Verdict(retry_after=_wait(oldest, hit.window, now)) if count >= hit.limit else Verdict()
                )
            if not all(verdict.allowed for verdict in verdicts):
                return verdicts
            rows = [RateLimitHit(key=hit.key, at=now, expires_at=now + hit.window) for hit in hits]
            session.add_all(rows)
            await session.flush()
            self._hits += 1
            if self._hits % self._clean_every == 0:
                await session.exec(delete(RateLimitHit).where(col(RateLimitHit.expires_at) <= now))
            return [Verdict(token=str(row.id)) for row in rows]

    async def take_back(self, key: str, token: str) -> None:
        async with transaction(self._sessions) as session:
            await session.exec(
                delete(RateLimitHit).where((col(RateLimitHit.id) == int(token)) & (col(RateLimitHit.key) == key))
            )

    async def count(self, key: str, window: int) -> Tally:
        return (await self.count_all([(key, window)]))[0]

    async def count_all(self, counts: Sequence[tuple[str, int]]) -> list[Tally]:
        now = self._clock()
        tallies = []
        async with snapshot(self._sessions) as session:
            for key, window in counts:
                live = (col(RateLimitHit.key) == key) & (col(RateLimitHit.at) > now - window)
                query = select(func.count(), func.min(col(RateLimitHit.at))).where(live)
                hits, oldest = (await session.exec(query)).one()
                tallies.append(Tally(hits, None if oldest is None else _wait(oldest, window, now)))
        return tallies

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


# Several keys at once: KEYS are the keys, ARGV now then (window, limit, token) per key; every key is
# counted only if none is at its limit. Answers, per key, its oldest hit's time when it refused, else "".
_HIT_ALL = """
local now = tonumber(ARGV[1])
local answers, refused = {}, false
for i, key in ipairs(KEYS) do
  local window, limit = tonumber(ARGV[3 * i - 1]), tonumber(ARGV[3 * i])
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  if redis.call('ZCARD', key) >= limit then
    answers[i] = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')[2]
    refused = true
  else
    answers[i] = ''
  end
end
if not refused then
  for i, key in ipairs(KEYS) do
    local window = tonumber(ARGV[3 * i - 1])
    redis.call('ZADD', key, now, ARGV[3 * i + 1])
    if redis.call('PTTL', key) < window * 1000 then
      redis.call('PEXPIRE', key, math.ceil(window * 1000))
    end
  end
end
return answers
"""


class RedisRateLimiter:
    """The same windows in Redis (`REDIS_URL`), for deployments that keep such state there."""

    def __init__(self, url: str, *, clock: Clock = time.time, prefix: str = "rate-limit:") -> None:
        self._redis: Redis = Redis.from_url(url)
        self._clock = clock
        self._prefix = prefix
        self._script = self._redis.register_script(_HIT)
        self._script_all = self._redis.register_script(_HIT_ALL)

    async def hit(self, key: str, limit: int, window: int) -> Verdict:
        now = self._clock()
        token = f"{now:.6f}:{secrets.token_hex(8)}"
        oldest = await self._script(keys=[self._prefix + key], args=[now, window, limit, token])
        if oldest is not None:
            return Verdict(retry_after=_wait(float(cast(bytes, oldest)), window, now))
        return Verdict(token=token)

    async def take_back(self, key: str, token: str) -> None:
        await self._redis.zrem(self._prefix + key, token)

    async def hit_all(self, hits: Sequence[Limit]) -> list[Verdict]:
        now = self._clock()
        tokens = [f"{now:.6f}:{secrets.token_hex(8)}" for _ in hits]
        args: list[object] = [now]
        for hit, token in zip(hits, tokens, strict=True):
            args += [hit.window, hit.limit, token]
        answers = await self._script_all(keys=[self._prefix + hit.key for hit in hits], args=args)
        oldest = [float(answer) if answer else None for answer in cast(list[bytes], answers)]
        if any(when is not None for when in oldest):
            return [
                Verdict() if when is None else Verdict(retry_after=_wait(when, hit.window, now))
                for hit, when in zip(hits, oldest, strict=True)
            ]
        return [Verdict(token=token) for token in tokens]

    async def count_all(self, counts: Sequence[tuple[str, int]]) -> list[Tally]:
        return [await self.count(key, window) for key, window in counts]

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
