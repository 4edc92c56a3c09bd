"""What an ESPF event is about (`contracts.portabilling.scope_of`), that the README's subscription list
names every event this release acts on, and where a product's messaging policy is looked for
(`AttributePath`)."""

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from contracts.portabilling import AttributePath, EventType, ShapeNotFound, scope_of
from core.settings import Settings, settings_error_line

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.mark.parametrize(
    ("event_type", "scope", "known"),
    [
        ("Account/Blocked", "account", True),
        ("Account/Service/Msg/QuotaExceeded", "account", True),
        ("Subscriber/Updated", "account", True),
        ("Customer/Blocked", "customer", True),
        ("Customer/Unblocked", "customer", True),
        ("Customer/Status/Suspended", "customer", True),
        ("Customer/Status/Unsuspend", "customer", True),
        ("Customer/Status/Closed", "customer", True),
        ("Invoice/New", "noise", True),
        ("DID/Status/Assigned", "noise", True),
        ("PaymentTransaction/New", "noise", True),
        ("Account/BalanceChanged", "noise", True),
        ("Customer/BalanceChanged", "noise", True),
        ("Customer/ZeroAvailableFunds", "noise", True),
        ("Account/Renamed/Later", "account", False),
        ("Customer/Renamed/Later", "customer", False),
        ("Something/Else", "noise", False),
    ],
)
def test_what_an_event_is_about(event_type: str, scope: str, known: bool) -> None:
    assert scope_of(event_type) == (scope, known)


def test_the_readme_subscribes_to_every_event_acted_on() -> None:
    text = README.read_text()
    section = text[text.index("**In PortaBilling** (its administrator)") : text.index("**Here**:")]
    listed = set(re.findall(r"`((?:Account|Customer|Subscriber)/[A-Za-z/*]+)`", section))
    named = {t.value for t in EventType} | {"Customer/Status/*"}
    assert named - listed == set()


POLICY = AttributePath("service_policies[service=messaging].push_events")


@pytest.mark.parametrize(
    ("info", "flag"),
    [
        ({"service_policies": [{"service": "messaging", "push_events": "Y"}]}, True),
        ({"service_policies": [{"service": "messaging", "push_events": "N"}]}, False),
        ({"service_policies": [{"service": "messaging", "push_events": 1}]}, True),
        ({"service_policies": [{"service": "messaging", "push_events": False}]}, False),
        ({"service_policies": [{"service": "voice", "push_events": "Y"}]}, None),
        ({"service_policies": []}, None),
    ],
)
def test_a_policy_flag_is_read_where_the_path_says(info: dict[str, object], flag: bool | None) -> None:
    assert POLICY.flag(info) is flag


@pytest.mark.parametrize(
    ("info", "said"),
    [
        ({"name": "Mobile"}, "no 'service_policies'"),
        ({"service_policies": {"messaging": "Y"}}, "is not a list"),
        ({"service_policies": [{"service": "messaging"}]}, "no 'service_policies[service=messaging].push_events'"),
        ({"service_policies": [{"service": "messaging", "push_events": {"on": 1}}]}, "is not a flag"),
    ],
)
def test_a_shape_not_found_says_which_part(info: dict[str, object], said: str) -> None:
    with pytest.raises(ShapeNotFound, match=re.escape(said)):
        POLICY.flag(info)


@pytest.mark.parametrize("text", ["", "a..b", "a[b]", "a[=x]", "1a", "a.b[c=d"])
def test_a_path_that_is_not_one_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="is not a path"):
        AttributePath(text)


def test_the_policy_path_setting_is_checked_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in Settings.variables():
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ValidationError) as raised:
        Settings(_env_file=None, PORTABILLING_MESSAGING_POLICY_PATH="products[messaging")
    assert settings_error_line(raised.value).startswith("PORTABILLING_MESSAGING_POLICY_PATH: ")
    assert Settings(_env_file=None, PORTABILLING_MESSAGING_POLICY_PATH="").portabilling.messaging_policy is None
    default = Settings(_env_file=None).portabilling.messaging_policy
    assert default is not None and default.text == "service_policies[service=messaging].push_events"
