"""The simulators stand apart from the service: they import nothing of it but the wire-level models
(`contracts`) and the clients they use themselves (`clients`), so their development defaults are
written again; here they are held equal to the service's, so that `make run` works with no `.env`."""

import ast
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, SecretStr
from pydantic_settings import BaseSettings

from core.dev_secrets import (
    DEV_API_KEYS,
    DEV_CMMS_TOKEN,
    DEV_ESPF_PASSWORD,
    DEV_PORTABILLING_PASSWORD,
    DEV_SMS_PASSWORD,
    DEV_SMS_USERNAME,
)
from core.settings import Settings
from simulators.cmms.settings import SimulatorSettings
from simulators.portabilling.settings import PortaBillingSimSettings

ROOT = Path(__file__).resolve().parents[2]
SIMULATORS = ROOT / "simulators"
# What a simulator may import of this repository.
ALLOWED = {"simulators", "contracts", "clients"}


def _plain(value: Any) -> Any:
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def _default(settings: type[BaseSettings], name: str) -> Any:
    return _plain(settings.model_fields[name].default)


def _service_defaults() -> dict[str, Any]:
    """The service's default for each of its environment variables, by the variable's lower-case name
    (the simulators' field names)."""
    defaults: dict[str, Any] = {}
    for name, field in Settings.model_fields.items():
        part = field.annotation
        if isinstance(part, type) and issubclass(part, BaseModel):
            defaults |= {(f.alias or n).lower(): _plain(f.default) for n, f in part.model_fields.items()}
        else:
            defaults[(field.alias or name).lower()] = _plain(field.default)
    return defaults


def test_the_simulators_defaults_are_the_services_development_secrets() -> None:
    assert _default(SimulatorSettings, "cmms_token") == DEV_CMMS_TOKEN
    assert _default(SimulatorSettings, "sms_username") == DEV_SMS_USERNAME
    assert _default(SimulatorSettings, "sms_password") == DEV_SMS_PASSWORD
    # The CMMS relays the app's signup calls to billing with billing's development CMMS key.
    assert f"{_default(SimulatorSettings, 'billing_api_key')}:cmms" in DEV_API_KEYS.split(",")
    assert _default(PortaBillingSimSettings, "portabilling_password") == DEV_PORTABILLING_PASSWORD
    assert _default(PortaBillingSimSettings, "espf_password") == DEV_ESPF_PASSWORD


@pytest.mark.parametrize("settings", [SimulatorSettings, PortaBillingSimSettings])
def test_a_setting_both_sides_read_has_one_default(settings: type[BaseSettings]) -> None:
    service = _service_defaults()
    shared = set(settings.model_fields) & set(service)
    assert shared  # the credentials at least: the comparison is not vacuous
    assert {name: _default(settings, name) for name in shared} == {name: service[name] for name in shared}


def _project_packages() -> set[str]:
    return {path.parent.name for path in ROOT.glob("*/__init__.py")} | {p.stem for p in ROOT.glob("*.py")}


def test_the_simulators_import_nothing_of_the_service() -> None:
    project = _project_packages()
    assert {"api", "core", "services", "billing"} <= project
    found: dict[str, set[str]] = {}
    for path in SIMULATORS.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                top = name.partition(".")[0]
                if top in project and top not in ALLOWED:
                    found.setdefault(str(path.relative_to(ROOT)), set()).add(name)
    assert found == {}
