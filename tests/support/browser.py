"""Debian's headless Chromium, for tests that check what a real browser shows."""

import asyncio
import shutil
import tempfile


def chromium() -> str | None:
    """The Chromium binary on PATH, or None (`.ci/run` installs Debian's `chromium` when missing)."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


async def dump_dom(url: str, *flags: str, budget_ms: int = 15000, wall_seconds: float = 60) -> tuple[str, str]:
    """The DOM of `url` once its scripts have run for `budget_ms` of virtual time (which stands still
    while network requests are pending), in a fresh profile (no cookie, no saved setting); and the
    browser's stderr. `flags` are extra Chromium switches."""
    browser = chromium()
    if browser is None:
        raise RuntimeError("chromium is not installed")
    with tempfile.TemporaryDirectory() as profile:
        process = await asyncio.create_subprocess_exec(
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--user-data-dir={profile}",
            *flags,
            f"--virtual-time-budget={budget_ms}",
            "--dump-dom",
            url,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(process.communicate(), wall_seconds)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    return out.decode(), err.decode()
