"""The README's and docs' walk-throughs run as pasted, against the whole system `make run` starts.

The stack is `bench.harness.bench_stack` (Temporal dev server, simulator, worker and API as separate
processes, in a scratch directory) on free ports, so a developer's own `make run` may keep running:
the extracted text has `localhost:8000` and `localhost:8100` rewritten to the stack's API and
simulator before it runs. Each document's ```sh blocks run in the order the reader meets them (the
README first, then the docs in the order of the README's "Where to look next" table, all against
one stack, as a reader goes through them), with `bash -euo pipefail` in one shell session per
document, so that variables set in one block are there in the next.

A ```sh block that is not for pasting against `make run` (a command that starts the system, an
example of settings, a step that needs another configuration) is preceded by the line
`<!-- walkthrough: skip (<the reason>) -->`; the test requires the reason. Configuration examples
may instead use another fence language (or none): only ```sh blocks are walk-throughs.
"""

import os
import re
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bench.harness import BenchStack, bench_stack, free_port

REPO_ROOT = Path(__file__).resolve().parents[1]

# The reader's order: README, then "Where to look next".
DOCUMENTS = (
    "README.md",
    "docs/signups.md",
    "docs/profiles.md",
    "docs/wallets.md",
    "docs/reconciliation.md",
    "docs/support-desk.md",
    "docs/operations.md",
)
SKIP_MARKER = re.compile(r"<!-- walkthrough: skip \((?P<reason>[^)]+)\) -->\s*$")
FENCE = re.compile(r"^```(?P<lang>\S*)\s*$")
BLOCK_SECONDS = 60  # one block's bound; the waits inside a block are bounded tighter


@dataclass(frozen=True)
class Block:
    document: str
    line: int  # of the opening fence, 1-based
    text: str
    skip_reason: str | None


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
            marker = SKIP_MARKER.match(previous)
            text = "\n".join(lines[index + 1 : end]) + "\n"
            blocks.append(Block(document, index + 1, text, marker["reason"] if marker else None))
        index = end + 1
    return blocks


def test_every_skip_marker_names_its_reason() -> None:
    for document in DOCUMENTS:
        text = (REPO_ROOT / document).read_text()
        for line in text.splitlines():
            if "walkthrough:" in line:
                assert SKIP_MARKER.match(line), f"{document}: {line!r} is not `<!-- walkthrough: skip (reason) -->`"


@pytest.fixture(scope="module")
async def stack() -> AsyncIterator[BenchStack]:
    # The worker's metrics port would clash with a `make run` on the same machine.
    async with bench_stack(WORKER_METRICS_PORT=str(free_port())) as running:
        yield running


def script(blocks: list[Block], stack: BenchStack) -> str:
    """The document's blocks as one script, each announced on the output so that a failure names its block."""
    api_port = stack.api_url.rsplit(":", 1)[1]
    sim_port = stack.sim_url.rsplit(":", 1)[1]
    parts = []
    for number, block in enumerate(blocks):
        text = block.text.replace("localhost:8000", f"127.0.0.1:{api_port}").replace("localhost:8100", f"127.0.0.1:{sim_port}")
        parts.append(f"echo '{BLOCK_MARK}{number}'\n{text}")
    return "\n".join(parts)


BLOCK_MARK = "### walk-through block "


@pytest.mark.parametrize("document", DOCUMENTS)
async def test_walkthrough_runs_as_pasted(stack: BenchStack, document: str) -> None:
    blocks = [block for block in sh_blocks(document) if block.skip_reason is None]
    if not blocks:
        pytest.skip(f"{document} has no walk-through to run")
    env = os.environ | {"PATH": f"{REPO_ROOT / '.venv' / 'bin'}:{os.environ['PATH']}"}
    started = time.monotonic()
    try:
        finished = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script(blocks, stack)],
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=BLOCK_SECONDS * len(blocks),
        )
        output, status = finished.stdout, finished.returncode
    except subprocess.TimeoutExpired as timeout:
        partial = timeout.stdout or b""
        output, status = partial.decode(errors="replace") if isinstance(partial, bytes) else partial, -1
    if status == 0:
        print(output)  # shown with `pytest -s`: what a reader sees, to compare with the comments
        return
    # The failing block is the last one announced on the output.
    sections = output.split(BLOCK_MARK)
    failing = sections[-1]
    number, _, block_output = failing.partition("\n")
    block = blocks[int(number)] if number.isdigit() else blocks[0]
    reason = "timed out" if status == -1 else f"exit status {status}"
    pytest.fail(
        f"{document} line {block.line}: the block failed ({reason}, {time.monotonic() - started:.0f} s)\n"
        f"--- block ---\n{block.text}--- its output ---\n{block_output}",
        pytrace=False,
    )
