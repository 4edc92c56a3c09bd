"""Signup rate limits are shared by every API process (billing database or Redis), and their clean-up
never forgets a window that has not passed; production refuses an open country list."""

import secrets
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from billing.db import make_engine, make_sessionmaker
from services.rate_limit import DatabaseRateLimiter, Limit, RateLimiter, RedisRateLimiter, Tally
from tests.support.signups import REDIS_URL


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


LimiterFactory = Callable[[Clock], AsyncIterator[RateLimiter]]


@pytest.fixture(params=["database", "redis"])
async def limiters(request: pytest.FixtureRequest, billing_database: str) -> AsyncIterator[Callable[[Clock], Any]]:
    """Makes limiters as separate API processes would: each its own engine or Redis connection, one store."""
    made: list[RateLimiter] = []
    engines = []
    prefix = f"test-{secrets.token_hex(4)}:"

    def make(clock: Clock, **options: Any) -> RateLimiter:
        limiter: RateLimiter
        if request.param == "redis":
            limiter = RedisRateLimiter(REDIS_URL, clock=clock, prefix=prefix)
        else:
            engine = make_engine(billing_database)
            engines.append(engine)
            limiter = DatabaseRateLimiter(make_sessionmaker(engine), clock=clock, **options)
        made.append(limiter)
        return limiter

    yield make
    for limiter in made:
        await limiter.aclose()
    for engine in engines:
        await engine.dispose()


async def test_two_processes_give_no_more_hits_than_one(limiters: Callable[[Clock], RateLimiter]) -> None:
    clock = Clock()
    first, second = limiters(clock), limiters(clock)
    key = f"number:+49151{secrets.randbelow(10**8):08d}"
    verdicts = [await (first if i % 2 else second).hit(key, 5, 60) for i in range(8)]
    assert [v.allowed for v in verdicts] == [True] * 5 + [False] * 3
    assert verdicts[-1].retry_after == 60
    clock.now += 30
    assert (await first.hit(key, 5, 60)).retry_after == 30
    clock.now += 30  # the first five leave the window
    assert (await second.hit(key, 5, 60)).allowed


async def test_a_hit_taken_back_frees_its_place(limiters: Callable[[Clock], RateLimiter]) -> None:
    clock = Clock()
    limiter = limiters(clock)
    key = f"wrong:{secrets.token_hex(4)}"
    assert (await limiter.hit(key, 1, 86400)).allowed is True
    refused = await limiter.hit(key, 1, 86400)
    assert refused.retry_after == 86400
    clock.now += 1
    other = limiters(clock)
    held = await other.hit(f"{key}-b", 1, 86400)
    assert held.token is not None
    await other.take_back(f"{key}-b", held.token)
    assert (await limiter.hit(f"{key}-b", 1, 86400)).allowed


async def test_the_clean_up_never_forgets_a_window_that_has_not_passed(billing_database: str) -> None:
    """A day-long window (wrong codes) survives clean-ups run by minute-long windows' hits."""
    clock = Clock()
    engine = make_engine(billing_database)
    limiter = DatabaseRateLimiter(make_sessionmaker(engine), clock=clock, clean_every=5)
    day = f"wrong:{secrets.token_hex(4)}"
    try:
        for _ in range(10):
            assert (await limiter.hit(day, 10, 86400)).allowed
        for i in range(30):  # many clean-ups, each long after the minute-long hits before it
            clock.now += 120
            assert (await limiter.hit(f"client:{i}", 600, 60)).allowed
        refused = await limiter.hit(day, 10, 86400)
        assert refused.retry_after == 86400 - 30 * 120
        clock.now += 86400  # now the day has passed: the clean-up may forget it, and the key is free
        assert (await limiter.hit(day, 10, 86400)).allowed
    finally:
        await engine.dispose()


async def test_a_count_reads_a_window_without_counting_a_hit(limiters: Callable[[Clock], RateLimiter]) -> None:
    """What the budgets read (a range's verified signups, a pause): the hits in the window, and when the
    oldest leaves it; reading twice changes nothing."""
    clock = Clock()
    limiter = limiters(clock)
    key = f"verified:{secrets.token_hex(4)}"
    assert await limiter.count(key, 60) == Tally(0, None)
    for _ in range(3):
        assert (await limiter.hit(key, 10, 60)).allowed
        clock.now += 10
    assert await limiter.count(key, 60) == Tally(3, 30)
    assert await limiters(clock).count(key, 60) == Tally(3, 30)  # another process reads the same
    clock.now += 31  # the first hit leaves the window
    assert await limiter.count(key, 60) == Tally(2, 9)


async def test_several_keys_are_counted_together_or_not_at_all(limiters: Callable[[Clock], RateLimiter]) -> None:
    """What one code SMS spends (its prefix's, its country's and the day's budgets): each key is counted,
    or, when one is at its limit, none; the verdicts say which refused."""
    clock = Clock()
    limiter = limiters(clock)
    tag = secrets.token_hex(4)
    wide, narrow = Limit(f"day:{tag}", 10, 86400), Limit(f"prefix:{tag}", 2, 3600)
    for _ in range(2):
        assert all(verdict.token for verdict in await limiter.hit_all([narrow, wide]))
    refused = await limiter.hit_all([narrow, wide])
    assert [verdict.allowed for verdict in refused] == [False, True]
    assert refused[0].retry_after == 3600 and refused[1].token is None
    assert [tally.hits for tally in await limiter.count_all([(narrow.key, 3600), (wide.key, 86400)])] == [2, 2]
