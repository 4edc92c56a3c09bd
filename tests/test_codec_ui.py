"""The Temporal UI as `make run` starts it shows decoded payloads at once in development: a headless
Chromium (Debian's `chromium`) opens a workflow's page in a real dev server's UI, which decodes
through the real codec server without anyone signing in."""

import asyncio
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from temporalio import workflow
from temporalio.worker import Worker

from core.settings import Settings
from core.temporal import connect
from devstack.temporal_server import cli_path, dev_server_args, wait_until_listening
from tests.support.codec_server import serving_codec_server
from tests.support.net import free_port

BANNER = "Codec Server could not connect"


@workflow.defn(name="UiCodecCheck", sandboxed=False)  # a test module: nothing to guard
class UiCodecCheck:
    @workflow.run
    async def run(self, text: str) -> str:
        return f"answered {text}"


@dataclass(frozen=True)
class DevStack:
    settings: Settings
    ui: str


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
async def dev_stack() -> AsyncIterator[DevStack]:
    """A dev server with its UI pointed at the codec server, as `python -m devstack` starts them."""
    port, ui_port = free_port(), free_port()
    ui = f"http://127.0.0.1:{ui_port}"
    settings = Settings(
        _env_file=None,
        environment="development",
        temporal_address=f"127.0.0.1:{port}",
        codec_server_port=free_port(),
        codec_server_cors_origins=ui,
    )
    codec = f"http://127.0.0.1:{settings.codec_server_port}"
    args = dev_server_args(host="127.0.0.1", port=port, ui_port=ui_port, db_file=None, codec_endpoint=codec)
    server = await asyncio.create_subprocess_exec(
        str(cli_path()), *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    try:
        await wait_until_listening(port, seconds=30)
        await wait_until_listening(ui_port, seconds=30)
        async with serving_codec_server(settings):
            yield DevStack(settings, ui)
    finally:
        server.terminate()
        await server.wait()


async def _dom(url: str) -> str:
    browser = _chromium()
    assert browser is not None
    with tempfile.TemporaryDirectory() as profile:  # a fresh profile: no cookie, no UI setting saved
        process = await asyncio.create_subprocess_exec(
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=20000",
            "--dump-dom",
            url,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), 60)
    return out.decode()


@pytest.mark.skipif(_chromium() is None, reason="Debian's chromium is not installed (.ci/run installs it)")
async def test_the_ui_shows_a_workflows_decoded_input_without_sign_in(dev_stack: DevStack) -> None:
    marker = f"decoded-in-the-ui-{uuid.uuid4().hex[:8]}"
    client = await connect(dev_stack.settings)
    queue = f"ui-codec-{uuid.uuid4().hex[:8]}"
    async with Worker(client, task_queue=queue, workflows=[UiCodecCheck]):
        handle = await client.start_workflow(UiCodecCheck.run, marker, id=queue, task_queue=queue)
        assert await handle.result() == f"answered {marker}"
    page = f"{dev_stack.ui}/namespaces/default/workflows/{handle.id}/{handle.result_run_id}/history"
    dom = await _dom(page)
    assert marker in dom, dom[-5000:]
    assert BANNER not in dom
