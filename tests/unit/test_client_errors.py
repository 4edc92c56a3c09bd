"""The clients of outside systems (the CMMS, PortaBilling, Kannel) share one error hierarchy
(`clients.http`): a caller may catch a client's own kind or the shared one, and each means the same
thing (retry, retry and tell an operator, give up) whatever the system."""

import httpx
import pytest

from clients.cmms import CmmsClient, CmmsError, CmmsMisconfigured, CmmsRejected, CmmsUnavailable
from clients.http import ClientError, Misconfigured, Rejected, Scrubber, Unavailable, clipped, reason_of
from clients.kannel import SmsError, SmsRejected, SmsUnavailable
from clients.portabilling.client import (
    PortaBillingError,
    PortaBillingMisconfigured,
    PortaBillingRejected,
    PortaBillingUnavailable,
)
from clients.portabilling.errors import fault_of, is_session_refused, refuses_content


@pytest.mark.parametrize(
    ("own", "unavailable", "misconfigured", "rejected"),
    [
        (CmmsError, CmmsUnavailable, CmmsMisconfigured, CmmsRejected),
        (PortaBillingError, PortaBillingUnavailable, PortaBillingMisconfigured, PortaBillingRejected),
        (SmsError, SmsUnavailable, None, SmsRejected),
    ],
)
def test_every_client_kind_is_a_shared_kind(
    own: type[ClientError],
    unavailable: type[Unavailable],
    misconfigured: type[Misconfigured] | None,
    rejected: type[Rejected],
) -> None:
    assert issubclass(own, ClientError)
    assert issubclass(unavailable, own) and issubclass(unavailable, Unavailable)
    assert issubclass(rejected, own) and issubclass(rejected, Rejected) and not issubclass(rejected, Unavailable)
    if misconfigured is not None:
        assert issubclass(misconfigured, unavailable) and issubclass(misconfigured, Misconfigured)


def test_an_error_keeps_what_its_answer_said() -> None:
    outage = CmmsMisconfigured("CMMS GET /x: 401 no", status=401, retry_after=3.0)
    assert (outage.status, outage.retry_after, str(outage)) == (401, 3.0, "CMMS GET /x: 401 no")
    refusal = PortaBillingRejected("PortaBilling x: 400 bad", status=400, reason="bad")
    assert (refusal.status, refusal.reason) == (400, "bad")
    unsent = SmsUnavailable("SMS gateway sendsms: unreachable (refused)", maybe_sent=False)
    assert (unsent.maybe_sent, unsent.status, unsent.retry_after) == (False, None, None)


def test_the_scrubber_hides_fixed_recent_and_given_secrets() -> None:
    scrub = Scrubber("the-password", "")
    for n in range(5):
        scrub.add(f"token-{n}")
    text = "the-password token-0 token-4 sip-secret"
    assert scrub(text, "sip-secret") == "*** token-0 *** ***"  # token-0 is no longer recent
    assert "token-2" not in scrub("token-2")


def test_the_reason_of_an_answer() -> None:
    validation = {"detail": [{"loc": ["body", "imei"], "msg": "bad IMEI", "input": "the-password"}]}
    assert reason_of(httpx.Response(422, json=validation)) == "body.imei: bad IMEI"
    assert reason_of(httpx.Response(409, json={"detail": "IMEI taken"})) == "IMEI taken"
    assert reason_of(httpx.Response(500, json={"faultstring": "boom"})) == "boom"
    assert reason_of(httpx.Response(503, text="  Temporal failure,\n try again later. ")) == (
        "Temporal failure, try again later."
    )
    assert reason_of(httpx.Response(502)) == "Bad Gateway"
    assert reason_of(httpx.Response(500, text="x" * 1000)) == "x" * 1000  # whole, to be scrubbed


async def test_a_secret_at_the_cut_is_scrubbed_before_the_reason_is_clipped() -> None:
    token = "tok-at-the-cut-Zz9"

    def echo(request: httpx.Request) -> httpx.Response:
        # Clipped at 300 before scrubbing, the reason would end in the token's first characters.
        return httpx.Response(403, text="x" * 280 + request.headers["authorization"] + " and more")

    async with CmmsClient("http://cmms.test", token, transport=httpx.MockTransport(echo)) as cmms:
        with pytest.raises(CmmsMisconfigured) as caught:
            await cmms.get_account("4917600999990")
    assert "tok-at" not in str(caught.value) and str(caught.value).endswith("Bearer *** and more")
    assert clipped("y" * 301) == "y" * 299 + "…" and clipped("y" * 300) == "y" * 300


@pytest.mark.parametrize(
    "faultcode",
    [
        "Server.Session.check_auth.auth_failed",
        "Client.check_auth.envelope_missed",
        "Client.Session.check_auth.failed_to_process_jwt",
        "Client.Session.check_auth.failed_to_process_access_token",
    ],
)
def test_each_fault_of_a_dropped_session_asks_for_a_new_login(faultcode: str) -> None:
    answer = httpx.Response(500, json={"faultcode": faultcode, "faultstring": "session gone"})
    assert is_session_refused(answer)
    assert not refuses_content(answer, fault_of(answer))  # about our session, not what we asked
    refusal = httpx.Response(500, json={"faultcode": "Client.validation", "faultstring": "bad i_account"})
    assert not is_session_refused(refusal) and refuses_content(refusal, fault_of(refusal))
