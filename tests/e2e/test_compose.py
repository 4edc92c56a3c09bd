"""docker-compose.yml is valid Compose, passes every setting the service reads and nothing else, and
runs production on Temporal's current images."""

import importlib.util
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft7Validator

from core.settings import Settings
from devstack.temporal_server import cli_path
from simulators.cmms.settings import SimulatorSettings
from simulators.portabilling.settings import PortaBillingSimSettings

ROOT = Path(__file__).resolve().parents[2]
# The Compose specification's JSON schema, carried by the project (see tests/data/README.md).
SCHEMA = ROOT / "tests" / "data" / "compose-spec.json"
# Services running images of others: their variables are read by those images, not by this project
# (Kamailio's is Debian's package with our configuration).
THIRD_PARTY = {"postgres", "temporal-schema", "temporal", "temporal-namespace", "temporal-ui", "kamailio"}
# The services that run the provisioning service itself (every one reads `core.settings.Settings`).
SERVICE = {"api", "worker", "migrate", "codec-server"}


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def test_the_compose_file_follows_the_compose_specification() -> None:
    schema = json.loads(SCHEMA.read_text())
    errors = [f"{'/'.join(map(str, e.path))}: {e.message}" for e in Draft7Validator(schema).iter_errors(_compose())]
    assert errors == []


def test_the_api_answers_before_the_engine_when_cpu_is_short() -> None:
    services = _compose()["services"]
    default = 1024  # Docker's CPU weight for a container that sets none
    api = services["api"].get("cpu_shares", default)
    assert services["worker"]["cpu_shares"] < api and services["temporal"]["cpu_shares"] < api


def _known() -> set[str]:
    """Every variable the project reads: the service's, and its two simulators'."""
    return _setting_names(Settings) | _setting_names(SimulatorSettings) | _setting_names(PortaBillingSimSettings)


def test_every_variable_given_to_our_services_is_a_setting() -> None:
    known = _known()
    services = _compose()["services"]
    ours = {name: service for name, service in services.items() if name not in THIRD_PARTY}
    assert {"api", "worker", "migrate", "cmms-sim"} <= set(ours)
    for name, service in ours.items():
        unknown = set(service.get("environment", {})) - known
        assert not unknown, f"{name} sets variables nothing reads: {unknown}"
        assert service["environment"].get("ENVIRONMENT", "production") == "production"


def test_the_env_example_names_only_real_settings() -> None:
    known = _known()
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
    assert "core.register_search_attributes" in modules and "alembic" in modules
    for module in modules:
        assert importlib.util.find_spec(module) is not None, module
    scripts = [word for word in words if word.endswith(".py")]
    assert scripts and all((ROOT / script).is_file() for script in scripts)


def _setting_names(settings: type[Settings] | type[SimulatorSettings] | type[PortaBillingSimSettings]) -> set[str]:
    if settings is Settings:
        return set(Settings.variables())
    return {name.upper() for name in settings.model_fields}


def test_every_setting_reaches_every_process_of_the_service() -> None:
    services = _compose()["services"]
    assert set(services) >= SERVICE
    for name in sorted(SERVICE):
        missing = _setting_names(Settings) - set(services[name]["environment"])
        assert not missing, f"{name} is never given {sorted(missing)}"
    missing = _setting_names(SimulatorSettings) - set(services["cmms-sim"]["environment"])
    assert not missing, f"cmms-sim is never given {sorted(missing)}"
    missing = _setting_names(PortaBillingSimSettings) - set(services["portabilling-sim"]["environment"])
    assert not missing, f"portabilling-sim is never given {sorted(missing)}"


def test_production_is_given_on_purpose() -> None:
    environment = _compose()["services"]["api"]["environment"]
    assert environment["ENVIRONMENT"] == "production"
    # Required: no fallback to the simulator, and no development secret can slip through.
    for name in ("CMMS_URL", "SMS_GATEWAY_URL", "SMS_PASSWORD", "API_KEYS", "SECRET_KEY", "PAYLOAD_KEYS"):
        assert str(environment[name]).startswith(f"${{{name}:?"), name


def test_temporal_runs_on_its_current_images_with_a_schema_job() -> None:
    services = _compose()["services"]
    images = {name: str(service.get("image", "")) for name, service in services.items()}
    assert not [image for image in images.values() if "auto-setup" in image]  # deprecated all-in-one image
    assert images["temporal"].startswith("temporalio/server:")
    assert images["temporal-schema"].startswith("temporalio/admin-tools:")
    # Versions are named, and the server's is the one the tests run against (the pinned CLI's dev server).
    assert all(":" in image and not image.endswith(":latest") for name, image in images.items() if name in THIRD_PARTY)
    cli = subprocess.run([str(cli_path()), "--version"], capture_output=True, text=True, check=True).stdout
    server_version = re.search(r"Server (\S+?)[,)]", cli)
    assert server_version is not None, cli
    assert images["temporal"].partition(":")[2] == images["temporal-schema"].partition(":")[2] == server_version[1]
    schema_job = " ".join(services["temporal-schema"]["command"])
    assert "setup-schema" in schema_job and "update-schema" in schema_job
    depends = services["temporal"]["depends_on"]["temporal-schema"]["condition"]
    assert depends == "service_completed_successfully"


def test_the_image_holds_every_package_of_the_project() -> None:
    """The Dockerfile copies each top-level package the project installs: one left out imports nowhere."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    copied = set(re.findall(r"^COPY (\w+) \1$", dockerfile, flags=re.M))
    packages = {path.parent.name for path in ROOT.glob("*/__init__.py")} - {"tests"}
    assert packages - copied == set(), "the Dockerfile copies no such folder"
