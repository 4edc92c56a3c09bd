"""The billing source the settings choose, with what it holds open (PortaBilling's connection pool)."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from billing.db import SessionMaker
from billing.sources.base import BillingSource
from billing.sources.builtin import BuiltinSource
from billing.sources.portabilling import PortaBillingSource
from clients.portabilling.client import PortaBillingClient
from core.settings import Settings


@asynccontextmanager
async def billing_source(settings: Settings, sessions: SessionMaker) -> AsyncIterator[BillingSource]:
    """`BILLING_SOURCE`: the built-in billing, or PortaBilling read over its JSON API."""
    if settings.billing_source == "builtin":
        yield BuiltinSource(sessions, settings.provisioning, settings.rollouts)
        return
    part = settings.portabilling
    async with PortaBillingClient(
        part.url, part.login, part.password.get_secret_value(), timeout=part.timeout_seconds
    ) as client:
        yield PortaBillingSource(client, sessions, settings.portabilling, settings.provisioning, settings.rollouts)
