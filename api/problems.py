"""RFC 9457 problem details: every error the API answers, in one shape and one place."""

import logging
import uuid
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from temporalio.service import RPCError

from billing.uniqueness import broken_rule, imei_taken
from core.temporal import is_transient
from services.errors import Conflict, Gone, Invalid, NotFound, ServiceError, ServiceUnavailable, TooMany, Upstream

PROBLEM_JSON = "application/problem+json"
# How long a client is asked to wait before repeating a request that met an unavailable dependency.
RETRY_AFTER_SECONDS = "5"
# SQLAlchemy's errors that say the billing database could not be reached or used just now (refused,
# dropped, locked, out of pooled connections), as opposed to a statement it refused.
_DATABASE_UNAVAILABLE = (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError)

log = logging.getLogger(__name__)


class Problem(Exception):
    """Raise to answer with a problem document; `extra` members are added to it."""

    def __init__(self, status: int, detail: str, *, title: str | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title or HTTPStatus(status).phrase
        self.detail = detail
        self.extra = extra
        self.headers: dict[str, str] = {}


def problem_response(
    status: int, title: str, detail: str, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    slug = title.lower().replace(" ", "-")
    body = {"type": f"https://errors.cmms-provisioning.dev/{slug}", "title": title, "status": status}
    body |= {"detail": detail, **extra}
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _field_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    errors = []
    for error in exc.errors():
        loc = [str(part) for part in error.get("loc", ())]
        # "input" may echo a password or a code back: never include it.
        errors.append({"field": ".".join(loc), "message": error.get("msg", ""), "type": error.get("type", "")})
    return errors


async def _on_problem(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Problem)
    return problem_response(exc.status, exc.title, exc.detail, exc.headers or None, **exc.extra)


# A service's refusal, by its kind (the first class of its MRO found here); any other: 500.
_REFUSALS: dict[type[ServiceError], int] = {
    NotFound: 404,
    Conflict: 409,
    Invalid: 422,
    Gone: 410,
    TooMany: 429,
    ServiceUnavailable: 503,
    Upstream: 502,
}


async def _on_refusal(_: Request, exc: Exception) -> JSONResponse:
    """A service's refusal: nothing was changed."""
    assert isinstance(exc, ServiceError)
    status = next((_REFUSALS[kind] for kind in type(exc).__mro__ if kind in _REFUSALS), 500)
    extra = dict(exc.extra)
    if isinstance(exc, Invalid) and (exc.errors or exc.title is None):
        extra["errors"] = exc.errors
    title = exc.title or ("Validation failed" if isinstance(exc, Invalid) else HTTPStatus(status).phrase)
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after is not None else None
    return problem_response(status, title, exc.detail, headers, **extra)


async def _on_validation(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = _field_errors(exc)
    if any(e["type"] == "json_invalid" for e in errors):
        return problem_response(400, "Malformed JSON", "the request body is not valid JSON")
    return problem_response(422, "Validation failed", "the request has invalid fields", errors=errors)


async def _on_http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(status).phrase
    headers = dict(exc.headers or {})
    if status == 405:
        headers["Allow"] = ", ".join(allowed_methods(request))
    return problem_response(status, HTTPStatus(status).phrase, detail, headers or None)


def allowed_methods(request: Request) -> list[str]:
    """Every method the request's path is served with. The router answers 405 with the methods of the
    first route whose path matched (`Allow: POST` for `/v1/orders`, which serves GET too): all are named."""
    methods: set[str] = set()
    for route in iter_route_contexts(request.app.routes):
        match, _ = route.matches(request.scope)
        if match != Match.NONE:
            methods |= route.methods or set()
    return sorted(methods)


async def _on_temporal_error(request: Request, exc: Exception) -> JSONResponse:
    if is_transient(exc):
        # The request was valid and what it stored is kept: repeating it later completes it.
        detail = "the provisioning engine (Temporal) is unavailable; repeat the request shortly"
        return problem_response(503, "Service Unavailable", detail, {"Retry-After": RETRY_AFTER_SECONDS})
    # Repeating would fail the same way: an operator must look, and the id finds the log line.
    error_id = uuid.uuid4().hex
    if isinstance(exc, RPCError):
        log.error(
            "%s %s: Temporal refused the call (%s: %s) error_id=%s",
            request.method,
            request.url.path,
            exc.status.name,
            exc.message,
            error_id,
        )
        detail = f"the provisioning engine (Temporal) refused the request; quote error id {error_id} to support"
    else:
        log.exception("%s %s: failed error_id=%s", request.method, request.url.path, error_id)
        detail = f"the request failed; quote error id {error_id} to support"
    return problem_response(500, "Internal Server Error", detail, error_id=error_id)


async def _on_integrity_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, sa_exc.IntegrityError)
    if imei_taken(exc):  # lost a race to another request for the same IMEI
        return problem_response(409, "Conflict", "the IMEI is already in use")
    error_id = uuid.uuid4().hex
    # The rule's name only: the statement's parameters are the caller's data.
    rule = broken_rule(exc)
    log.error("%s %s: a write broke a database rule (%s) error_id=%s", request.method, request.url.path, rule, error_id)
    detail = f"the request could not be stored; quote error id {error_id} to support"
    return problem_response(500, "Internal Server Error", detail, error_id=error_id)


async def _on_data_error(request: Request, exc: Exception) -> JSONResponse:
    """A value the database cannot hold. NUL (U+0000) in a string is the caller's, refused before anything
    is stored (the schema's patterns say no string holds one); anything else is the service's: 500."""
    assert isinstance(exc, sa_exc.DataError)
    if "NUL" in str(exc.orig):
        detail = "a string in the request contains NUL (U+0000), which billing cannot hold"
        return problem_response(422, "Validation failed", detail, errors=[])
    return await _on_unexpected(request, exc)


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    """Anything else: a problem document too, with the id of the API's log line."""
    error_id = uuid.uuid4().hex
    log.exception("%s %s: failed error_id=%s", request.method, request.url.path, error_id)
    detail = f"the request failed; quote error id {error_id} to support"
    return problem_response(500, "Internal Server Error", detail, error_id=error_id)


async def _on_database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    # The driver's class only: its message can name the host, and never helps the caller.
    cause = getattr(exc, "orig", None) or exc
    log.warning("%s %s: billing database unavailable (%s)", request.method, request.url.path, type(cause).__name__)
    detail = "the billing database is unavailable; repeat the request shortly"
    return problem_response(503, "Service Unavailable", detail, {"Retry-After": RETRY_AFTER_SECONDS})


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(Problem, _on_problem)
    app.add_exception_handler(ServiceError, _on_refusal)
    app.add_exception_handler(RPCError, _on_temporal_error)
    # A lazily connected client that cannot reach Temporal for its first call raises a RuntimeError.
    app.add_exception_handler(RuntimeError, _on_temporal_error)
    app.add_exception_handler(sa_exc.IntegrityError, _on_integrity_error)
    app.add_exception_handler(sa_exc.DataError, _on_data_error)
    for error in _DATABASE_UNAVAILABLE:
        app.add_exception_handler(error, _on_database_unavailable)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http)
    app.add_exception_handler(Exception, _on_unexpected)
