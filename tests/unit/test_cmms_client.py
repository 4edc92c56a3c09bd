"""The CMMS client's reading of odd answers, from a mock transport: refusals, errors and rate limits are told
apart, and no error shows a secret (the client against the real simulator: tests/integration/test_cmms_client.py)."""

import httpx
import pytest

from clients.cmms import CmmsClient, CmmsError, CmmsMisconfigured, CmmsRejected, CmmsUnavailable
from tests.support.cmms import PASSWORD, account, assert_no_secrets


def mock_client(handler: httpx.MockTransport) -> CmmsClient:
    return CmmsClient("http://cmms.test", "tok-mock-secret", transport=handler)


async def test_a_forbidden_answer_is_misconfigured() -> None:
    def forbidden(request: httpx.Request) -> httpx.Response:
        return httpx.Response(403, json={"detail": "token lacks the provisioning scope"})

    async with mock_client(httpx.MockTransport(forbidden)) as cmms:
        with pytest.raises(CmmsMisconfigured) as caught:
            await cmms.upsert_account("4917600999990", account(None))
    assert caught.value.status == 403 and "provisioning scope" in str(caught.value)


async def test_an_echoed_secret_is_scrubbed_from_the_reason() -> None:
    def echo(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, text=f"bad request: {request.content.decode()} {request.headers['authorization']}")

    async with mock_client(httpx.MockTransport(echo)) as cmms:
        with pytest.raises(CmmsRejected) as caught:
            await cmms.upsert_account("4917600999995", account(None))
    assert "***" in caught.value.reason
    assert_no_secrets(caught.value, PASSWORD, "tok-mock-secret")


async def test_a_non_json_error_body_and_a_long_reason() -> None:
    def html(request: httpx.Request) -> httpx.Response:
        return httpx.Response(502, text="<html>" + "x" * 1000 + "</html>", headers={"Retry-After": "7"})

    async with mock_client(httpx.MockTransport(html)) as cmms:
        with pytest.raises(CmmsUnavailable) as caught:
            await cmms.get_account("4917600999994")
    assert caught.value.status == 502 and caught.value.retry_after == 7.0
    assert "<html>" in str(caught.value) and len(str(caught.value)) < 400


async def test_retry_after_as_an_http_date() -> None:
    def limited(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            429, json={"detail": "slow down"}, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}
        )

    async with mock_client(httpx.MockTransport(limited)) as cmms:
        with pytest.raises(CmmsUnavailable) as caught:
            await cmms.delete_account("4917600999993")
    assert caught.value.retry_after == 0.0 and "slow down" in str(caught.value)


async def test_a_garbled_success_is_unavailable() -> None:
    def garbled(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="<html>proxy</html>")

    async with mock_client(httpx.MockTransport(garbled)) as cmms:
        with pytest.raises(CmmsUnavailable):
            await cmms.get_account("4917600999992")
        with pytest.raises(CmmsUnavailable):
            await cmms.list_accounts(None, 10)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 408, 429, 500, 503])
async def test_list_accounts_classifies_every_status_as_a_read_does(status: int) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json={"detail": "no"})

    async with mock_client(httpx.MockTransport(refuse)) as cmms:
        with pytest.raises(CmmsError) as listing:
            await cmms.list_accounts("a", 10)
        with pytest.raises(CmmsError) as reading:
            await cmms.upsert_account("4917600999991", account(None))
    assert type(listing.value) is type(reading.value)


def test_every_error_is_a_cmms_error() -> None:
    assert issubclass(CmmsUnavailable, CmmsError) and issubclass(CmmsRejected, CmmsError)
    assert issubclass(CmmsMisconfigured, CmmsUnavailable)
