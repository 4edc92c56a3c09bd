"""The OpenAPI document's errors: every status an operation can answer, each with its problem document.

FastAPI documents the statuses a route declares, and a 422 of its own shape; this API answers every
error with an RFC 9457 problem document (api.problems), and many of its statuses come from what a
route depends on rather than from the route itself: the key (401), the role (403), the built-in
billing (409 beside PortaBilling), the body (400, 413), the database and Temporal (500, 503). They are
added here from each route's dependencies, so a route gets them by being written as it is, and a
client generated from the document knows every answer it can get.
"""

from collections.abc import Callable, Iterator
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts
from starlette.routing import BaseRoute

from api.deps import RoleCheck, builtin_billing, get_caller, get_state
from api.problems import PROBLEM_JSON
from core.settings import Settings

ESPF_EVENTS = "/v1/portabilling/events"
PROBLEM = "Problem"
PROBLEM_SCHEMA: dict[str, Any] = {
    "title": PROBLEM,
    "description": "An RFC 9457 problem document: how the API answers every error.",
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "description": "A URI naming the kind of problem"},
        "title": {"type": "string", "description": "The kind of problem, in words"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599, "description": "The HTTP status"},
        "detail": {"type": "string", "description": "What went wrong with this request"},
        "errors": {
            "type": "array",
            "description": "The offending fields, for a request that failed validation",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {
                    "field": {"type": "string", "description": "Where: `body.account.imei`, `query.limit`"},
                    "message": {"type": "string"},
                    "type": {"type": "string", "description": "The rule the value broke"},
                },
            },
        },
        "error_id": {"type": "string", "description": "For a 500: quote it to support, the API's log line has it"},
        "reason": {
            "type": "string",
            "description": "For a signup call's 429: the limit or budget that refused it (`prefix_paused`, "
            "`daily_budget`, …), as docs/signups.md lists them",
        },
    },
}
# What FastAPI documents for a 422 of its own shape, which this API never answers.
_FASTAPI_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")

BAD_JSON = "The body is not valid JSON"
TOO_LARGE = "The body is larger than the API takes (API_MAX_BODY_BYTES); refused before the key is checked"
NO_KEY = "No API key, or not one of this API's (`WWW-Authenticate: Bearer`)"
NO_ROLE = "The API key lacks the role this call needs"
NOT_FOUND = "What the path names does not exist"
BESIDE_PORTABILLING = "Beside PortaBilling (BILLING_SOURCE=portabilling) this is PortaBilling's to change"
INVALID = "Validation failed: `errors` names the offending fields"
FAILED = "The request failed in a way repeating it would not mend; `error_id` finds the API's log line"
UNAVAILABLE = "The billing database or Temporal is unavailable just now: repeat the request after `Retry-After`"


def install_openapi(app: FastAPI, settings: Settings) -> None:
    """Have the app's OpenAPI document list every error status of every operation as a problem document,
    and state the rules this deployment's settings decide."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = generate()
            document_errors(document, app.routes)
            document_settings(document, settings)
            document_key_patterns(document)
        assert app.openapi_schema is not None
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def document_errors(document: dict[str, Any], routes: list[BaseRoute]) -> None:
    """Add each operation's error statuses to `document` (FastAPI's, in place), all as problem documents."""
    for route in iter_route_contexts(routes):
        if not isinstance(route.original_route, APIRoute) or not route.include_in_schema:
            continue
        for method in route.methods or ():
            operation = document["paths"].get(route.path_format, {}).get(method.lower())
            if operation is None:
                continue
            responses: dict[str, Any] = operation["responses"]
            implied = implied_errors(route)
            for status in implied:
                responses.setdefault(str(status), {})
            for key, response in responses.items():
                status = int(key)
                if status >= 400:
                    response["content"] = {PROBLEM_JSON: {"schema": {"$ref": f"#/components/schemas/{PROBLEM}"}}}
                    if response.get("description") in (None, *_FASTAPI_DESCRIPTIONS, HTTPStatus(status).phrase):
                        response["description"] = implied.get(status) or HTTPStatus(status).phrase
            operation["responses"] = dict(sorted(responses.items()))
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for name in _FASTAPI_VALIDATION_SCHEMAS:
        schemas.pop(name, None)
    schemas[PROBLEM] = PROBLEM_SCHEMA


def document_settings(document: dict[str, Any], settings: Settings) -> None:
    """What a setting decides, as this deployment has it: the document a deployment serves is its own.
    PortaBilling's events are received only beside PortaBilling: elsewhere the route answers 404 to
    all, and the document has no such operation."""
    if settings.billing_source != "portabilling":
        del document["paths"][ESPF_EVENTS]
    code = document["components"]["schemas"]["CodeEntered"]["properties"]["code"]
    code["pattern"] = f"^[0-9]{{{settings.signups.code_digits}}}$"
    code["description"] = f"The {settings.signups.code_digits} digits of the code the SMS carried"


def document_key_patterns(node: Any) -> None:
    """Say that a map's keys must match their pattern. Pydantic writes a key's pattern as the object's
    `patternProperties`, which lets a key that does not match through with any value, though the API
    refuses it (a custom field named with a NUL): the pattern belongs in `propertyNames`, and the value's
    schema in `additionalProperties`."""
    if isinstance(node, list):
        for item in node:
            document_key_patterns(item)
        return
    if not isinstance(node, dict):
        return
    patterns = node.get("patternProperties")
    if isinstance(patterns, dict) and len(patterns) == 1 and "additionalProperties" not in node:
        [(pattern, values)] = patterns.items()
        del node["patternProperties"]
        node["propertyNames"] = node.get("propertyNames", {}) | {"pattern": pattern}
        node["additionalProperties"] = values
    for child in node.values():
        document_key_patterns(child)


def implied_errors(route: RouteContext) -> dict[int, str]:
    """The error statuses a route can answer by what it takes and what it depends on (with the
    dependencies of the routers that include it)."""
    dependant: Dependant = route.dependant
    calls = set(_calls(dependant))
    has_body = route.body_field is not None
    errors: dict[int, str] = {}
    if has_body:
        errors |= {400: BAD_JSON, 413: TOO_LARGE}
    if get_caller in calls:
        errors[401] = NO_KEY
    if any(isinstance(call, RoleCheck) for call in calls):
        errors[403] = NO_ROLE
    if dependant.path_params:
        errors[404] = NOT_FOUND
    if builtin_billing in calls:
        errors[409] = BESIDE_PORTABILLING
    if has_body or any(_params(dependant)):
        errors[422] = INVALID
    if get_state in calls:
        errors |= {500: FAILED, 503: UNAVAILABLE}
    return errors


# What FastAPI writes where a route gave no description of its own.
_FASTAPI_DESCRIPTIONS = ("", "Validation Error", "Additional Response")


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    for dependency in dependant.dependencies:
        if dependency.call is not None:
            yield dependency.call
        yield from _calls(dependency)


def _params(dependant: Dependant) -> Iterator[object]:
    yield from dependant.path_params + dependant.query_params + dependant.header_params + dependant.cookie_params
    for dependency in dependant.dependencies:
        yield from _params(dependency)
