"""Production asks for the countries signups may come from: a star for all (with a day's SMS budget chosen
on purpose), never an empty list."""

import pytest
from pydantic import ValidationError

from core.settings import Settings
from tests.support.production import PRODUCTION


def test_production_refuses_an_empty_country_list_and_takes_a_star_for_all() -> None:
    production = {name: value for name, value in PRODUCTION.items() if name != "signup_allowed_countries"}
    with pytest.raises(ValidationError, match="SIGNUP_ALLOWED_COUNTRIES"):
        Settings(_env_file=None, **production)
    with pytest.raises(ValidationError, match="SIGNUP_ALLOWED_COUNTRIES"):
        Settings(_env_file=None, **production, signup_allowed_countries=" , ")
    assert Settings(_env_file=None, **production, signup_allowed_countries="*").signups.allowed_countries == frozenset()
    assert Settings(_env_file=None, **production, signup_allowed_countries="de,FR").signups.allowed_countries == {
        "DE",
        "FR",
    }
    assert Settings(_env_file=None).signups.allowed_countries == frozenset()  # development: all, as before


def test_production_takes_every_country_only_with_a_daily_budget_set_explicitly() -> None:
    production = {name: value for name, value in PRODUCTION.items() if name != "signup_daily_budget"}
    with pytest.raises(ValidationError, match="SIGNUP_DAILY_BUDGET"):
        Settings(_env_file=None, **production)
    with pytest.raises(ValidationError, match="SIGNUP_DAILY_BUDGET"):
        Settings(_env_file=None, **production | {"signup_allowed_countries": "DE, *"})
    assert Settings(_env_file=None, **production, signup_daily_budget=10000).signups.daily_budget == 10000
    assert Settings(_env_file=None, **production | {"signup_allowed_countries": "DE,FR"}).signups.daily_budget > 0
    assert Settings(_env_file=None, signup_allowed_countries="*").signups.daily_budget > 0  # development
