"""An async client for PortaBilling's JSON API (what provisioning reads) and its ESPF status API (how
provisioning reports back), per "Retrieving data from PortaBilling" and "Sending provisioning status
for an account via ESPF API".

Every JSON API call is `POST <base>/rest/<Service>/<method>` with `{"params": {...}}` and the session's
bearer token (`clients.portabilling.session`). A token PortaBilling refuses is renewed once per call, and the
call repeated; refused again, the call fails as misconfigured. Errors: `clients.portabilling.errors`.
"""

from types import TracebackType
from typing import Any, NamedTuple, Self, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from clients.portabilling.errors import (
    PortaBillingError,
    PortaBillingMisconfigured,
    PortaBillingRejected,
    PortaBillingUnavailable,
    Scrubber,
    error_for,
    fault_of,
    is_session_refused,
    reason_of,
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
    PbWallet,
    ProductInfoAnswer,
    ProvisioningStatus,
    ServiceWalletListAnswer,
)
from core.settings import PortaBillingSettings

__all__ = [
    "CustomerAccounts",
    "PortaBillingClient",
    "PortaBillingError",
    "PortaBillingMisconfigured",
    "PortaBillingRejected",
    "PortaBillingUnavailable",
]

# Sized for about 100 calls in flight from one worker, like the CMMS client.
_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=100)
_LOGIN = "Session/login"

Answer = TypeVar("Answer", bound=BaseModel)


class CustomerAccounts(NamedTuple):
    i_accounts: list[int]
    total: int


