"""Stopping the processes the tests start (simulators, Kannel's boxes, Kamailio) the same way."""

import asyncio

# How long a process may take to exit after SIGTERM before it is killed.
STOP_TIMEOUT = 10.0


async def stop_process(process: asyncio.subprocess.Process) -> None:
    """SIGTERM, then SIGKILL if it lingers past STOP_TIMEOUT; nothing if it has already exited."""
    if process.returncode is not None:
        return
    process.terminate()
    try:
        await asyncio.wait_for(process.wait(), STOP_TIMEOUT)
    except TimeoutError:
        process.kill()
        await process.wait()
