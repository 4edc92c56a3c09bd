"""Why billing refused an operation: the refusals its domain rules raise (a wallet's ledger, say), and the
base of every refusal a service raises (services.errors adds those only a request can meet). The API
answers them as problem documents (api.problems, the one place that maps them to HTTP). A refused
operation changed nothing."""

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
