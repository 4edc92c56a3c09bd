"""Start child processes in order, prefix their output, and stop them all (in reverse) on Ctrl-C or failure."""

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field


@dataclass
class Child:
    name: str
    argv: Sequence[str]
    env: dict[str, str] = field(default_factory=dict)
    process: asyncio.subprocess.Process | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def pid(self) -> int:
        assert self.process is not None, "not started"
        return self.process.pid


class Supervisor:
    def __init__(self) -> None:
        self.children: list[Child] = []
        self.stopping = asyncio.Event()
        self.failed: str | None = None

    async def start(self, child: Child, ready: Callable[[], Awaitable[bool]], ready_within: float = 60.0) -> None:
        """Start `child` and wait until `ready()` says so; raise if it exits or times out first."""
        child.process = await asyncio.create_subprocess_exec(
            *child.argv,
            env=os.environ | child.env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            stdin=asyncio.subprocess.DEVNULL,
            # Ctrl-C reaches the supervisor only (it stops the children in order): each child has a process
            # group of its own, in the supervisor's session, where their CPU priorities count (devstack.priority).
            process_group=0,
        )
        self.children.append(child)
        child.tasks += [asyncio.create_task(self._pump(child)), asyncio.create_task(self._watch(child))]
        deadline = asyncio.get_running_loop().time() + ready_within
        while not await self._ready(ready):
            if child.process.returncode is not None:
                raise RuntimeError(f"{child.name} exited with code {child.process.returncode} while starting")
            if asyncio.get_running_loop().time() > deadline:
                raise RuntimeError(f"{child.name} was not ready after {ready_within:.0f} s")
            await asyncio.sleep(0.2)

    @staticmethod
    async def _ready(ready: Callable[[], Awaitable[bool]]) -> bool:
        # A readiness probe that fails (the process is not up yet, a refused connection) means "not yet".
        try:
            return await ready()
        except Exception:
            return False

    def check_all_running(self) -> None:
        """Raise if a child has exited (or failed) since it was started."""
        if self.failed:
            raise RuntimeError(self.failed)
        for child in self.children:
            if child.process is None or child.process.returncode is not None:
                code = child.process.returncode if child.process else None
                raise RuntimeError(f"{child.name} exited with code {code}")

    async def _pump(self, child: Child) -> None:
        assert child.process is not None and child.process.stdout is not None
        async for line in child.process.stdout:
            sys.stdout.write(f"[{child.name}] {line.decode(errors='replace')}")
            sys.stdout.flush()

    async def _watch(self, child: Child) -> None:
        assert child.process is not None
        code = await child.process.wait()
        if not self.stopping.is_set():
            self.failed = f"{child.name} exited unexpectedly with code {code}"
            self.stopping.set()

    def handle_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stopping.set)

    async def stop_all(self, grace: float = 15.0) -> None:
        self.stopping.set()
        for child in reversed(self.children):
            process = child.process
            if process is None or process.returncode is not None:
                continue
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), grace)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
            print(f"[devstack] {child.name} stopped", flush=True)
