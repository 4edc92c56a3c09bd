"""Checks on the API's answers shared by the tests."""

from typing import Any


def problem(response: Any, status: int) -> dict[str, Any]:
    """The RFC 9457 problem document of `response`, which must have `status`."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["title"] and body["detail"] and body["type"]
    return body
