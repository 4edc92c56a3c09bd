"""Bulk-import benchmark (docs/imports.md): a file of new accounts imported and pushed to the CMMS under its
rate limit.

    .venv/bin/python -m bench.imports --rows 20000 --rate 50
    .venv/bin/python -m bench.imports --rows 20000 --rate 0 --floor

Starts its own system (bench/harness.py: Temporal dev server on file-backed SQLite with WAL, the CMMS
simulator, the worker and the API as separate processes), with `CMMS_RATE_LIMIT_PER_SECOND=--rate` (0: no
limit), `IMPORT_WINDOW=--window` and `IMPORT_PAGE_SIZE=--page-size`, then:
1. seeds what the rows refer to (a customer class, a customer, a product) straight into billing;
2. writes the file: `--rows` new accounts (not `in_cmms`), each with an IMEI, no password (the service
   generates one per row, as for an order: that CPU is part of the measurement);
3. submits it, and times from the start of the submission until `GET /v1/imports/{id}` says `completed`.
   Target with a limit R: at most 1.2 x rows / R seconds; with none, rows/s >= 0.6 x the engine floor
   (`--floor`: a no-op workflow of one activity, as many in flight as the import's window, measured on the
   same server after the import, after a warm-up);
4. reads the simulator's busiest second (`GET /_sim/stats`, target <= R), counts the file's accounts the
   CMMS holds (every row, with its IMEI), and gives the CPU each process spent per row.

How the file is submitted: as an operator would, in one `POST /v1/imports` (CSV). 20,000 rows of this
shape are about 1 MB, well within `IMPORT_MAX_BODY_BYTES` (4 MiB), and one file is one import: one
transaction, one report of rejected lines, one progress to follow. Splitting it would give several
imports to follow for no gain; the command-line form (`python -m services.imports FILE`) is for a file
beyond the API's limit, and needs a shell on a machine with the service's settings. A file larger than
the limit (a much larger `--rows`) is imported that way here too, with the stack's settings.
"""

import argparse
import asyncio
import json
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from stdnum import luhn

from bench.cmms_limit import (
    LimitedStack,
    calls_over_time,
    floor_report,
    limit_report,
    limited_stack,
    reset_stats,
    sim_stats,
    warm_floor,
)
from bench.harness import REPO_ROOT, BenchStack, cmms_records, cpu_ms_per_run, cpu_per_run
from bench.seed import bulk_insert, customer_rows

ADMIN = {"Authorization": "Bearer dev-admin-key"}
CUSTOMER = "bench-import"
PRODUCT = "bench"
PREFIX = "imp-"
FLOOR_TARGET = 0.6  # the issue's: imported accounts/s >= 0.6 x the 1-activity no-op floor


def account_id(index: int) -> str:
    return f"{PREFIX}{index:06d}"


def imei(index: int) -> str:
    """A distinct valid IMEI per row (a repeated one would have every line holding it rejected)."""
    body = f"35{index:012d}"
    return body + luhn.calc_check_digit(body)


def csv_file(rows: int) -> bytes:
    """The file: a header, then one new account a line, its password left to the service."""
    lines = ["account_id,customer_id,product_id,imei,in_cmms"]
    lines += [f"{account_id(i)},{CUSTOMER},{PRODUCT},{imei(i)},false" for i in range(rows)]
    return ("\n".join(lines) + "\n").encode()


async def submit(stack: BenchStack, api: httpx.AsyncClient, body: bytes, limit: int) -> tuple[dict[str, Any], float]:
    """Import the file: by the API when it is within the body limit, else by the command-line form. The
    report, and the CPU seconds of the command (0 by the API, whose own the stack counts)."""
    if len(body) <= limit:
        answer = await api.post("/v1/imports", content=body, headers=ADMIN | {"Content-Type": "text/csv"})
        answer.raise_for_status()
        report: dict[str, Any] = answer.json()
        return report, 0.0
    before = _children_cpu()
    with tempfile.TemporaryDirectory(prefix="bench-import-") as scratch:
        path = Path(scratch) / "base.csv"
        path.write_bytes(body)
        command = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "services.imports",
            str(path),
            cwd=REPO_ROOT,
            env=stack.env,
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await command.communicate()
    if command.returncode != 0:
        raise RuntimeError(f"python -m services.imports exited with {command.returncode}")
    report = json.loads(out)
    return report, _children_cpu() - before


