"""The Temporal UI as `make run` starts it shows decoded payloads at once in development: a headless
Chromium (Debian's `chromium`) opens a workflow's page in a real dev server's UI, which decodes
through the real codec server without anyone signing in."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from temporalio import workflow
from temporalio.worker import Worker

from core.settings import Settings
from core.temporal import connect
from devstack.temporal_server import cli_path, dev_server_args, wait_until_listening
from tests.support.browser import chromium, dump_dom
from tests.support.codec_server import serving_codec_server
from tests.support.net import free_port

BANNER = "Codec Server could not connect"


@workflow.defn(name="UiCodecCheck", sandboxed=False)  # a test module: nothing to guard
class UiCodecCheck:
    @workflow.run
    async def run(self, text: str) -> str:
        return text.replace("input", "result")


@dataclass(frozen=True)
class DevStack:
    settings: Settings
    ui: str


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


@pytest.mark.skipif(chromium() is None, reason="Debian's chromium is not installed (.ci/run installs it)")
async def test_the_ui_shows_a_workflows_decoded_input_without_sign_in(dev_stack: DevStack) -> None:
    marker = uuid.uuid4().hex[:8]
    given, answered = f"input-shown-decoded-{marker}", f"result-shown-decoded-{marker}"
    client = await connect(dev_stack.settings)
    queue = f"ui-codec-{uuid.uuid4().hex[:8]}"
    async with Worker(client, task_queue=queue, workflows=[UiCodecCheck]):
        handle = await client.start_workflow(UiCodecCheck.run, given, id=queue, task_queue=queue)
        assert await handle.result() == answered
    page = f"{dev_stack.ui}/namespaces/default/workflows/{handle.id}/{handle.result_run_id}/history"
    dom, err = await dump_dom(page, budget_ms=20000)
    assert given in dom and answered in dom, (dom[-3000:], err[-3000:])
    assert BANNER not in dom  # the UI's warning icon, labelled so, when a decode call fails
