"""Structured logs for the API, the worker and the codec server: one line a record, `key=value`
(logfmt, the default) or JSON, carrying the workflow, order and account ids where they are known.

Where the ids come from: Temporal's `workflow.logger` and `activity.logger` attach the workflow's
(or activity's) info to the record; the order or account id is read from the workflow id, which is
a business key (`order-<id>`, `account-<id>`, see `contracts`). Any `extra={"order_id": ...}` given
by the caller is kept too. Secrets never reach a line: query-string passwords and SMS texts are
masked, and httpx's per-request lines (which print the SMS gateway's URL, password and code
included) are kept below INFO.
"""

import json
import logging
import re
from datetime import UTC, datetime
from typing import Any

from core.settings import LogSettings

# Fields a line may carry beside the message, in this order.
CONTEXT_FIELDS = (
    "workflow_id",
    "run_id",
    "workflow_type",
    "activity_type",
    "attempt",
    "task_queue",
    "order_id",
    "account_id",
    "customer_id",
)
# Workflow id prefix → the business id it carries.
_ID_PREFIXES = (("order-", "order_id"), ("account-", "account_id"), ("rollout-", "customer_id"))
# A secret's name (alone or as a suffix: `sip_password`, `cmms_token`, `X-Api-Key`), quoted or not,
# then `=` or `:`, then its value: a double- or single-quoted string with backslash escapes (JSON, a
# dict's repr, a quoted logfmt value), or a bare word up to `&`, whitespace or a delimiter (a query
# string, logfmt). The value goes whatever it holds; a quoted one keeps its quotes. An HTTP status
# code is not a secret.
_NAMES = r"(?:password|passwd|pwd|pass|secret|token|code|text|api[_-]?key|authorization)"
_SECRET = re.compile(
    rf"""(?ix)
    (?P<key>(?<![\w-])(?<!status\s)(?!status[_-])(?:\w+[_-])?{_NAMES}(?![\w-])["']?\s*[=:]\s*)
    (?:
        "(?:[^"\\]|\\.)*"(?P<dq>)
      | '(?:[^'\\]|\\.)*'(?P<sq>)
      | (?:Bearer\s+)?[^&\s,;}}\])"']+
    )
    """
)
_BEARER = re.compile(r"(?i)\b(Bearer\s+)[^\s\"',;&]+")
# An SMS's delivery report URL carries its report token in the path.
_REPORT_TOKEN = re.compile(r"(/delivery-reports/)[^/?\s\"]+")


def _mask(match: re.Match[str]) -> str:
    if match.group("dq") is not None:
        return f'{match["key"]}"***"'
    if match.group("sq") is not None:
        return f"{match['key']}'***'"
    return f"{match['key']}***"


def redact(text: str) -> str:
    """Mask the values of secrets (passwords, tokens, API keys, SMS texts and codes) as `***`, in query
    strings, logfmt, JSON and Python reprs alike, any `Bearer` credential, and the token of a delivery
    report URL."""
    return _REPORT_TOKEN.sub(r"\1***", _BEARER.sub(r"\1***", _SECRET.sub(_mask, text)))


def record_context(record: logging.LogRecord) -> dict[str, Any]:
    """The ids a record carries: the caller's extras, then Temporal's, then those the workflow id implies."""
    found: dict[str, Any] = {}
    for key in ("temporal_workflow", "temporal_activity"):
        info = getattr(record, key, None)
        if isinstance(info, dict):
            found.update({k: v for k, v in info.items() if k in CONTEXT_FIELDS})
    found.update({k: v for k in CONTEXT_FIELDS if (v := getattr(record, k, None)) is not None})
    workflow_id = found.get("workflow_id")
    if isinstance(workflow_id, str):
        for prefix, field in _ID_PREFIXES:
            if workflow_id.startswith(prefix):
                found.setdefault(field, workflow_id.removeprefix(prefix))
                break
    return {k: found[k] for k in CONTEXT_FIELDS if k in found}


def _logfmt_value(value: Any) -> str:
    text = str(value)
    if text and not any(c in text for c in ' "=\\\n'):
        return text
    return json.dumps(text)


class StructuredFormatter(logging.Formatter):
    """`ts level logger msg` plus the record's context ids, as logfmt or as JSON."""

    def __init__(self, style: str = "logfmt") -> None:
        super().__init__()
        self.json = style == "json"

    def format(self, record: logging.LogRecord) -> str:
        # Temporal's loggers append their info dict to the message; the fields say it better.
        message = record.getMessage().split(" ({'", 1)[0]
        fields: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": redact(message),
            **record_context(record),
        }
        if record.exc_info:
            fields["exc"] = redact(self.formatException(record.exc_info))
        if self.json:
            return json.dumps(fields, default=str)
        return " ".join(f"{key}={_logfmt_value(value)}" for key, value in fields.items())


def configure_logging(log: LogSettings) -> None:
    """Route every logger (uvicorn's and the SDK's included) through one structured handler."""
    handler = logging.StreamHandler()
    handler.setFormatter(StructuredFormatter(log.format))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(log.level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # One line per outgoing request, URL and query string included: the SMS gateway's carry secrets.
    logging.getLogger("httpx").setLevel(logging.WARNING)
