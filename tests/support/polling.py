"""The one way a test waits for what happens a moment later: poll, never sleep a guessed time."""

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")


async def eventually(
    read: Callable[[], Awaitable[T]],
    accept: Callable[[T], Any] = bool,
    *,
    within: float = 30.0,
    every: float = 0.1,
    what: str = "",
) -> T:
    """`read()` again every `every` seconds until `accept` holds of what it returns, and return that;
    after `within` seconds, an AssertionError naming `what` and showing the last value read."""
    deadline = time.monotonic() + within
    value = await read()
    while not accept(value):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what or 'the condition'} did not hold within {within} s; last read: {value!r}")
        await asyncio.sleep(every)
        value = await read()
    return value
