"""Who may call each route of the app: the access table, which tests/integration/test_route_access.py holds
every route to and tests/unit/test_route_access.py holds complete.

The routes come from the app itself, so a route added without a line in ACCESS fails: each route ships
with a decision on who may call it. docs/security.md's "Who may do what" mirrors ACCESS.
"""

from typing import Literal

from fastapi import FastAPI
from fastapi.routing import iter_route_contexts

from api.app import create_app
from core.settings import Settings

Who = Literal["anyone", "website", "cmms", "admin"]
# Who calls: a website key is named (`name@key:website`, its own orders only) or unnamed (every order);
# both hold the website role, so the table's decisions are the same for both.
Caller = Literal["no key", "wrong key", "named website", "website", "cmms", "admin"]

# (method, route template) → who may call it, and what a permitted call answers here: the test sends
# an empty JSON object as the body and ids that do not exist, so a permitted call meets validation
# (422) or a missing resource (404); what matters is that it is neither 401 nor 403.
ACCESS: dict[tuple[str, str], tuple[Who, int]] = {
    ("GET", "/healthz"): ("anyone", 200),
    ("GET", "/metrics"): ("anyone", 200),
    ("GET", "/openapi.json"): ("anyone", 200),
    ("GET", "/docs"): ("anyone", 200),
    ("POST", "/v1/orders"): ("website", 422),
    ("GET", "/v1/orders"): ("website", 200),
    ("GET", "/v1/orders/{order_id}"): ("website", 404),
    ("POST", "/v1/signups"): ("cmms", 422),
    ("GET", "/v1/signups/{signup_id}"): ("cmms", 404),
    ("GET", "/v1/signups"): ("cmms", 200),
    ("POST", "/v1/signups/{signup_id}/resend"): ("cmms", 404),
    ("POST", "/v1/signups/{signup_id}/verify"): ("cmms", 422),
    ("POST", "/v1/signups/{signup_id}/confirm"): ("cmms", 422),
    # Money movements want an Idempotency-Key, checked before the body: the table's calls send none.
    ("POST", "/v1/accounts/{account_id}/wallets/messaging/charges"): ("cmms", 400),
    ("POST", "/v1/resellers"): ("admin", 422),
    ("GET", "/v1/resellers/{reseller_id}"): ("admin", 404),
    ("GET", "/v1/resellers"): ("admin", 200),
    ("PATCH", "/v1/resellers/{reseller_id}"): ("admin", 422),
    ("POST", "/v1/customer-classes"): ("admin", 422),
    ("GET", "/v1/customer-classes/{customer_class_id}"): ("admin", 404),
    ("POST", "/v1/customers"): ("admin", 422),
    ("GET", "/v1/customers/{customer_id}"): ("admin", 404),
    ("GET", "/v1/customers"): ("admin", 200),
    ("DELETE", "/v1/customers/{customer_id}"): ("admin", 404),
    ("PATCH", "/v1/customers/{customer_id}"): ("admin", 422),
    ("GET", "/v1/customers/{customer_id}/rollout"): ("admin", 404),
    ("POST", "/v1/products"): ("admin", 422),
    ("GET", "/v1/products/{product_id}"): ("admin", 404),
    ("GET", "/v1/products"): ("admin", 200),
    ("PATCH", "/v1/products/{product_id}"): ("admin", 404),
    ("GET", "/v1/accounts/{account_id}"): ("admin", 404),
    ("GET", "/v1/accounts"): ("admin", 200),
    ("GET", "/v1/accounts/{account_id}/history"): ("admin", 404),
    ("GET", "/v1/audit"): ("admin", 422),  # `object` is required
    ("PATCH", "/v1/accounts/{account_id}"): ("admin", 404),
    ("DELETE", "/v1/accounts/{account_id}"): ("admin", 404),
    ("POST", "/v1/accounts/{account_id}/wallets"): ("admin", 422),
    ("GET", "/v1/accounts/{account_id}/wallets/messaging"): ("admin", 404),
    ("GET", "/v1/accounts/{account_id}/wallets/messaging/movements"): ("admin", 404),
    ("POST", "/v1/accounts/{account_id}/wallets/messaging/top-ups"): ("admin", 400),
    ("PUT", "/v1/accounts/{account_id}/service-policies/messaging"): ("admin", 422),
    # Kannel fetches a report's URL: its per-message token is the credential, not an API key.
    ("GET", "/v1/sms/delivery-reports/{token}"): ("anyone", 422),
    ("POST", "/v1/sms/delivery-reports/{token}"): ("anyone", 422),
    # PortaBilling's ESPF authenticates with HTTP Basic, not an API key, and only beside PortaBilling
    # (BILLING_SOURCE=portabilling; its own access is tested in tests/test_portabilling_events.py).
    ("POST", "/v1/portabilling/events"): ("anyone", 404),
    ("POST", "/v1/reconciliations"): ("admin", 202),  # it takes no body: a run is started
    ("GET", "/v1/reconciliations/{reconciliation_id}"): ("admin", 404),
    ("POST", "/v1/reconciliations/{reconciliation_id}/confirm"): ("admin", 404),
    ("POST", "/v1/imports"): ("admin", 415),  # a file is NDJSON or CSV, not JSON
    ("GET", "/v1/imports/{import_id}"): ("admin", 404),
}


def app_routes(app: FastAPI) -> set[tuple[str, str]]:
    """(method, template) of every route the app serves (HEAD goes with GET)."""
    found = set()
    for route in iter_route_contexts(app.routes):
        for method in getattr(route, "methods", None) or ():
            if method != "HEAD" and route.path is not None:
                found.add((method, route.path))
    return found


ROUTES = sorted(app_routes(create_app(Settings(_env_file=None, environment="test"))))
