"""What the CMMS should hold for an account, derived from billing (customized provisioning's fallbacks)."""

from dataclasses import dataclass
from datetime import datetime

from sqlmodel.ext.asyncio.session import AsyncSession

from billing.messaging import desired_messaging
from billing.models import Account, AccountStatus, Customer, Reseller
from contracts.cmms import CmmsAccount
from core.settings import ProvisioningSettings

PROFILE_FIELD = "profileName"
DOMAIN_FIELD = "domain"


@dataclass(frozen=True)
class EffectiveProfile:
    profile: str
    domain: str


def effective_profile(
    customer: Customer, reseller: Reseller | None, provisioning: ProvisioningSettings
) -> EffectiveProfile:
    """Domain: the customer's, else the reseller's, else the provider's; profile: the customer's, else the default."""
    fields = customer.custom_fields
    domain = fields.get(DOMAIN_FIELD) or (reseller.domain if reseller else None) or provisioning.default_domain
    return EffectiveProfile(profile=fields.get(PROFILE_FIELD) or provisioning.default_profile, domain=domain)


@dataclass(frozen=True)
class DesiredState:
    """What the CMMS should hold for an account, and what that depends on."""

    record: CmmsAccount
    customer_id: str
    wake_at: datetime | None  # when it will change by itself (a messaging wallet's top-up expiring)
    messaging_driven: bool  # billing drives messaging (else `record.messaging_enabled` True hands it back)
    customer_revision: int  # the revision of the customer values it carries


async def desired_state(
    session: AsyncSession, account: Account, provisioning: ProvisioningSettings, *, now: datetime
) -> DesiredState:
    """The full record the CMMS should hold for `account` at `now`."""
    customer = await session.get_one(Customer, account.customer_id)
    reseller = await session.get(Reseller, customer.reseller_id) if customer.reseller_id else None
    effective = effective_profile(customer, reseller, provisioning)
    messaging = await desired_messaging(session, account, now)
    record = CmmsAccount(
        password=account.sip_password,  # pydantic wraps it in SecretStr
        imei=account.imei,
        profile=effective.profile,
        domain=effective.domain,
        blocked=account.status == AccountStatus.blocked,
        messaging_enabled=messaging.enabled,
    )
    return DesiredState(
        record=record,
        customer_id=customer.customer_id,
        wake_at=messaging.wake_at,
        messaging_driven=messaging.driven,
        customer_revision=customer.revision,
    )
