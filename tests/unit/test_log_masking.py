"""Secrets never reach a log line, however the message carries them: a query string, logfmt, JSON, a
dict's repr, an exception's text; passwords with backslashes, quotes and spaces included."""

import json
import logging
import sys
from urllib.parse import urlencode

import pytest

from core.logging import StructuredFormatter

# Each holds characters that end or escape a naive match: `\`, `"`, `'`, spaces, `&`, `=`.
PASSWORDS = ['Zq1 "Xv2\\ Wy3', "Zq1\\\"Xv2 'Wy3", "Zq1=Xv2&Wy3 ", '"Zq1\\\\Xv2\\"Wy3"']
PIECES = ("Zq1", "Xv2", "Wy3")


def _messages(password: str) -> list[tuple[str, tuple[object, ...]]]:
    return [
        ("GET /cgi-bin/sendsms?%s", (urlencode({"user": "k", "password": password, "text": "code 123456"}),)),
        ("cmms request %s", (json.dumps({"account_id": "acct-1", "sip_password": password}),)),
        ("cmms request %s", (json.dumps({"account_id": "acct-1", "password": password}, indent=2),)),
        ("account %s", ({"account_id": "acct-1", "password": password},)),
        ("account %r", ({"account_id": "acct-1", "cmms_token": password, "nested": {"pwd": password}},)),
        ("password=%s order_id=o1", (json.dumps(password),)),
        ("calling with headers %s", ({"Authorization": f"Bearer {password.split()[0]}"},)),
    ]


@pytest.mark.parametrize("style", ["logfmt", "json"])
@pytest.mark.parametrize("password", PASSWORDS)
def test_passwords_are_masked_in_every_shape(password: str, style: str) -> None:
    formatter = StructuredFormatter(style)
    for message, args in _messages(password):
        record = logging.LogRecord("test", logging.INFO, __file__, 1, message, args, None)
        line = formatter.format(record)
        assert not [piece for piece in PIECES if piece in line], line
        assert "***" in line
    # The ids around them stay readable.
    record = logging.LogRecord("test", logging.INFO, __file__, 1, *_messages(password)[3], None)
    assert "acct-1" in formatter.format(record)


def test_exception_text_is_masked() -> None:
    password = PASSWORDS[0]
    try:
        raise ValueError(f"refused: {json.dumps({'password': password})}")
    except ValueError:
        record = logging.LogRecord("test", logging.ERROR, __file__, 1, "failed", None, sys.exc_info())
    line = StructuredFormatter("json").format(record)
    assert "refused" in line and not [piece for piece in PIECES if piece in line]


def test_ids_and_statuses_are_not_masked() -> None:
    message = "order o-1 account_id=acct-1 status_code=503 context=x encode=y provisioning_state=ok"
    line = StructuredFormatter().format(logging.LogRecord("t", logging.INFO, __file__, 1, message, None, None))
    assert message in line


def test_log_lines_carry_the_ids_of_the_workflow_and_mask_secrets() -> None:
    record = logging.LogRecord("activities", logging.INFO, __file__, 1, "pushed account %s", ("acct-1",), None)
    record.temporal_activity = {
        "workflow_id": "account-acct-1",
        "activity_type": "provision_account",
        "attempt": 2,
        "namespace": "default",
    }
    line = StructuredFormatter().format(record)
    assert "workflow_id=account-acct-1" in line and "account_id=acct-1" in line
    assert "activity_type=provision_account attempt=2" in line and 'msg="pushed account acct-1"' in line

    leak = logging.LogRecord(
        "httpx", logging.INFO, __file__, 1, "GET /cgi-bin/sendsms?password=kannel&text=123456", None, None
    )
    leak.order_id = "ord-9"
    json_line = StructuredFormatter("json").format(leak)
    assert "kannel" not in json_line and "123456" not in json_line and '"order_id": "ord-9"' in json_line
    report = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s"',
        ("127.0.0.1", "GET /v1/sms/delivery-reports/tOk3n_x?type=8"),
        None,
    )
    assert "tOk3n_x" not in StructuredFormatter().format(report)
