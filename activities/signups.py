"""Steps of the OTT signup: send a code by SMS, record the signup, create (or find) the number's account."""

from temporalio import activity
from temporalio.exceptions import ApplicationError

from billing.credentials import new_sip_password
from billing.db import FOR_CHANGE, SessionMaker, transaction
from billing.models import Account, AccountStatus, Customer, CustomerClass, Product, Signup, SignupStatus, utcnow
from billing.otp import code_hmac, new_code
from billing.provisioning import DOMAIN_FIELD, PROFILE_FIELD
from contracts.signups import (
    SMS_REJECTED,
    SMS_UNAVAILABLE,
    RecordSignupInput,
    SendCodeInput,
    SendCodeResult,
    SignupAccount,
    SignupAccountInput,
    SignupState,
)
from core.settings import Settings
from services.wallets import discard_account, open_product_wallet
from sms.kannel import KannelClient, SmsRejected, SmsUnavailable


def signup_account_id(e164: str) -> str:
    """An OTT account's id is its mobile number: E.164 digits, no `+`."""
    return e164.lstrip("+")


class SignupActivities:
    def __init__(self, sessions: SessionMaker, settings: Settings) -> None:
        self._sessions = sessions
        self._settings = settings

    @activity.defn(name="send_signup_code")
    async def send_signup_code(self, request: SendCodeInput) -> SendCodeResult:
        """Generate a fresh code, send it by SMS, and return only its HMAC: the code never leaves here."""
        settings = self._settings
        code = new_code(settings.signup_code_digits)
        text = settings.sms_template.format(code=code, minutes=max(1, settings.signup_code_ttl_seconds // 60))
        try:
            # A connection per message: signups are few, and the worker holds no pool to close.
            async with KannelClient(
                settings.sms_gateway_url,
                settings.sms_username,
                settings.sms_password.get_secret_value(),
                timeout=settings.sms_timeout_seconds,
            ) as sms:
                await sms.send(request.phone_number, text)
        except SmsUnavailable as err:
            raise ApplicationError(str(err), type=SMS_UNAVAILABLE) from None
        except SmsRejected as err:
            raise ApplicationError(str(err), type=SMS_REJECTED, non_retryable=True) from None
        return SendCodeResult(code_hmac=code_hmac(settings, request.signup_id, code))

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
            row.status = SignupStatus(record.status.value)
            row.expires_at = record.expires_at
            row.account_id = record.account_id
            row.updated_at = utcnow()
            session.add(row)
            if record.status == SignupState.verified and record.account_id:
                account = await session.get_one(Account, record.account_id, with_for_update=FOR_CHANGE)
                if account.status == AccountStatus.pending:
                    account.status = AccountStatus.active
                    account.updated_at = utcnow()
                    session.add(account)

    @activity.defn(name="create_signup_account")
    async def create_signup_account(self, request: SignupAccountInput) -> SignupAccount:
        """The number's account: created (pending until the CMMS has it), or the one it already has.

        Safe to repeat: a retry finds the account this signup created.
        """
        await self._ensure_ott_catalog()
        account_id = signup_account_id(request.phone_number)
        origin = f"signup:{request.signup_id}"
        async with transaction(self._sessions) as session:
            account = await session.get(Account, account_id, with_for_update=FOR_CHANGE)
            if account is None:
                session.add(
                    Account(
                        account_id=account_id,
                        customer_id=self._settings.ott_customer_id,
                        product_id=self._settings.ott_product_id,
                        sip_password=new_sip_password(),
                        created_by=origin,
                    )
                )
                await open_product_wallet(session, account_id, self._settings.ott_product_id, self._settings)
                return SignupAccount(account_id=account_id, created=True)
            if account.status == AccountStatus.terminated:
                # The number comes back: the account lives again with fresh credentials.
                account.status = AccountStatus.pending
                account.sip_password = new_sip_password()
                account.created_by = origin
                account.revision += 1
                account.updated_at = utcnow()
                session.add(account)
                return SignupAccount(account_id=account_id, created=True)
            return SignupAccount(account_id=account_id, created=account.created_by == origin)

    @activity.defn(name="discard_signup_account")
    async def discard_signup_account(self, request: SignupAccountInput) -> None:
        """Roll back: an account this signup created that never went live is deleted."""
        origin = f"signup:{request.signup_id}"
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
