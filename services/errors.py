"""Why a service refused a request: raised by the services, answered as problem documents by the API
(api.problems, the one place that maps them). A refused request changed nothing."""

from typing import Any


class ServiceError(Exception):
    """A request refused for a business reason; `detail` says why, for the caller."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFound(ServiceError):
    """What the request names does not exist."""


class Conflict(ServiceError):
    """The request contradicts what billing holds (taken, already there, not in a state that allows it)."""


class Invalid(ServiceError):
    """The request is well-formed but its values are not acceptable; `errors` names the fields."""

    def __init__(self, detail: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(detail)
        self.errors = errors or []


def unknown_reference(field: str, what: str, key: str) -> Invalid:
    """A body field naming something that does not exist."""
    return Invalid(
        f"{what} {key!r} does not exist",
        [{"field": field, "message": f"unknown {what}", "type": "unknown_reference"}],
    )
