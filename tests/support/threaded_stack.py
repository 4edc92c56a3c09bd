"""A served stack on an event loop of its own thread, for clients that block (schemathesis sends with
`requests`).

A test that blocks on an HTTP call would stall a server sharing pytest's event loop: that loop only
runs while the test awaits. In a thread of its own the server keeps answering whatever the test does;
what runs there is the usual async code (`running_stack`, `running_simulator`).
"""

import asyncio
import contextlib
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractAsyncContextManager, contextmanager
from typing import TypeVar

START_TIMEOUT = 60.0
Served = TypeVar("Served")


@contextmanager
def in_thread(serve: Callable[[], AbstractAsyncContextManager[Served]]) -> Iterator[Served]:
    """Enter `serve()` on a thread's own event loop; yields what it yields (where to reach it) and exits
    it on exit."""
    ready = threading.Event()
    failure: list[BaseException] = []
    served: list[Served] = []
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    async def main() -> None:
        try:
            async with serve() as target:
                served.append(target)
                ready.set()
                await stop.wait()
        except BaseException as exc:
            failure.append(exc)
        finally:
            ready.set()

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(main())
        finally:
            loop.close()

    thread = threading.Thread(target=run, name="served-stack", daemon=True)
    thread.start()
    try:
        if not ready.wait(START_TIMEOUT) or not served:
            raise RuntimeError("the stack did not start") from (failure[0] if failure else None)
        yield served[0]
    finally:
        with contextlib.suppress(RuntimeError):  # the loop has ended already: the stack failed
            loop.call_soon_threadsafe(stop.set)
        thread.join(START_TIMEOUT)
    if failure:
        raise failure[0]
