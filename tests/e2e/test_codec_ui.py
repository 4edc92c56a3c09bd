"""The Temporal UI as `make run` starts it shows decoded payloads at once in development: a headless
Chromium (Debian's `chromium`) opens a workflow's page in a real dev server's UI, which decodes
through the real codec server without anyone signing in."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from temporalio import workflow
from temporalio.worker import Worker

from core.settings import Settings
from core.temporal import connect
from devstack.temporal_server import cli_path, dev_server_args, wait_until_listening
from tests.support.browser import chromium, dump_dom
from tests.support.codec_server import serving_codec_server
from tests.support.net import free_port
from tests.support.production import PRODUCTION

BANNER = "Codec Server could not connect"


@workflow.defn(name="UiCodecCheck", sandboxed=False)  # a test module: nothing to guard
class UiCodecCheck:
    @workflow.run
    async def run(self, text: str) -> str:
        return text.replace("input", "result")


@dataclass(frozen=True)
class DevUi:
    """A dev server whose UI decodes through `codec_port`, where each test serves its own codec server."""

    temporal_address: str
    ui: str
    codec_port: int

    def settings(self, **values: Any) -> Settings:
        here = {"temporal_address": self.temporal_address, "codec_server_port": self.codec_port}
        return Settings(_env_file=None, codec_server_cors_origins=self.ui, **(values | here))


@pytest.fixture(scope="module")
async def dev_ui() -> AsyncIterator[DevUi]:
    """A dev server with its UI pointed at the codec server, as `python -m devstack` starts them."""
    port, ui_port, codec_port = free_port(), free_port(), free_port()
    codec = f"http://127.0.0.1:{codec_port}"
    args = dev_server_args(host="127.0.0.1", port=port, ui_port=ui_port, db_file=None, codec_endpoint=codec)
    server = await asyncio.create_subprocess_exec(
        str(cli_path()), *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    try:
        await wait_until_listening(port, seconds=30)
        await wait_until_listening(ui_port, seconds=30)
        yield DevUi(f"127.0.0.1:{port}", f"http://127.0.0.1:{ui_port}", codec_port)
    finally:
        server.terminate()
        await server.wait()


async def _workflow_page(settings: Settings, ui: str, given: str) -> str:
    """Run a workflow on `given` with the project's data converter; the address of its page in the UI."""
    client = await connect(settings.temporal)
    queue = f"ui-codec-{uuid.uuid4().hex[:8]}"
    async with Worker(client, task_queue=queue, workflows=[UiCodecCheck]):
        handle = await client.start_workflow(UiCodecCheck.run, given, id=queue, task_queue=queue)
        assert await handle.result() == given.replace("input", "result")
    return f"{ui}/namespaces/default/workflows/{handle.id}/{handle.result_run_id}/history"


@pytest.mark.skipif(chromium() is None, reason="Debian's chromium is not installed (.ci/run installs it)")
async def test_in_development_the_ui_shows_a_workflows_decoded_input_without_sign_in(dev_ui: DevUi) -> None:
    marker = uuid.uuid4().hex[:8]
    given, answered = f"input-shown-decoded-{marker}", f"result-shown-decoded-{marker}"
    settings = dev_ui.settings(environment="development")
    async with serving_codec_server(settings):
        dom, err = await dump_dom(await _workflow_page(settings, dev_ui.ui, given), budget_ms=20000)
    assert given in dom and answered in dom, (dom[-3000:], err[-3000:])
    assert BANNER not in dom  # the UI's red codec icon, labelled so, when a decode call fails


@pytest.mark.skipif(chromium() is None, reason="Debian's chromium is not installed (.ci/run installs it)")
async def test_in_production_the_ui_shows_ciphertext_and_the_banner_until_sign_in(dev_ui: DevUi) -> None:
    given = f"input-kept-secret-{uuid.uuid4().hex[:8]}"
    settings = dev_ui.settings(**PRODUCTION)
    async with serving_codec_server(settings):
        dom, err = await dump_dom(await _workflow_page(settings, dev_ui.ui, given), budget_ms=20000)
    assert BANNER in dom, (dom[-3000:], err[-3000:])
    assert given not in dom
