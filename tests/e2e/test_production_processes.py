"""Each process of the service started in production with a development secret stops at once, with one
line naming the setting and without the secret (the settings' own rules: tests/unit/test_production_settings.py)."""

import os
import subprocess
import sys
from pathlib import Path

from core.dev_secrets import DEV_PAYLOAD_KEYS
from core.settings import Settings
from tests.support.production import PRODUCTION

ROOT = Path(__file__).resolve().parents[2]
PAYLOAD_KEY = DEV_PAYLOAD_KEYS.partition(":")[2]


def test_a_process_started_with_a_development_secret_stops_with_one_line_naming_it(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k.upper() not in Settings.variables()}
    env |= {k.upper(): v for k, v in PRODUCTION.items()} | {"PAYLOAD_KEYS": f"prod:{PAYLOAD_KEY.rstrip('=')}"}
    env["PYTHONPATH"] = str(ROOT)  # run from an empty directory: no `.env` of the checkout is read
    for module in (["-m", "api"], [str(ROOT / "worker.py")], ["-m", "codec_server"]):
        done = subprocess.run(
            [sys.executable, *module], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 1, done.stderr
        assert done.stderr.strip().splitlines() == ["refusing to start: PAYLOAD_KEYS holds a development key"]
        assert PAYLOAD_KEY.rstrip("=") not in done.stdout + done.stderr


def test_a_process_started_with_a_short_token_stops_with_one_line_naming_it(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k.upper() not in Settings.variables()}
    env |= {k.upper(): v for k, v in PRODUCTION.items()} | {"CODEC_SERVER_TOKEN": "short-codec-token"}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(
        [sys.executable, "-m", "codec_server"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip().splitlines() == [
        "refusing to start: CODEC_SERVER_TOKEN must be at least 32 bytes in production"
    ]
    assert "short-codec-token" not in done.stdout + done.stderr
