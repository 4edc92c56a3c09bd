"""An async client for PortaBilling's JSON API (what provisioning reads) and its ESPF status API (how
provisioning reports back), per "Retrieving data from PortaBilling" and "Sending provisioning status
for an account via ESPF API".

Every JSON API call is `POST <base>/rest/<Service>/<method>` with `{"params": {...}}` and the session's
bearer token (`clients.portabilling.session`). A token PortaBilling refuses (any of its session faults,
`clients.portabilling.errors.SESSION_FAULTS`: a session dropped early, after 24 h unused or revoked) is
renewed once per call, and the call repeated; refused again, the call fails as misconfigured. Errors:
`clients.portabilling.errors`.

Account lists ask for their total (`get_total`): PortaBilling answers `total` only then, as the public
clients ask for it (https://github.com/WebTrit/webtrit_bss_adapter_python/blob/main/app/bss/adapters/portaswitch/api/admin.py,
`get_account_list`).
"""

from typing import Any, NamedTuple, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from clients.http import ClientError, HttpClient, clipped
from clients.portabilling.errors import (
    PortaBillingError,
    PortaBillingMisconfigured,
    PortaBillingRejected,
    PortaBillingUnavailable,
    fault_of,
    is_session_fault,
    is_session_refused,
    reason_of,
    refuses_content,
)
from clients.portabilling.session import Session
from contracts.portabilling import (
    STATUS_MESSAGE_MAX,
    AccountInfoAnswer,
    AccountListAnswer,
    CustomerInfoAnswer,
    CustomFieldsAnswer,
    LoginAnswer,
    PbAccount,
    PbCustomer,
    PbProduct,
    ProductInfoAnswer,
    ProvisioningStatus,
)

__all__ = [
    "AccountEntry",
    "AccountList",
    "CustomerAccounts",
    "PortaBillingClient",
    "PortaBillingError",
    "PortaBillingMisconfigured",
    "PortaBillingRejected",
    "PortaBillingUnavailable",
]

_LOGIN = "Session/login"

Answer = TypeVar("Answer", bound=BaseModel)


class CustomerAccounts(NamedTuple):
    i_accounts: list[int]
    total: int | None  # None: PortaBilling did not answer it


class AccountEntry(NamedTuple):
    """One account of a list: its number, its `id` (the CMMS key) and its `bill_status` letter."""

    i_account: int
    id: str
    bill_status: str


class AccountList(NamedTuple):
    accounts: list[AccountEntry]
    total: int | None


