"""The README's and docs' walk-throughs run as pasted, against the whole system `make run` starts.

The stack is `bench.harness.bench_stack` (Temporal dev server, simulator, worker and API as separate
processes, in a scratch directory) and `make run`'s codec server, on free ports, so that a
developer's own `make run` may keep running: `localhost:8000`, `:8100`, `:8234` and `:8200` (or
`127.0.0.1:…`) in the extracted text are rewritten to the stack's API, simulator, codec server and
PortaBilling simulator
before it runs, and the Temporal CLI finds the stack's server through `TEMPORAL_ADDRESS`. The
documents run against one stack in the order a reader meets them (the README, then the docs in the
order of the README's "Where to look next" table), since later ones build on earlier ones
(`mobile-s`, `alice`, `home-1`, `order-web-1001`): run the module whole. A document's ```sh blocks
run one after the other in one `bash -euo pipefail` (so `$A`, `$S` and the helpers carry over within
a document), each document within `BLOCK_SECONDS` per block. A command that fails, a 5xx answer
(`curl -s` exits 0 on any answer; the 4xx ones are part of the stories) or a hang fails the test
with the block's text and its output.

The convention: only ```sh blocks are walk-throughs (configuration examples use another fence
language, or none). A ```sh block that is not to be pasted against `make run` (the command that
starts the system, settings, a step that needs root, apt or a process the stack lacks) has the line
`<!-- walkthrough: skip (<the reason>) -->` right before its fence; the reason is required. A block
that needs other settings (`SIGNUP_VERIFICATION=cmms make run`) has `<!-- walkthrough: with
SETTING=value … -->` instead: it runs after its document's first block to run (the keys and helpers)
on a stack of its own started with those settings.
"""

import asyncio
import os
import re
import signal
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from bench.harness import bench_stack
from core.settings import Settings
from tests.support.codec_server import serving_codec_server
from tests.support.net import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]


SKIP_MARKER = re.compile(r"<!-- walkthrough: skip \((?P<reason>[^)]+)\) -->\s*$")
WITH_MARKER = re.compile(r"<!-- walkthrough: with (?P<settings>[A-Z_]+=\S+(?: [A-Z_]+=\S+)*) -->\s*$")
FENCE = re.compile(r"^```(?P<lang>\S*)\s*$")
BLOCK_SECONDS = 60  # one block's bound; the waits inside a block are bounded tighter


@dataclass(frozen=True)
class Block:
    document: str
    line: int  # of the opening fence, 1-based
    text: str
    skip_reason: str | None
    settings: dict[str, str] | None = None  # runs on a stack of its own, started with these


def sh_blocks(document: str) -> list[Block]:
    """Every ```sh block of `document`, with the reason it is skipped when a marker precedes it."""
    lines = (REPO_ROOT / document).read_text().splitlines()
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        fence = FENCE.match(lines[index])
        if fence is None:
            index += 1
            continue
        end = index + 1
        while not lines[end].startswith("```"):
            end += 1
        if fence["lang"] == "sh":
            previous = next((line for line in reversed(lines[:index]) if line.strip()), "")
            skip, with_ = SKIP_MARKER.match(previous), WITH_MARKER.match(previous)
            settings = dict(pair.split("=", 1) for pair in with_["settings"].split()) if with_ else None
            text = "\n".join(lines[index + 1 : end]) + "\n"
            blocks.append(Block(document, index + 1, text, skip["reason"] if skip else None, settings))
        index = end + 1
    return blocks


def reader_order() -> tuple[str, ...]:
    """The README, then the documents its "Where to look next" table links, in order: those with sh blocks."""
    readme = (REPO_ROOT / "README.md").read_text()
    table = readme.split("## Where to look next", 1)[1].split("\n## ", 1)[0]
    linked = dict.fromkeys(re.findall(r"\]\((docs/[\w.-]+\.md)\)", table))
    return tuple(document for document in ("README.md", *linked) if sh_blocks(document))


DOCUMENTS = reader_order()


def test_every_skip_marker_names_its_reason() -> None:
    for document in DOCUMENTS:
        text = (REPO_ROOT / document).read_text()
        for line in text.splitlines():
            if line.startswith("<!--") and "walkthrough" in line:
                assert SKIP_MARKER.match(line) or WITH_MARKER.match(line), f"{document}: {line!r} is no marker"


def test_every_document_with_a_walkthrough_is_in_the_readers_order() -> None:
    with_blocks = {f"docs/{path.name}" for path in (REPO_ROOT / "docs").glob("*.md") if sh_blocks(f"docs/{path.name}")}
    assert with_blocks - set(DOCUMENTS) == set(), 'link these from the README\'s "Where to look next"'


@dataclass(frozen=True)
class Ports:
    """Where the test's stack listens, for the walk-throughs' `make run` addresses."""

    api: int
    simulator: int
    codec: int
    temporal_address: str
    portabilling: int | None = None  # the PortaBilling simulator (BILLING_SOURCE=portabilling only)


@asynccontextmanager
async def walkthrough_stack(**settings: str) -> AsyncIterator[Ports]:
    """`bench_stack` with `make run`'s codec server (in this process), on free ports."""
    # The worker's metrics port would clash with a `make run` on the same machine.
    async with bench_stack(WORKER_METRICS_PORT=str(free_port()), **settings) as running:
        codec = Settings(codec_server_port=free_port())
        async with serving_codec_server(codec):
            yield Ports(
                api=int(running.api_url.rsplit(":", 1)[1]),
                simulator=int(running.sim_url.rsplit(":", 1)[1]),
                codec=codec.codec_server.port,
                temporal_address=running.temporal_address,
                portabilling=int(running.portabilling_url.rsplit(":", 1)[1]) if running.portabilling_url else None,
            )


