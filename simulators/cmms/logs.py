"""Logging that never shows a secret: sendsms GETs carry the Kannel password (and the code sent)
in the query string, which uvicorn's access log would print."""

import logging
import re

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
