"""Steps of the OTT signup: send a code by SMS, record the signup, create (or find) the number's account."""

import logging

from pydantic import SecretStr
from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError

from activities.business_metrics import SignupOutcome, signup_finished, sms_sent
from billing.credentials import new_sip_password
from billing.db import FOR_CHANGE, SessionMaker, transaction
from billing.models import (
    Account,
    AccountStatus,
    Customer,
    CustomerClass,
    Product,
    PushStatus,
    Signup,
    SignupSend,
    SmsMessage,
    SmsStatus,
    utcnow,
)
from billing.otp import code_hmac, new_code
from billing.provisioning import DOMAIN_FIELD, PROFILE_FIELD
from billing.sms_reports import new_report_token, token_hash
from billing.wallets import discard_account, forget_wallets, open_product_wallet
from clients.kannel import KannelClient, SmsRejected, SmsUnavailable
from contracts.signups import (
    ACCOUNT_NOT_CLAIMABLE,
    PROVISIONING_FAILED,
    SEND_LIMIT,
    SMS_REJECTED,
    SMS_UNAVAILABLE,
    RecordSignupInput,
    SendCodeInput,
    SendCodeResult,
    SignupAccount,
    SignupAccountInput,
    SignupState,
    made_by_a_signup,
    signup_origin,
)
from core.gateway import sync_account
from core.settings import OutboxSettings, SignupSettings, SmsSettings

log = logging.getLogger(__name__)

# A code SMS's claim (SignupSend.state).
_SENDING, _SENT, _FAILED = "sending", "sent", "failed"

# The states a signup ends in, as counted by outcome.
_FINISHED: dict[SignupState, SignupOutcome] = {
    SignupState.verified: "verified",
    SignupState.expired: "expired",
    SignupState.failed: "failed",
}


def signup_account_id(e164: str) -> str:
    """An OTT account's id is its mobile number: E.164 digits, no `+`."""
    return e164.lstrip("+")


