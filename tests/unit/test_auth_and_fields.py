"""API key parsing and the field rules the API applies at its edge."""

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
