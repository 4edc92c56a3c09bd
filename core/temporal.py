"""The one place that builds a Temporal client: API, worker, tests and scripts all call `connect`."""

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter

from core.settings import Settings


def data_converter(settings: Settings) -> DataConverter:
    """How every payload is encoded: pydantic models as JSON (test environments use it too)."""
    return pydantic_data_converter


async def connect(settings: Settings, *, address: str | None = None) -> Client:
    """Connect to the settings' Temporal server (or `address`) with the project's data converter."""
    return await Client.connect(
        address or settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=data_converter(settings),
    )
