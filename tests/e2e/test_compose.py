"""docker-compose.yml is valid Compose, passes every setting the service reads and nothing else, and
runs production on Temporal's current images."""

import importlib.util
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft7Validator

from core.settings import ApiSettings, Settings
from devstack.temporal_server import cli_path
from simulators.cmms.settings import SimulatorSettings
from simulators.portabilling.settings import PortaBillingSimSettings

ROOT = Path(__file__).resolve().parents[2]
# The Compose specification's JSON schema, carried by the project (see tests/data/README.md).
SCHEMA = ROOT / "tests" / "data" / "compose-spec.json"
# Services running images of others: their variables are read by those images, not by this project
# (Kamailio's is Debian's package with our configuration).
THIRD_PARTY = {"postgres", "temporal-schema", "temporal", "temporal-namespace", "temporal-ui", "kamailio", "proxy"}
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


# The proxy in front of the API replicas, and its configuration file as the proxy service mounts it.
PROXY_CONF = ROOT / "deploy" / "proxy" / "nginx.conf"


def _published(service: dict[str, Any]) -> list[str]:
    return [str(port) for port in service.get("ports", [])]


def test_api_and_worker_can_be_scaled() -> None:
    """`docker compose up --scale api=N --scale worker=N`: Compose refuses to scale a service with a fixed
    container name or a fixed host port (the second replica cannot have it too)."""
    services = _compose()["services"]
    for name in ("api", "worker"):
        assert "container_name" not in services[name], name
        assert _published(services[name]) == [], f"{name} publishes a host port; the proxy is the API's address"
        assert "deploy" not in services[name] or "replicas" not in services[name]["deploy"], name


def test_the_proxy_publishes_the_api_and_balances_over_every_replica() -> None:
    services = _compose()["services"]
    proxy = services["proxy"]
    assert _published(proxy) == ["127.0.0.1:8000:8000"]
    assert proxy["depends_on"]["api"]["condition"] == "service_healthy"
    mounts = [str(volume).split(":") for volume in proxy["volumes"]]
    assert [(ROOT / source).resolve() for source, target, *_ in mounts if target == "/etc/nginx/nginx.conf"] == [
        PROXY_CONF
    ]
    config = PROXY_CONF.read_text()
    # Docker's DNS names every replica; a variable upstream makes nginx resolve it again (not once at start).
    assert re.search(r"^\s*resolver 127\.0\.0\.11\b", config, re.M)
    upstream = re.search(r"set (\$\w+) http://api:(\d+);", config)
    assert upstream is not None and f"proxy_pass {upstream[1]};" in config
    api_port = ApiSettings.model_fields["port"].default
    assert int(upstream[2]) == api_port and re.search(rf"^\s*listen {api_port};", config, re.M)
    # A POST one replica received is never sent to another (nginx's default, unless told `non_idempotent`).
    directives = [statement.split()[0] for statement in _nginx_statements(config)]
    assert "proxy_next_upstream" in directives and not re.search(r"proxy_next_upstream[^;]*non_idempotent", config)
    # Our processes that call the API reach it through the proxy too.
    for name, variable in (("cmms-sim", "BILLING_API_URL"), ("portabilling-sim", "PORTABILLING_SIM_EVENT_URL")):
        assert str(services[name]["environment"][variable]).startswith("http://proxy:8000"), name


def _nginx_statements(text: str) -> list[str]:
    """The configuration's statements, each ending in `;`, `{` or `}`; an AssertionError where the
    file does not parse (an unbalanced brace, a directive without its `;`)."""
    depth, statements, current = 0, [], ""
    for line in text.splitlines():
        code = re.sub(r"(^|\s)#.*$", "", line).strip()
        for char in code:
            current += char
            if char in ";{}":
                if char == "}":
                    assert current.strip() == "}", f"a directive without its ';' before '}}': {current!r}"
                    depth -= 1
                    assert depth >= 0, "a '}' closes nothing"
                elif char == "{":
                    depth += 1
                statements.append(current.strip())
                current = ""
        current += " "
    assert current.strip() == "" and depth == 0, f"unterminated: {current.strip()!r}, depth {depth}"
    return statements


def test_the_proxy_configuration_parses() -> None:
    statements = _nginx_statements(PROXY_CONF.read_text())
    assert "events {" in statements and "http {" in statements
    nginx = shutil.which("nginx")
    if nginx is not None:  # the real parser, where nginx is installed
        done = subprocess.run([nginx, "-t", "-c", str(PROXY_CONF)], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