class PortaBillingClient:
    """One connection pool and one API session to one PortaBilling; share it, and close it with
    `aclose()` or `async with`. It logs in on the first call."""

    def __init__(
        self,
        base_url: str,
        login: str,
        password: str,
        *,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._login_name = login
        self._password = password
        self._scrub = Scrubber(password)
        self._session = Session(self._log_in)
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"), timeout=timeout, limits=_LIMITS, transport=transport
        )

    @classmethod
    def from_settings(cls, settings: PortaBillingSettings) -> Self:
        """The client of the PortaBilling the settings name, logging in as their API user."""
        return cls(settings.url, settings.login, settings.password.get_secret_value(), timeout=settings.timeout_seconds)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool (a login in flight is dropped)."""
        await self._session.close()
        await self._http.aclose()

    # --- the JSON API ---

    async def account(self, i_account: int) -> PbAccount | None:
        """The account, or None when PortaBilling has no such account."""
        answer = await self._call("Account/get_account_info", {"i_account": i_account}, AccountInfoAnswer)
        return answer.account_info.account() if answer.account_info is not None else None

    async def account_custom_fields(self, i_account: int) -> dict[str, str]:
        """The account's custom fields that hold a value, by name (the IMEI is one)."""
        answer = await self._call("Account/get_custom_fields_values", {"i_account": i_account}, CustomFieldsAnswer)
        return answer.values()

    async def customer(self, i_customer: int) -> PbCustomer | None:
        """The customer, or None when PortaBilling has no such customer."""
        answer = await self._call("Customer/get_customer_info", {"i_customer": i_customer}, CustomerInfoAnswer)
        return answer.customer_info.customer() if answer.customer_info is not None else None

    async def customer_custom_fields(self, i_customer: int) -> dict[str, str]:
        """The customer's custom fields that hold a value, by name (`profileName`, `domain`)."""
        params = {"i_customer": i_customer}
        answer = await self._call("Customer/get_custom_fields_values", params, CustomFieldsAnswer)
        return answer.values()

    async def product(self, i_product: int) -> PbProduct | None:
        """The product, or None when PortaBilling has no such product."""
        answer = await self._call("Product/get_product_info", {"i_product": i_product}, ProductInfoAnswer)
        return answer.product_info.product() if answer.product_info is not None else None

    async def service_wallets(self, i_account: int) -> list[PbWallet]:
        """Every service wallet entry of the account, spent and lapsed ones included (`PbWallet.is_live`)."""
        params = {"i_account": i_account}
        answer = await self._call("Account/get_service_wallet_list", params, ServiceWalletListAnswer)
        return [entry.wallet() for entry in answer.service_wallet_list]

    async def customer_accounts(self, i_customer: int, *, offset: int, limit: int) -> CustomerAccounts:
        """One page of the customer's accounts (closed ones included), as i_accounts in i_account order,
        and how many the customer has in all."""
        params = {"i_customer": i_customer, "offset": offset, "limit": limit}
        answer = await self._call("Account/get_account_list", params, AccountListAnswer)
        return CustomerAccounts([item.i_account for item in answer.account_list], answer.total)

    # --- the ESPF status API ---

    async def post_status(self, i_account: int, status: ProvisioningStatus, message: str, *, group: str) -> None:
        """Report the account's provisioning status (the message cut to the 4000 characters PortaBilling
        takes). PortaBilling without the account: `PortaBillingRejected` with status 404."""
        path = f"/espf/v1/account/i/{int(i_account)}/status"
        body = {"status": status, "group": group, "message": message[:STATUS_MESSAGE_MAX]}
        what = f"status of account {i_account}"
        response = await self._authorized(path, body, what)
        if response.status_code == 200:
            return
        if response.status_code == 404:
            # After a successful login the base URL is right: the account is what PortaBilling lacks.
            reason = self._scrub(reason_of(response, fault_of(response)))
            raise PortaBillingRejected(
                f"PortaBilling {what}: 404 no such account ({reason})", status=404, reason=reason
            )
        raise error_for(response, what, self._scrub)

    # --- the plumbing ---

    async def _call(self, method: str, params: dict[str, Any], model: type[Answer]) -> Answer:
        response = await self._authorized(f"/rest/{method}", {"params": params}, method)
        if response.status_code != 200:
            raise error_for(response, method, self._scrub)
        return _parse(response, model, method)

    async def _authorized(self, path: str, body: dict[str, Any], what: str) -> httpx.Response:
        """POST with the session's token; a refused token is renewed and the call repeated, once."""
        token = await self._session.token()
        response = await self._post(path, body, what, token)
        if not is_session_refused(response):
            return response
        token = await self._session.renew(token)
        response = await self._post(path, body, what, token)
        if is_session_refused(response):
            reason = self._scrub(reason_of(response, fault_of(response)))
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
        error = error_for(response, _LOGIN, self._scrub)
        fault = fault_of(response)
        session_fault = fault is not None and fault.faultcode.startswith("Server.Session.")
        if isinstance(error, PortaBillingRejected) or session_fault:
            # PortaBilling answers and refuses the login (wrong credentials): no outage, an operator must act.
            raise PortaBillingMisconfigured(
                f"PortaBilling refused the login of API user {self._login_name!r} ({error}); "
                "check PORTABILLING_LOGIN and PORTABILLING_PASSWORD",
                status=response.status_code,
            )
        raise error

    async def _post(self, path: str, body: dict[str, Any], what: str, token: str | None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else None
        try:
            return await self._http.post(path, json=body, headers=headers)
        except httpx.TimeoutException as exc:
            raise PortaBillingUnavailable(f"PortaBilling {what}: timed out ({type(exc).__name__})") from None
        except httpx.TransportError as exc:
            # `from None`: the transport error's text is not ours to vouch for; ours is scrubbed.
            reason = self._scrub(str(exc) or type(exc).__name__)
            raise PortaBillingUnavailable(f"PortaBilling {what}: unreachable ({reason})") from None


def _parse(response: httpx.Response, model: type[Answer], what: str) -> Answer:
    try:
        return model.model_validate_json(response.content)
    except ValidationError:
        # A garbled success (a proxy's page, a half answer): every call here is safe to repeat. The
        # validation error is not shown: it would quote the answer, which may hold a password.
        raise PortaBillingUnavailable(
            f"PortaBilling {what}: {response.status_code} with an unreadable answer", status=response.status_code
        ) from None