def _children_cpu() -> float:
    """CPU seconds of this process's children that have ended and been waited for (the command, here)."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


async def completed(api: httpx.AsyncClient, import_id: str) -> dict[str, Any]:
    """Poll the import's progress until it completed; its last progress."""
    while True:
        answer = await api.get(f"/v1/imports/{import_id}", headers=ADMIN)
        answer.raise_for_status()
        progress: dict[str, Any] = answer.json()
        if progress["status"] == "completed":
            return progress
        if progress["status"] == "failed":
            raise RuntimeError(f"the import's workflow ended: {progress}")
        await asyncio.sleep(0.25)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--rate", type=float, default=50.0, help="the CMMS rate limit, calls/s (0: none)")
    parser.add_argument("--window", type=int, default=50, help="account pushes in flight (IMPORT_WINDOW)")
    parser.add_argument("--page-size", type=int, default=100, help="rows per page (IMPORT_PAGE_SIZE)")
    parser.add_argument("--floor", action="store_true", help="also measure the engine floor")
    args = parser.parse_args()
    env = {"IMPORT_WINDOW": str(args.window), "IMPORT_PAGE_SIZE": str(args.page_size)}
    async with limited_stack(args.rate, **env) as running:
        await measure(running, args)


async def measure(running: LimitedStack, args: argparse.Namespace) -> None:
    stack, api, sim, settings = running.stack, running.api, running.sim, running.settings
    bulk_insert(settings.database, customer_rows(CUSTOMER, PRODUCT))
    body = csv_file(args.rows)
    await reset_stats(sim)
    cpu_before = stack.cpu()
    started, wall_clock = time.perf_counter(), time.time()
    report, command_cpu = await submit(stack, api, body, settings.imports.max_body_bytes)
    submitted = time.perf_counter() - started
    if report["accepted"] != args.rows:
        raise RuntimeError(f"{args.rows - report['accepted']} rows rejected, the first: {report['rejected'][:3]}")
    progress = await completed(api, report["import_id"])
    elapsed = time.perf_counter() - started
    cpu_after = stack.cpu()
    if command_cpu:
        cpu_after["import command"] = command_cpu
    stats = await sim_stats(sim)
    records = [r for r in await cmms_records(sim) if r["account_id"].startswith(PREFIX)]
    held = sum(1 for r in records if r["imei"] == imei(int(r["account_id"].removeprefix(PREFIX))))
    how = "POST /v1/imports" if len(body) <= settings.imports.max_body_bytes else "python -m services.imports"
    print(
        f"import of {args.rows} rows ({len(body) / 1e3:.0f} kB CSV by {how}), CMMS limit {args.rate or 'none'}/s, "
        f"window {args.window}, page {args.page_size}:"
    )
    print(f"  {elapsed:.1f} s ({args.rows / elapsed:.1f} rows/s), of which the submission {submitted:.1f} s")
    print(f"  progress {progress}")
    for line in limit_report(args.rows, elapsed, args.rate, stats):
        print(f"  {line}")
    print(f"  {calls_over_time(stats, wall_clock, args.rate)}")
    print(f"  CMMS calls {stats['provisioning_calls']}, writes {stats['writes']}")
    print(f"  CMMS records of the file's accounts: {len(records)} of {args.rows}, {held} with the row's IMEI")
    print(f"  CPU ms per row: {cpu_per_run(cpu_before, cpu_after, args.rows)}")
    if args.floor:
        floor = await warm_floor(running, args.window)
        cpu_ms = sum(cpu_ms_per_run(cpu_before, cpu_after, args.rows).values())
        for line in floor_report("import", args.rows / elapsed, cpu_ms, floor, FLOOR_TARGET):
            print(f"  {line}")


if __name__ == "__main__":
    asyncio.run(main())
