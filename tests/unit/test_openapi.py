"""The OpenAPI document states every error an operation can answer, as a problem document, and the
rules the API checks (the API's answers against it: tests/integration/test_openapi.py and
tests/integration/test_api_contract.py)."""

from typing import Any

from api.app import create_app
from api.openapi import ESPF_EVENTS, PROBLEM
from api.problems import PROBLEM_JSON
from core.settings import Settings


def document(**settings: Any) -> dict[str, Any]:
    result: dict[str, Any] = create_app(Settings(_env_file=None, environment="test", **settings)).openapi()
    return result


def operations(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f"{method.upper()} {path}": op for path, item in doc["paths"].items() for method, op in item.items()}


def test_every_error_is_a_documented_problem_document() -> None:
    doc = document()
    for label, operation in operations(doc).items():
        for status, response in operation["responses"].items():
            if int(status) >= 400:
                content = response["content"]
                assert list(content) == [PROBLEM_JSON], (label, status)
                assert content[PROBLEM_JSON]["schema"] == {"$ref": f"#/components/schemas/{PROBLEM}"}
                assert response["description"], (label, status)
    assert "HTTPValidationError" not in doc["components"]["schemas"]


def test_what_a_route_depends_on_is_documented() -> None:
    ops = operations(document())
    order = set(ops["POST /v1/orders"]["responses"])
    # Its key, its role, its body, beside PortaBilling, its database and Temporal.
    assert {"202", "200", "400", "401", "403", "409", "413", "422", "500", "503"} <= order
    assert {"401", "403", "404"} <= set(ops["GET /v1/accounts/{account_id}"]["responses"])
    assert set(ops["GET /healthz"]["responses"]) == {"200"}
    reports = set(ops["GET /v1/sms/delivery-reports/{token}"]["responses"])
    assert "401" not in reports and "404" in reports  # no key: its token is the credential


def test_what_a_deployment_decides_is_its_document() -> None:
    assert ESPF_EVENTS not in document()["paths"]  # answered 404 to all with the built-in billing
    beside = operations(document(billing_source="portabilling"))["POST /v1/portabilling/events"]
    assert beside["security"] == [{"espfBasic": []}] and "parameters" not in beside
    code = document(signup_code_digits=8)["components"]["schemas"]["CodeEntered"]["properties"]["code"]
    assert code["pattern"] == "^[0-9]{8}$"


def test_the_schema_states_what_the_code_checks() -> None:
    schemas = document()["components"]["schemas"]
    imei = schemas["OrderedAccount"]["properties"]["imei"]
    assert imei["pattern"] == "^[0-9]{15}$" and imei["format"] == "imei"
    assert schemas["ResellerUpdate"]["anyOf"] and schemas["CustomerUpdate"]["minProperties"] == 1
    assert schemas["TopUp"]["not"]["required"] == ["valid_days", "expires_at"]
    password = schemas["PasswordIssued"]["properties"]["password"]
    assert (password["minLength"], password["maxLength"], password["pattern"]) == (8, 64, "^[!-~]{8,64}$")
