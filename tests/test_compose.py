"""docker-compose.yml is valid Compose, and every setting it passes is one the service reads."""

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft7Validator

from core.settings import Settings
from simulator.settings import SimulatorSettings

ROOT = Path(__file__).resolve().parents[1]
# The Compose specification's schema, from the shared folder beside the project (never copied in).
SCHEMA = ROOT.parent / "shared" / "schemas" / "compose-spec.json"
# Variables read by the images the file uses, not by this project.
THIRD_PARTY = {"postgres", "temporal", "temporal-ui"}


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


@pytest.mark.skipif(not SCHEMA.exists(), reason="the shared Compose schema is not beside this checkout")
def test_the_compose_file_follows_the_compose_specification() -> None:
    schema = json.loads(SCHEMA.read_text())
    errors = [f"{'/'.join(map(str, e.path))}: {e.message}" for e in Draft7Validator(schema).iter_errors(_compose())]
    assert errors == []


def test_every_variable_given_to_our_services_is_a_setting() -> None:
    known = {name.upper() for name in Settings.model_fields} | {n.upper() for n in SimulatorSettings.model_fields}
    services = _compose()["services"]
    ours = {name: service for name, service in services.items() if name not in THIRD_PARTY}
    assert {"api", "worker", "migrate", "cmms-sim"} <= set(ours)
    for name, service in ours.items():
        unknown = set(service.get("environment", {})) - known
        assert not unknown, f"{name} sets variables nothing reads: {unknown}"
        assert service["environment"].get("ENVIRONMENT", "production") == "production"


def test_the_env_example_names_only_real_settings() -> None:
    known = {name.upper() for name in Settings.model_fields} | {n.upper() for n in SimulatorSettings.model_fields}
    names = set()
    for line in (ROOT / ".env.example").read_text().splitlines():
        line = line.lstrip("# ").strip()
        if "=" in line and line.split("=")[0].isupper():
            names.add(line.split("=")[0])
    assert names - known == {"POSTGRES_PASSWORD"}


def test_every_service_of_ours_runs_a_module_of_this_project() -> None:
    services = _compose()["services"]
    commands = [services[name]["command"] for name in services if name not in THIRD_PARTY]
    words = [word for command in commands for part in command for word in part.replace("&&", " ").split()]
    modules = [words[i + 1] for i, word in enumerate(words[:-1]) if word == "-m"]
    assert "core.search_attributes" in modules and "alembic" in modules
    for module in modules:
        assert importlib.util.find_spec(module) is not None, module
    scripts = [word for word in words if word.endswith(".py")]
    assert scripts and all((ROOT / script).is_file() for script in scripts)