class PortaBillingClient(HttpClient):
    """One connection pool and one API session to one PortaBilling; share it, and close it with
    `aclose()` or `async with`. It logs in on the first call."""

    service = "PortaBilling"
    unavailable = PortaBillingUnavailable
    misconfigured = PortaBillingMisconfigured
    rejected = PortaBillingRejected

    def __init__(
        self,
        base_url: str,
        login: str,
        password: str,
        *,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(base_url=base_url.rstrip("/"), timeout=timeout, secrets=(password,), transport=transport)
        self._login_name = login
        self._password = password
        self._session = Session(self._log_in)
        self._status_form = False  # the status API took a form, not JSON (MR100): sent so from then on

    async def aclose(self) -> None:
        """Close the connection pool (a login in flight is dropped)."""
        await self._session.close()
        await super().aclose()

    # --- the JSON API ---

    async def account(self, i_account: int) -> PbAccount | None:
        """The account, or None when PortaBilling has no such account."""
        answer = await self._call("Account/get_account_info", {"i_account": i_account}, AccountInfoAnswer)
        return answer.account_info.account() if answer.account_info is not None else None

    async def account_by_id(self, account_id: str) -> PbAccount | None:
        """The account PortaBilling holds under this `id` (the SIP login), or None. Looked up by `id` as
        public clients do (https://github.com/WebTrit/webtrit_bss_adapter_python/blob/main/app/bss/adapters/portaswitch/adapter.py,
        `get_account_info(id=...)`)."""
        answer = await self._call("Account/get_account_info", {"id": account_id}, AccountInfoAnswer)
        return answer.account_info.account() if answer.account_info is not None else None

    @property
    def login(self) -> str:
        """The API user this client logs in as (its permissions decide what PortaBilling shows)."""
        return self._login_name

    async def account_custom_fields(self, i_account: int) -> dict[str, str | None]:
        """Every custom field the account has, by name, with its value or None (the IMEI is one); a name
        missing is a field PortaBilling does not define for the account."""
        answer = await self._call("Account/get_custom_fields_values", {"i_account": i_account}, CustomFieldsAnswer)
        return answer.values()

    async def customer(self, i_customer: int) -> PbCustomer | None:
        """The customer, or None when PortaBilling has no such customer."""
        answer = await self._call("Customer/get_customer_info", {"i_customer": i_customer}, CustomerInfoAnswer)
        return answer.customer_info.customer() if answer.customer_info is not None else None

    async def customer_custom_fields(self, i_customer: int) -> dict[str, str | None]:
        """Every custom field the customer has, by name, with its value or None (`profileName`, `domain`)."""
        params = {"i_customer": i_customer}
        answer = await self._call("Customer/get_custom_fields_values", params, CustomFieldsAnswer)
        return answer.values()

    async def product(self, i_product: int) -> PbProduct | None:
        """The product (its whole `product_info`), or None when PortaBilling has no such product."""
        answer = await self._call("Product/get_product_info", {"i_product": i_product}, ProductInfoAnswer)
        return answer.product_info.product() if answer.product_info is not None else None

    async def customer_accounts(self, i_customer: int, *, offset: int, limit: int) -> CustomerAccounts:
        """One page of the customer's accounts (closed ones included), as i_accounts in i_account order,
        and how many the customer has in all."""
        found = await self.accounts(offset=offset, limit=limit, i_customer=i_customer)
        return CustomerAccounts([entry.i_account for entry in found.accounts], found.total)

    async def accounts(self, *, offset: int, limit: int, i_customer: int | None = None) -> AccountList:
        """One page of the accounts (of one customer, or all), in i_account order, closed ones included,
        and how many there are in all (asked for with `get_total`)."""
        params: dict[str, Any] = {"offset": offset, "limit": limit, "get_total": 1}
        if i_customer is not None:
            params["i_customer"] = i_customer
        answer = await self._call("Account/get_account_list", params, AccountListAnswer)
        entries = [AccountEntry(item.i_account, item.id, item.bill_status) for item in answer.account_list]
        return AccountList(entries, answer.total)

    # --- the ESPF status API ---

    async def post_status(self, i_account: int, status: ProvisioningStatus, message: str, *, group: str) -> None:
        """Report the account's provisioning status (the message cut to the 4000 characters PortaBilling
        takes). PortaBilling without the account: `PortaBillingRejected` with status 404; a body it refuses
        (400, or 415 in both encodings): `PortaBillingRejected` with that status.

        The body is JSON (MR101 and later); MR100's status API takes `application/x-www-form-urlencoded`
        only ("Sending provisioning status for an account via ESPF API",
        https://docs.portaone.com/docs/mr100-sending-provisioning-status-for-an-account-via-espf-api).
        An encoding answered 415 is sent once more in the other, and the one taken is kept for the next."""
        path = f"/espf/v1/account/i/{int(i_account)}/status"
        body = {"status": status, "group": group, "message": message[:STATUS_MESSAGE_MAX]}
        what = f"status of account {i_account}"
        form = self._status_form
        response = await self._authorized(path, body, what, form=form)
        if response.status_code == 415:
            form = not form
            response = await self._authorized(path, body, what, form=form)
        if response.status_code == 200:
            self._status_form = form
            return
        if response.status_code in (404, 415):
            # After a successful login the base URL is right: the account (404) or the body (415) is refused.
            reason = clipped(self._scrub(reason_of(response, fault_of(response))))
            refused = "no such account" if response.status_code == 404 else "neither JSON nor a form taken"
            raise PortaBillingRejected(
                f"PortaBilling {what}: {response.status_code} {refused} ({reason})",
                status=response.status_code,
                reason=reason,
            )
        raise self._error(response, what)

    # --- the plumbing ---

    async def _call(self, method: str, params: dict[str, Any], model: type[Answer]) -> Answer:
        response = await self._authorized(f"/rest/{method}", {"params": params}, method)
        if response.status_code != 200:
            raise self._error(response, method)
        return _parse(response, model, method)

    async def _authorized(self, path: str, body: dict[str, Any], what: str, *, form: bool = False) -> httpx.Response:
        """POST with the session's token; a refused token is renewed and the call repeated, once."""
        token = await self._session.token()
        response = await self._post(path, body, what, token, form=form)
        if not is_session_refused(response):
            return response
        token = await self._session.renew(token)
        response = await self._post(path, body, what, token, form=form)
        if is_session_refused(response):
            reason = clipped(self._scrub(reason_of(response, fault_of(response))))
            raise PortaBillingMisconfigured(
                f"PortaBilling {what}: our session was refused right after a new login ({reason}); "
                "check the API user's access (PORTABILLING_LOGIN)",
                status=response.status_code,
            )
        return response

    async def _log_in(self) -> LoginAnswer:
        params = {"login": self._login_name, "password": self._password}
        response = await self._post(f"/rest/{_LOGIN}", {"params": params}, _LOGIN, token=None)
        if response.status_code == 200:
            answer = _parse(response, LoginAnswer, _LOGIN)
            self._scrub.add(answer.access_token.get_secret_value())
            return answer
        error = self._error(response, _LOGIN)
        if isinstance(error, PortaBillingRejected) or is_session_fault(fault_of(response)):
            # PortaBilling answers and refuses the login (wrong credentials): no outage, an operator must act.
            raise PortaBillingMisconfigured(
                f"PortaBilling refused the login of API user {self._login_name!r} ({error}); "
                "check PORTABILLING_LOGIN and PORTABILLING_PASSWORD",
                status=response.status_code,
            )
        raise error

    async def _post(
        self, path: str, body: dict[str, Any], what: str, token: str | None, *, form: bool = False
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else None
        if form:
            return await self._request("POST", path, what, data=body, headers=headers)
        return await self._request("POST", path, what, json=body, headers=headers)

    def _error(self, response: httpx.Response, what: str) -> ClientError:
        """The error an answer other than success stands for; `what` names the call in the message."""
        fault = fault_of(response)
        reason = clipped(self._scrub(reason_of(response, fault)))
        rejected = refuses_content(response, fault)
        if is_session_fault(fault) and not rejected:
            # A session fault comes as a 500, yet waiting does not help: ours to fix.
            status = response.status_code
            return PortaBillingMisconfigured(f"PortaBilling {what}: {status} {reason}", status=status)
        return self._error_for(response, what, reason, rejected=rejected)


def _parse(response: httpx.Response, model: type[Answer], what: str) -> Answer:
    try:
        return model.model_validate_json(response.content)
    except ValidationError:
        # A garbled success (a proxy's page, a half answer): every call here is safe to repeat. The
        # validation error is not shown: it would quote the answer, which may hold a password.
        raise PortaBillingUnavailable(
            f"PortaBilling {what}: {response.status_code} with an unreadable answer", status=response.status_code
        ) from None