class SignupActivities:
    def __init__(
        self,
        sessions: SessionMaker,
        settings: SignupSettings,
        client: Client,
        *,
        sms: SmsSettings,
        outbox: OutboxSettings,
        secret_key: SecretStr,
        task_queue: str,
    ) -> None:
        self._sessions = sessions
        self._settings = settings
        self._client = client
        self._sms = sms  # how the codes are texted
        self._outbox = outbox  # when a new wallet's account workflow hears of it
        self._secret_key = secret_key  # the codes' keyed hashes
        self._task_queue = task_queue  # the accounts' workflows'

    @activity.defn(name="send_signup_code")
    async def send_signup_code(self, request: SendCodeInput) -> SendCodeResult:
        """Text a fresh code and return only its HMAC: the code never leaves here.

        At most one SMS per send, however often this is retried: the send is claimed in billing before
        the message goes out, and a retry that finds the claim texts nothing and answers the claimed
        code's HMAC (the message already sent, or perhaps sent: a worker that died, a gateway that timed
        out, must not text a second code). Only a send that surely did not go out is tried again.
        The message is recorded (`queued`) before it goes out, so a delivery report arriving at once
        finds it; a send that did not happen is forgotten, one the gateway refused is `rejected`.
        """
        settings = self._settings
        code = new_code(settings.code_digits)
        claimed = await self._claim_send(request, code_hmac(self._secret_key, request.signup_id, code))
        if claimed is not None:
            return SendCodeResult(code_hmac=claimed)
        text = self._sms.template.format(code=code, minutes=max(1, settings.code_ttl_seconds // 60))
        token = new_report_token()
        message = SmsMessage(report_token_hash=token_hash(token), signup_id=request.signup_id)
        async with transaction(self._sessions) as session:
            session.add(message)
        base = self._sms.report_base_url.rstrip("/")
        try:
            # A connection per message: signups are few, and the worker holds no pool to close.
            async with KannelClient(
                self._sms.gateway_url,
                self._sms.username,
                self._sms.password.get_secret_value(),
                sender=self._sms.sender,
                timeout=self._sms.timeout_seconds,
            ) as sms:
                await sms.send(
                    request.phone_number,
                    text,
                    dlr_url=f"{base}/v1/sms/delivery-reports/{token}?type=%d" if base else None,
                )
        except SmsRejected as err:
            activity.logger.error("the SMS gateway refused the code SMS of signup %s: %s", request.signup_id, err)
            await self._mark_send(request, _FAILED)
            await self._mark_sms(message.report_token_hash, SmsStatus.rejected, str(err))
            sms_sent("rejected")
            raise ApplicationError(str(err), type=SMS_REJECTED, non_retryable=True) from None
        except SmsUnavailable as err:
            if err.maybe_sent:
                # The gateway may have taken it: counted as sent, never sent again (the user can resend).
                log.warning(
                    "signup %s: SMS gateway did not answer (%s); the code is not sent again", request.signup_id, err
                )
                await self._mark_send(request, _SENT)
                sms_sent("unanswered")
                return SendCodeResult(code_hmac=code_hmac(self._secret_key, request.signup_id, code))
            await self._mark_send(request, _FAILED)
            await self._forget_sms(message.report_token_hash)
            sms_sent("unavailable")
            raise ApplicationError(str(err), type=SMS_UNAVAILABLE) from None
        await self._mark_send(request, _SENT)
        sms_sent("accepted")
        return SendCodeResult(code_hmac=code_hmac(self._secret_key, request.signup_id, code))

    async def _claim_send(self, request: SendCodeInput, hmac: str) -> str | None:
        """Claim send `seq` for this code; the HMAC of an earlier claim of it (text nothing), or None."""
        async with transaction(self._sessions) as session:
            row = await session.get(SignupSend, (request.signup_id, request.seq), with_for_update=True)
            if row is not None and row.state != _FAILED:
                return row.code_hmac
            claims = select(func.count()).where(
                (col(SignupSend.signup_id) == request.signup_id) & (col(SignupSend.state) != _FAILED)
            )
            if (await session.exec(claims)).one() >= request.max_sends:
                raise ApplicationError("no more codes may be sent for this signup", type=SEND_LIMIT, non_retryable=True)
            row = row or SignupSend(signup_id=request.signup_id, seq=request.seq, code_hmac=hmac, state=_SENDING)
            row.code_hmac, row.state, row.updated_at = hmac, _SENDING, utcnow()
            session.add(row)
        return None

    async def _mark_send(self, request: SendCodeInput, state: str) -> None:
        async with transaction(self._sessions) as session:
            row = await session.get_one(SignupSend, (request.signup_id, request.seq), with_for_update=True)
            row.state, row.updated_at = state, utcnow()
            session.add(row)

    async def _forget_sms(self, key: str) -> None:
        async with transaction(self._sessions) as session:
            row = await session.get(SmsMessage, key, with_for_update=True)
            if row is not None:
                await session.delete(row)

    async def _mark_sms(self, key: str, status: SmsStatus, error: str) -> None:
        async with transaction(self._sessions) as session:
            row = await session.get(SmsMessage, key, with_for_update=True)
            if row is not None:
                row.status = status
                row.error = error[:300]
                row.updated_at = utcnow()
                session.add(row)

    @activity.defn(name="record_signup")
    async def record_signup(self, record: RecordSignupInput) -> None:
        """Write the signup's row; a verified signup also makes its account active (charging starts)."""
        async with transaction(self._sessions) as session:
            row = await session.get(Signup, record.signup_id, with_for_update=True)
            if row is None:
                row = Signup(
                    signup_id=record.signup_id,
                    phone_number=record.phone_number,
                    client_id=record.client_id,
                    expires_at=record.expires_at,
                )
            row.status = record.status
            row.expires_at = record.expires_at
            row.account_id = record.account_id
            row.updated_at = utcnow()
            if record.status != SignupState.pending:
                row.requested_password = None  # a CMMS password no account took is not kept
            session.add(row)
            if record.status == SignupState.verified and record.account_id:
                account = await session.get_one(Account, record.account_id, with_for_update=FOR_CHANGE)
                if account.status == AccountStatus.pending:
                    account.status = AccountStatus.active
                    account.updated_at = utcnow()
                    session.add(account)
        if record.status in _FINISHED:
            signup_finished(_FINISHED[record.status])

    @activity.defn(name="create_signup_account")
    async def create_signup_account(self, request: SignupAccountInput) -> SignupAccount:
        """The number's account with a password no one has had: created, a terminated one's new life,
        or the live one's password replaced (the old device's stops working). Only accounts of the OTT
        customer are reachable: any other account whose id is the number is refused.

        Safe to repeat: a retry finds the change this signup made (the signup's row holds its revision).
        """
        await self._ensure_ott_catalog()
        account_id = signup_account_id(request.phone_number)
        origin = signup_origin(request.signup_id)
        async with transaction(self._sessions) as session:
            signup = await session.get(Signup, request.signup_id, with_for_update=FOR_CHANGE)
            if signup is None:  # the first send writes it alongside the SMS: not there yet
                raise ApplicationError(f"signup {request.signup_id} is not recorded yet")
            account = await session.get(Account, account_id, with_for_update=FOR_CHANGE)
            if account is not None and signup.account_revision is not None and signup.account_id == account_id:
                created = account.created_by == origin
                return SignupAccount(account_id=account_id, created=created, password_changed=not created)
            # Only an account a signup created is the number's to claim: one made by an order or an
            # import carries someone's IMEI (the key to its credentials at the CMMS), whatever its customer.
            if account is not None and not made_by_a_signup(account.created_by):
                log.warning(
                    "signup %s refused: account %s (customer %s) was not created by a signup: signups cannot claim it",
                    request.signup_id,
                    account_id,
                    account.customer_id,
                )
                raise ApplicationError(
                    "the number belongs to an account that a signup cannot claim",
                    type=ACCOUNT_NOT_CLAIMABLE,
                    non_retryable=True,
                )
            password = signup.requested_password if request.password_from_signup else new_sip_password()
            if password is None:
                raise ApplicationError("the signup holds no password", type=PROVISIONING_FAILED, non_retryable=True)
            created = account is None or account.status == AccountStatus.terminated
            if account is None:
                account = Account(
                    account_id=account_id,
                    customer_id=self._settings.ott_customer_id,
                    product_id=self._settings.ott_product_id,
                    sip_password=password,
                    created_by=origin,
                )
            elif created:
                await self._new_life(session, account, password, origin)
            else:
                account.sip_password = password
                account.imei = None  # the device that held the number before gets nothing from the CMMS
                account.revision += 1
                account.updated_at = utcnow()
            session.add(account)
            if created:  # a new life starts with the product's initial wallet, if it gives one
                await session.flush()
                await open_product_wallet(session, account_id, self._settings.ott_product_id, self._outbox)
            signup.account_id = account_id
            signup.account_revision = account.revision
            signup.secret_hmac = request.secret_hmac or signup.secret_hmac
            signup.requested_password = None  # the account holds it now
            signup.updated_at = utcnow()
            session.add(signup)
            return SignupAccount(account_id=account_id, created=created, password_changed=not created)

    @activity.defn(name="push_signup_account")
    async def push_signup_account(self, request: SignupAccountInput) -> None:
        """The live account's new password, pushed by its own workflow (the one writer of its CMMS
        record); returns once the CMMS holds it."""
        await sync_account(self._client, self._task_queue, signup_account_id(request.phone_number))

    async def _new_life(self, session: AsyncSession, account: Account, password: str, origin: str) -> None:
        """A terminated OTT account claimed again starts afresh: nothing of its old life comes back."""
        await forget_wallets(session, account.account_id)
        account.status = AccountStatus.pending
        account.sip_password = password
        account.imei = None
        account.service_policies = {}
        account.product_id = self._settings.ott_product_id
        account.provisioning_state = PushStatus.in_progress
        account.last_error = None
        account.cmms_version = None
        account.created_by = origin
        account.revision += 1
        account.updated_at = utcnow()

    @activity.defn(name="discard_signup_account")
    async def discard_signup_account(self, request: SignupAccountInput) -> None:
        """Roll back: an account this signup created that never went live is deleted."""
        origin = signup_origin(request.signup_id)
        async with transaction(self._sessions) as session:
            await discard_account(session, signup_account_id(request.phone_number), origin)

    async def _ensure_ott_catalog(self) -> None:
        """The customer (and its class) and the product OTT accounts belong to, created at first use.

        Operators may create them beforehand (to set a profile or domain); existing rows are kept.
        """
        settings = self._settings
        async with self._sessions() as session:
            have_customer = await session.get(Customer, settings.ott_customer_id) is not None
            have_product = await session.get(Product, settings.ott_product_id) is not None
        if have_customer and have_product:
            return
        # Two first signups at once: one insert fails, and its activity's retry finds the rows.
        async with transaction(self._sessions) as session:
            if not have_customer:
                if await session.get(CustomerClass, settings.ott_customer_id) is None:
                    session.add(
                        CustomerClass(
                            customer_class_id=settings.ott_customer_id,
                            name="OTT app users",
                            custom_fields=[PROFILE_FIELD, DOMAIN_FIELD],
                        )
                    )
                    await session.flush()
                session.add(
                    Customer(
                        customer_id=settings.ott_customer_id,
                        name="OTT app users",
                        customer_class_id=settings.ott_customer_id,
                    )
                )
            if not have_product:
                session.add(Product(product_id=settings.ott_product_id, name="OTT standard"))
