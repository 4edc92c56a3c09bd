"""The settings come grouped by component, from the same flat environment variables as ever."""

from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from core.settings import CmmsSettings, Settings, settings_error_line


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No setting of the developer's environment reaches the test."""
    for name in Settings.variables():
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_flat_variables_reach_their_parts(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clean_env.setenv("TEMPORAL_TASK_QUEUE", "from-the-environment")
    clean_env.setenv("cmms_url", "http://cmms.example:1")  # any case, as before
    clean_env.setenv("RECONCILE_EVERY", "15m")
    env_file = tmp_path / ".env"
    env_file.write_text("TEMPORAL_TASK_QUEUE=from-the-file\nSIGNUP_CODE_DIGITS=8\nAPI_PORT=9001\n")
    settings = Settings(_env_file=env_file)
    assert settings.temporal.task_queue == "from-the-environment"  # the environment before `.env`
    assert settings.cmms.url == "http://cmms.example:1"
    assert settings.reconciliation.every is not None and settings.reconciliation.every.total_seconds() == 900
    assert (settings.signups.code_digits, settings.api.port) == (8, 9001)
    assert settings.temporal.address == "127.0.0.1:7233"  # the rest keep their defaults


def test_values_given_beat_the_environment_however_spelt(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("TEMPORAL_ADDRESS", "env:1")
    assert Settings(_env_file=None, temporal_address="given:2").temporal.address == "given:2"
    assert Settings(_env_file=None, TEMPORAL_ADDRESS="given:3").temporal.address == "given:3"
    assert Settings(_env_file=None).temporal.address == "env:1"


def test_a_part_given_whole_keeps_its_values(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("CMMS_URL", "http://from-env")
    clean_env.setenv("CMMS_TIMEOUT_SECONDS", "3")
    settings = Settings(_env_file=None, cmms={"url": "http://given"})
    assert (settings.cmms.url, settings.cmms.timeout_seconds) == ("http://given", 3.0)
    whole = Settings(_env_file=None, cmms=CmmsSettings(url="http://whole"))
    assert (whole.cmms.url, whole.cmms.timeout_seconds) == ("http://whole", 10.0)


def test_given_tells_a_set_variable_from_a_default(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("SMS_GATEWAY_URL", "http://kannel.example/cgi-bin/sendsms")
    settings = Settings(_env_file=None, environment="test")
    assert settings.given("SMS_GATEWAY_URL") and settings.given("ENVIRONMENT")
    assert not settings.given("CMMS_URL") and not settings.given("SECRET_KEY")


def test_an_error_names_the_variable_and_never_the_value(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("API_PORT", "not-a-port-7f3a")
    clean_env.setenv("CMMS_TOKEN", "")
    clean_env.setenv("RECONCILE_WINDOW", "0")
    with pytest.raises(ValidationError) as raised:
        Settings(_env_file=None)
    line = settings_error_line(raised.value)
    assert line.startswith("API_PORT: ") and "RECONCILE_WINDOW: " in line
    assert "not-a-port-7f3a" not in line + str(raised.value)


def test_every_variable_has_one_place_and_round_trips(clean_env: pytest.MonkeyPatch) -> None:
    settings = Settings(_env_file=None, api_port=9100, cmms_token="t-1")
    values = settings.by_variable()
    assert set(values) == Settings.variables() and len(values) > 80
    assert values["API_PORT"] == 9100 and values["CMMS_TOKEN"] == SecretStr("t-1")
    again: dict[str, Any] = {
        k: v.get_secret_value() if isinstance(v, SecretStr) else v for k, v in values.items() if v is not None
    }
    assert Settings(_env_file=None, **again).by_variable() == values


def test_with_changes_changes_only_what_it_names(clean_env: pytest.MonkeyPatch) -> None:
    settings = Settings(_env_file=None)
    changed = settings.with_changes(api_port=9200, reconcile_page_size=1, environment="test")
    assert (changed.api.port, changed.reconciliation.page_size, changed.environment) == (9200, 1, "test")
    assert (settings.api.port, settings.reconciliation.page_size) == (8000, 200)  # the original as it was
    assert changed.api.host == settings.api.host
    with pytest.raises(KeyError):
        settings.with_changes(api_prot=1)


def test_the_sip_registrar_is_opt_in_and_refused_beside_portabilling(clean_env: pytest.MonkeyPatch) -> None:
    default = Settings(_env_file=None).sip
    assert (default.registrar, default.enabled, default.port) == ("none", False, 5060)
    assert default.database_url == "sqlite:///var/sip.sqlite3"
    clean_env.setenv("SIP_REGISTRAR", "kamailio")
    clean_env.setenv("SIP_PORT", "5071")
    settings = Settings(_env_file=None)
    assert settings.sip.enabled and settings.sip.port == 5071
    clean_env.setenv("BILLING_SOURCE", "portabilling")
    with pytest.raises(ValidationError) as refused:
        Settings(_env_file=None)
    line = settings_error_line(refused.value)
    assert "\n" not in line and "SIP_REGISTRAR=kamailio needs the built-in billing" in line and "PortaSIP" in line
