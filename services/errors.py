"""Why a service refused a request: raised by the services, answered as problem documents by the API
(api.problems, the one place that maps them to HTTP). A refused request changed nothing.

The base and the refusals billing's own rules raise live in billing.errors (the activities meet them
too); they are named here as well, so a service or the API finds every refusal in one module."""

from typing import Any

from billing.errors import Conflict, Invalid, NotFound, ServiceError

__all__ = [
    "Conflict",
    "Gone",
    "Invalid",
    "NotFound",
    "ServiceError",
    "ServiceUnavailable",
    "TooMany",
    "Upstream",
    "unknown_reference",
]


class Gone(ServiceError):
    """What the request names has ended for good (an expired signup): start again."""


class TooMany(ServiceError):
    """Over a limit: too many requests, attempts or messages."""


class ServiceUnavailable(ServiceError):
    """Something the request needs is not available just now: repeat it later."""

    def __init__(self, detail: str, *, retry_after: int = 5, **kwargs: Any) -> None:
        super().__init__(detail, retry_after=retry_after, **kwargs)


class Upstream(ServiceError):
    """A system beyond billing (the SMS gateway, the CMMS) refused what the request needed."""


def unknown_reference(field: str, what: str, key: str) -> Invalid:
    """A body field naming something that does not exist."""
    return Invalid(
        f"{what} {key!r} does not exist",
        [{"field": field, "message": f"unknown {what}", "type": "unknown_reference"}],
    )
