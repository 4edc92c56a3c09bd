"""API key parsing and the field rules the API applies at its edge."""

import logging

import pytest
from pydantic import TypeAdapter, ValidationError

from api.auth import ApiKeys, Role
from api.fields import Imei
from core.settings import Settings
from tests.support.production import PRODUCTION


def test_keys_carry_their_roles_and_admin_may_do_everything() -> None:
    keys = ApiKeys("web-key:website, ops-key:admin,relay:cmms+website")
    web, ops, relay = keys.identify("web-key"), keys.identify("ops-key"), keys.identify("relay")
    assert web is not None and web.may(Role.website) and not web.may(Role.cmms)
    assert ops is not None and all(ops.may(role) for role in Role)
    assert relay is not None and relay.may(Role.cmms) and relay.may(Role.website) and not relay.may(Role.admin)
    assert keys.identify("web") is None and keys.identify("") is None
    assert "web-key" not in web.label  # labels name a key without revealing it


@pytest.mark.parametrize("spec", ["secretkey", "secretkey:superuser", ":admin"])
def test_a_malformed_key_list_is_refused_without_echoing_it(spec: str) -> None:
    with pytest.raises(ValueError, match="API_KEYS entry 1") as raised:
        ApiKeys(spec)
    assert "secretkey" not in str(raised.value)


def test_a_named_key_is_its_name_and_keys_under_one_name_are_one_caller() -> None:
    keys = ApiKeys("shop@old-key:website, shop@new-key:website,partner_2@p-key:website,web-key:website")
    old, new, partner, unnamed = (keys.identify(key) for key in ("old-key", "new-key", "p-key", "web-key"))
    assert old is not None and new is not None and old == new  # a rotation: one caller, one label
    assert old.name == "shop" and old.order_owner == "shop" and old.label == "shop:website"
    assert partner is not None and partner.name == "partner_2"
    assert unnamed is not None and unnamed.name is None and unnamed.order_owner is None
    assert keys.identify("shop@old-key") is None  # the name is not part of the key


def test_named_admin_reads_every_order() -> None:
    ops = ApiKeys("ops@ops-key:admin").identify("ops-key")
    assert ops is not None and ops.name == "ops" and ops.order_owner is None


@pytest.mark.parametrize(
    ("spec", "key"),
    [
        ("a.b@key:website", "a.b@key"),  # not a name before the `@`: the whole text is the key
        ("@key:website", "@key"),
        ("shop@key@more:website", "key@more"),  # named by the text before the first `@`
    ],
)
def test_only_a_name_before_the_first_at_names_a_key(spec: str, key: str) -> None:
    caller = ApiKeys(spec).identify(key)
    assert caller is not None and caller.name == ("shop" if spec.startswith("shop@") else None)


@pytest.mark.parametrize("spec", ["shop@:website", "shop@secretkey", f"{'n' * 65}@secretkey:website"])
def test_a_malformed_named_entry_is_refused_without_echoing_it(spec: str) -> None:
    with pytest.raises(ValueError, match="API_KEYS entry 1") as raised:
        ApiKeys(spec)
    assert "secretkey" not in str(raised.value)


def test_a_key_given_twice_is_refused_without_echoing_it() -> None:
    with pytest.raises(ValueError, match="API_KEYS entry 2 repeats the key of entry 1") as raised:
        ApiKeys("shop@secretkey:website,other-shop@secretkey:website")
    assert "secretkey" not in str(raised.value)


def test_each_unnamed_website_key_is_warned_of(caplog: pytest.LogCaptureFixture) -> None:
    keys = ApiKeys("web-key:website,shop@s-key:website,ops-key:admin+website,relay:cmms+website,c:cmms")
    with caplog.at_level(logging.WARNING, logger="api.auth"):
        keys.warn_of_unnamed_website_keys()
    warned = [record.getMessage() for record in caplog.records]
    assert len(warned) == 2 and "entry 1 " in warned[0] and "entry 4 " in warned[1], warned
    assert not any(key in message for message in warned for key in ("web-key", "relay"))


def test_imei_rules() -> None:
    imei = TypeAdapter(Imei)
    assert imei.validate_python("490154203237518") == "490154203237518"
    for bad in ["490154203237517", "12345678901234", "abcdefghijklmno"]:
        with pytest.raises(ValidationError):
            imei.validate_python(bad)


def test_production_refuses_the_development_secret() -> None:
    with pytest.raises(ValidationError, match="SECRET_KEY"):
        Settings(_env_file=None, environment="production")
    # Every development secret must be replaced in production.
    assert Settings(_env_file=None, **PRODUCTION).environment == "production"
