"""Why a service refused a request: raised by the services, answered as problem documents by the API
(api.problems, the one place that maps them to HTTP). A refused request changed nothing."""

from typing import Any


class ServiceError(Exception):
    """A request that could not be done; `detail` says why, for the caller. `title` names the kind of
    refusal where a caller may act on it, `retry_after` (seconds) says when trying again may succeed,
    and `extra` carries further members for the caller (never a secret)."""

    def __init__(self, detail: str, *, title: str | None = None, retry_after: int | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.title = title
        self.retry_after = retry_after
        self.extra = extra


class NotFound(ServiceError):
    """What the request names does not exist."""


class Conflict(ServiceError):
    """The request contradicts what billing holds (taken, already there, not in a state that allows it)."""


class Invalid(ServiceError):
    """The request is well-formed but its values are not acceptable; `errors` names the fields."""

    def __init__(self, detail: str, errors: list[dict[str, Any]] | None = None, **kwargs: Any) -> None:
        super().__init__(detail, **kwargs)
        self.errors = errors or []


class Gone(ServiceError):
    """What the request names has ended for good (an expired signup): start again."""


class TooMany(ServiceError):
    """Over a limit: too many requests, attempts or messages."""


class Unavailable(ServiceError):
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