@pytest.fixture(scope="module")
async def stack() -> AsyncIterator[Ports]:
    async with walkthrough_stack() as ports:
        yield ports


BLOCK_MARK = "### walk-through block "
# A 5xx answer is a failure even though `curl -s` exits 0 on it (4xx answers are part of the stories).
SERVER_ERROR = re.compile(r'"status":\s*5\d\d')


def script(blocks: list[Block], ports: Ports) -> str:
    """The blocks as one script on the given ports, each announced on the output so that a failure names it."""
    parts = []
    for number, block in enumerate(blocks):
        text = block.text
        moved = [(8000, ports.api), (8100, ports.simulator), (8234, ports.codec)]
        if ports.portabilling is not None:
            moved.append((8200, ports.portabilling))
        for port, there in moved:
            text = text.replace(f"localhost:{port}", f"127.0.0.1:{there}").replace(
                f"127.0.0.1:{port}", f"127.0.0.1:{there}"
            )
        parts.append(f"echo '{BLOCK_MARK}{number}'\n{text}")
    return "\n".join(parts)


async def run_walkthrough(blocks: list[Block], ports: Ports, log: Path, seconds: float) -> str | None:
    """Run `blocks` in one `bash -euo pipefail`; None when they all succeed, else which block failed and how."""
    with log.open("w") as output:
        process = await asyncio.create_subprocess_exec(
            "bash",
            "-euo",
            "pipefail",
            "-c",
            script(blocks, ports),
            cwd=REPO_ROOT,
            # The Temporal CLI's own setting, for `make run`'s 127.0.0.1:7233.
            env=os.environ | {"TEMPORAL_ADDRESS": ports.temporal_address},
            stdin=asyncio.subprocess.DEVNULL,
            stdout=output,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,  # its own process group, so that a timeout stops its curls and sleeps too
        )
        try:
            status = await asyncio.wait_for(process.wait(), seconds)
            reason = f"exit status {status}"
        except TimeoutError:
            os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
            status, reason = -1, f"timed out after {seconds:.0f} s"
    text = await asyncio.to_thread(log.read_text, errors="replace")
    server_error = SERVER_ERROR.search(text)
    if status == 0 and server_error is None:
        return None
    if status == 0 and server_error is not None:
        text = text[: server_error.end()]
        reason = "a 5xx answer"
    # The failing block is the last one announced before the failure.
    number, _, block_output = text.rsplit(BLOCK_MARK, 1)[-1].partition("\n")
    block = blocks[int(number)] if number.isdigit() else blocks[0]
    return (
        f"{block.document} line {block.line}: {reason}\n--- block ---\n{block.text}--- its output ---\n{block_output}"
    )


@pytest.mark.parametrize("document", DOCUMENTS)
async def test_walkthrough_runs_as_pasted(stack: Ports, document: str, tmp_path: Path) -> None:
    blocks = [block for block in sh_blocks(document) if block.skip_reason is None and block.settings is None]
    if not blocks:
        pytest.skip(f"{document} has no walk-through to run (every sh block is marked skip)")
    log = tmp_path / "output.txt"
    failure = await run_walkthrough(blocks, stack, log, BLOCK_SECONDS * len(blocks))
    print(log.read_text())  # shown with `pytest -s`: what a reader sees, to compare with the comments
    if failure is not None:
        pytest.fail(failure, pytrace=False)


OTHER_SETTINGS = [
    pytest.param(block, id=f"{block.document}:{block.line}")
    for document in DOCUMENTS
    for block in sh_blocks(document)
    if block.settings is not None
]


@pytest.mark.parametrize("block", OTHER_SETTINGS)
async def test_walkthrough_with_other_settings_runs_as_pasted(block: Block, tmp_path: Path) -> None:
    assert block.settings is not None
    keys = next(b for b in sh_blocks(block.document) if b.skip_reason is None and b.settings is None)
    blocks = [keys, block]  # the document's keys and helpers, then the block
    log = tmp_path / "output.txt"
    async with walkthrough_stack(**block.settings) as ports:
        failure = await run_walkthrough(blocks, ports, log, BLOCK_SECONDS * len(blocks))
    print(log.read_text())
    if failure is not None:
        pytest.fail(failure, pytrace=False)


NOWHERE = Ports(api=free_port(), simulator=free_port(), codec=free_port(), temporal_address="127.0.0.1:1")


def synthetic(*texts: str) -> list[Block]:
    return [Block("example.md", 10 * number, text, None) for number, text in enumerate(texts, 1)]


async def test_a_failure_names_its_block_and_output(tmp_path: Path) -> None:
    blocks = synthetic("X=carried\necho first\n", 'echo "$X"\ncurl -s localhost:8000/nowhere\necho after\n')
    failure = await run_walkthrough(blocks, NOWHERE, tmp_path / "log", 10)
    assert failure is not None
    assert failure.startswith("example.md line 20: exit status 7")  # curl: could not connect
    assert "curl -s localhost:8000/nowhere" in failure and "--- its output ---\ncarried\n" in failure
    assert "after" not in failure.split("--- its output ---")[1] and "first" not in failure


async def test_a_5xx_answer_or_a_hang_fails(tmp_path: Path) -> None:
    errored = await run_walkthrough(synthetic("echo '{\"status\":503}'\n"), NOWHERE, tmp_path / "a", 10)
    assert errored is not None and "a 5xx answer" in errored
    started = time.monotonic()
    hung = await run_walkthrough(synthetic("sleep 30\n"), NOWHERE, tmp_path / "b", 1)
    assert hung is not None and "timed out after 1 s" in hung and time.monotonic() - started < 5
