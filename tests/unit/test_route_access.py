"""The access table names every route the app serves, and nothing else (tests/support/access.py)."""

from tests.support.access import ACCESS, ROUTES


def test_every_route_has_an_access_decision() -> None:
    assert set(ROUTES) - set(ACCESS) == set(), "a route without a line in ACCESS: decide who may call it"
    assert set(ACCESS) - set(ROUTES) == set(), "ACCESS names a route the app no longer has"


def test_the_website_reads_only_its_orders() -> None:
    website = {route for route, (who, _) in ACCESS.items() if who == "website"}
    assert website == {("POST", "/v1/orders"), ("GET", "/v1/orders"), ("GET", "/v1/orders/{order_id}")}
