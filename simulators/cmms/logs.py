"""Logging that never shows a secret: sendsms GETs carry the Kannel password (and the code sent)
in the query string, which uvicorn's access log would print."""

import copy
import logging
import re
from typing import Any

import uvicorn.config

_SECRET_PARAM = re.compile(r"(?i)\b(password|pass|pwd|text)=[^&\s\"]*")


def redact(line: str) -> str:
    """`password=...` (and `pass=`, `pwd=`, `text=`) replaced by `password=***`."""
    return _SECRET_PARAM.sub(r"\1=***", line)


class RedactSecrets(logging.Filter):
    """Redacts the message and its arguments (uvicorn's access formatter reads the arguments)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(arg) if isinstance(arg, str) else arg for arg in record.args)
        return True


def log_config() -> dict[str, Any]:
    """uvicorn's logging configuration, with the redaction on every handler."""
    config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    config.setdefault("filters", {})["redact"] = {"()": RedactSecrets}
    for handler in config["handlers"].values():
        handler.setdefault("filters", []).append("redact")
    config["loggers"]["simulators.cmms"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    return config
