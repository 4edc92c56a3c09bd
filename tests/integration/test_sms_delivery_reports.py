"""Delivery reports of code SMS: each SMS asks for them with a token of its own, the API records them
(forward only), and the signup view and a metric show them; on SQLite and PostgreSQL."""

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from sqlalchemy.engine import make_url

from billing.db import transaction
from billing.models import SmsMessage
from billing.sms_reports import new_report_token, token_hash
from tests.support.polling import eventually
from tests.support.signups import random_mobile, signup_stack_fixture, start_signup
from tests.support.stack import Stack

REPORTS = "/v1/sms/delivery-reports"


stack = signup_stack_fixture("dlr-sim")


async def _sms(stack: Stack, signup_id: str) -> list[dict[str, Any]]:
    response = await stack.api.get(f"/v1/signups/{signup_id}", headers=stack.cmms)
    assert response.status_code == 200, response.text
    sms: list[dict[str, Any]] = response.json()["sms"]
    return sms


async def _stored_message(stack: Stack) -> str:
    """A queued SMS of a made-up signup; returns its report token."""
    token = new_report_token()
    async with transaction(stack.sessions) as session:
        session.add(SmsMessage(report_token_hash=token_hash(token), signup_id=f"su-{token[:8]}"))
    return token


async def test_the_signup_shows_each_code_sms_as_its_reports_leave_it(stack: Stack) -> None:
    signup = await start_signup(stack, random_mobile())
    sms = await eventually(
        lambda: _sms(stack, signup["signup_id"]),
        lambda sms: not sms or sms[-1]["status"] == "delivered",
        within=15,
        what="a delivered report",
    )
    assert len(sms) == 1 and set(sms[0]) == {"sent_at", "status", "error"} and sms[0]["error"] is None
    metrics = (await stack.api.get("/metrics")).text
    assert 'sms_delivery_reports_total{status="delivered"}' in metrics
    # the route's template is the label, never the token
    assert 'route="/v1/sms/delivery-reports/{token}"' in metrics


async def test_reports_move_forward_only(stack: Stack) -> None:
    token = await _stored_message(stack)
    # Kannel fetches the URL with no credentials: the token is the authentication
    for report, status in ((8, "accepted"), (1, "delivered"), (8, "delivered"), (2, "delivered"), (4, "delivered")):
        response = await stack.api.get(f"{REPORTS}/{token}", params={"type": report})
        assert (response.status_code, response.json()) == (200, {"status": status})
    rejected = await _stored_message(stack)
    assert (await stack.api.post(f"{REPORTS}/{rejected}?type=16")).json() == {"status": "rejected"}
    assert (await stack.api.get(f"{REPORTS}/{rejected}?type=8")).json() == {"status": "rejected"}


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/{token}?type=3", 422),
        ("/{token}?type=x", 422),
        ("/{token}", 422),
        ("/unknown-token?type=1", 404),
        ("/" + "t" * 300 + "?type=1", 404),
    ],
)
async def test_bad_reports_get_a_problem_and_change_nothing(stack: Stack, path: str, status: int) -> None:
    token = await _stored_message(stack)
    response = await stack.api.get(REPORTS + path.format(token=token))
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    assert (await stack.api.get(f"{REPORTS}/{token}?type=4")).json() == {"status": "queued"}


@contextmanager
def _writers_held_off(database_url: str) -> Iterator[None]:
    """Another process's transaction that lets readers read and holds every writer off the SMS
    messages: SQLite's write lock, PostgreSQL's EXCLUSIVE lock on the table (which plain reads pass)."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        assert url.database
        holder = sqlite3.connect(url.database, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        return
    plain = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(plain) as connection, connection.transaction():
        connection.execute("LOCK TABLE sms_message IN EXCLUSIVE MODE")
        yield


async def test_reports_for_unknown_tokens_write_nothing(stack: Stack) -> None:
    # The URL needs no key: a flood of made-up tokens must not take the database's write lock. While
    # every writer is held off, reports for unknown tokens are still answered (the old code waited).
    token = await _stored_message(stack)
    assert (await stack.api.get(f"{REPORTS}/{token}?type=8")).json() == {"status": "accepted"}
    with _writers_held_off(stack.settings.database.url):
        for path in ("/unknown-token?type=1", f"/{new_report_token()}?type=16"):
            response = await stack.api.get(REPORTS + path, timeout=10)
            assert response.status_code == 404, response.text
        # A report that moves nothing (a repeat) writes nothing either.
        again = await stack.api.get(f"{REPORTS}/{token}?type=8", timeout=10)
        assert again.json() == {"status": "accepted"}
    assert (await stack.api.get(f"{REPORTS}/{token}?type=1")).json() == {"status": "delivered"}
