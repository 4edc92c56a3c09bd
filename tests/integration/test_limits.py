"""Limits a caller cannot exhaust: the request body's size, and the metrics' label values."""

import asyncio
import json
import secrets
from collections.abc import AsyncIterator

import httpx
import pytest

from api.problems import PROBLEM_JSON
from tests.support.database import sqlite_database
from tests.support.simulator import SimulatorProcess
from tests.support.stack import WEBSITE_KEY, serving_api, stack_settings

LIMIT = 64 * 1024


@pytest.fixture(scope="module")
async def api(dev_server: str, sim: SimulatorProcess, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    settings = stack_settings(dev_server, sqlite_database(tmp_path_factory.mktemp("limits")), sim)
    assert settings.api.max_body_bytes == LIMIT  # the default
    async with serving_api(settings) as url:
        yield url


def _is_413_problem(response: httpx.Response) -> bool:
    body = response.json()
    return (
        response.status_code == 413
        and response.headers["content-type"] == PROBLEM_JSON
        and body["status"] == 413
        and str(LIMIT) in body["detail"]
    )


async def test_a_declared_oversized_body_is_refused_before_the_key_is_checked(api: str) -> None:
    async with httpx.AsyncClient(base_url=api) as http:
        big = b"{" + b" " * LIMIT + b"}"
        assert _is_413_problem(await http.post("/v1/orders", content=big))  # no key at all: still 413
        assert _is_413_problem(await http.post("/v1/orders", content=big, headers={"Authorization": "Bearer wrong"}))
        # At the limit the request goes on to the key check, and to validation with a key.
        fits = b"{" + b" " * (LIMIT - 2) + b"}"
        assert (await http.post("/v1/orders", content=fits)).status_code == 401
        website = {"Authorization": f"Bearer {WEBSITE_KEY}", "Content-Type": "application/json"}
        assert (await http.post("/v1/orders", content=fits, headers=website)).status_code == 422


async def _post_chunked_without_end(
    api: str, headers: dict[str, str], chunks: int
) -> tuple[int, dict[str, str], bytes]:
    """POST a chunked body (no Content-Length) of `chunks` x 16 KiB that never ends, then read the answer."""
    host, _, port = api.removeprefix("http://").partition(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    writer.write(f"POST /v1/orders HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\n{head}\r\n".encode())
    for _ in range(chunks):
        writer.write(b"4000\r\n" + b"x" * 0x4000 + b"\r\n")
        await writer.drain()
    # The body is left unfinished: the answer must come from what was counted so far.
    status_line, _, rest = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)).partition(b"\r\n")
    fields = dict(line.split(": ", 1) for line in rest.decode().strip().splitlines())
    body = await asyncio.wait_for(reader.readexactly(int(fields["content-length"])), 10)
    writer.close()
    return int(status_line.split()[1]), fields, body


async def test_a_streamed_body_is_cut_off_at_the_limit(api: str) -> None:
    website = {"Authorization": f"Bearer {WEBSITE_KEY}", "Content-Type": "application/json"}
    for headers in ({}, website):
        status, fields, body = await _post_chunked_without_end(api, headers, chunks=LIMIT // 0x4000 + 1)
        problem = json.loads(body)
        assert status == 413 and fields["content-type"] == PROBLEM_JSON and problem["status"] == 413
        assert str(LIMIT) in problem["detail"]


async def test_unknown_methods_and_paths_never_create_a_time_series(api: str) -> None:
    async with httpx.AsyncClient(base_url=api) as http:
        before = (await http.get("/metrics")).text
        marker = secrets.token_hex(4)
        for n in range(5):
            await http.request(f"X{marker.upper()}{n}", f"/v1/orders/{marker}-{n}")
            await http.request("GET", f"/{marker}/{n}")
            await http.request("BREW", f"/{marker}")
        after = (await http.get("/metrics")).text

    def series(text: str) -> set[str]:
        lines = text.splitlines()
        return {
            line.rpartition(" ")[0]
            for line in lines
            if line.startswith("api_requests_total{") and "/metrics" not in line
        }

    new = series(after) - series(before)
    assert marker not in after and marker.upper() not in after and "BREW" not in after
    labels = {part for line in new for part in line.split(",")}
    assert all('method="other"' in line or 'route="other"' in line for line in new), new
    assert not {label for label in labels if label.startswith("route=")} - {
        'route="other"',
        'route="/v1/orders/{order_id}"',
    }
