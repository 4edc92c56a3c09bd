"""The worker as its own process (`python worker.py`), for tests that kill it as a crash would."""

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from pydantic import SecretStr

from core.settings import Settings
from tests.support.polling import eventually

REPO_ROOT = Path(__file__).resolve().parents[2]


def settings_env(settings: Settings) -> dict[str, str]:
    """The settings as the environment variables that give a process the same ones."""
    env: dict[str, str] = {}
    for name, value in settings.by_variable().items():
        if value is None:
            continue
        env[name] = value.get_secret_value() if isinstance(value, SecretStr) else str(value)
    return env


@asynccontextmanager
async def worker_process(settings: Settings, log_path: Path) -> AsyncIterator[asyncio.subprocess.Process]:
    """A worker process on the settings, once it polls its task queues; killed (SIGKILL) at the end if alive."""
    env = os.environ | settings_env(settings) | {"WORKER_METRICS_PORT": "0", "PYTHONUNBUFFERED": "1"}
    with log_path.open("ab") as log:
        start = log.tell()
        process = await asyncio.create_subprocess_exec(
            sys.executable, "worker.py", cwd=REPO_ROOT, env=env, stdout=log, stderr=asyncio.subprocess.STDOUT
        )
    try:

        async def polling() -> bool:
            assert process.returncode is None, "the worker exited; see its log " + str(log_path)
            return b"worker polling task queue" in (await asyncio.to_thread(log_path.read_bytes))[start:]

        await eventually(polling, within=60, what="the worker polling its task queues")
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
