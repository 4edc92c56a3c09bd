"""The one place that builds a Temporal client: API, worker, tests and scripts all call `connect`."""

import asyncio
import dataclasses
import os
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, NoReturn

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, DefaultFailureConverterWithEncodedAttributes
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.service import RPCError, RPCStatusCode, TLSConfig

from core.codec import EncryptionCodec
from core.crypto import KeyRing
from core.settings import TemporalSettings, WorkerSettings

# Temporal's answers that pass by themselves (server down, overloaded, slow): repeat the call later.
# Any other status (an invalid argument, a namespace or permission missing) is a fault to fix.
_TRANSIENT = frozenset(
    {
        RPCStatusCode.UNAVAILABLE,
        RPCStatusCode.DEADLINE_EXCEEDED,
        RPCStatusCode.RESOURCE_EXHAUSTED,
        RPCStatusCode.ABORTED,
    }
)


# What a client made with `lazy=True` raises when it cannot reach the server for its first call.
_CONNECT_FAILED = "Failed client connect"


def is_transient(err: BaseException) -> bool:
    """Whether repeating the call later can succeed without anyone changing anything: Temporal could
    not be reached, was overloaded or did not answer in time (as opposed to refusing the call)."""
    if isinstance(err, RPCError):
        return err.status in _TRANSIENT
    return isinstance(err, RuntimeError) and str(err).startswith(_CONNECT_FAILED)


def data_converter(temporal: TemporalSettings) -> DataConverter:
    """Pydantic models as JSON, then encrypted (`core.codec`) with the PAYLOAD_KEYS ring; failures'
    messages and stack traces are moved into an encoded payload too, so nothing readable is left in the history."""
    codec = EncryptionCodec(KeyRing.parse(temporal.payload_keys.get_secret_value()))
    return dataclasses.replace(
        pydantic_data_converter,
        payload_codec=codec,
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )


def metrics_runtime(worker: WorkerSettings) -> Runtime | None:
    """A Temporal runtime exporting the SDK's own metrics (task latencies, slots, polls) for
    Prometheus on `WORKER_METRICS_HOST:WORKER_METRICS_PORT`; None when the port is 0."""
    if not worker.metrics_port:
        return None
    bind = f"{worker.metrics_host}:{worker.metrics_port}"
    return Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=bind)))


def tls_config(temporal: TemporalSettings) -> TLSConfig | bool:
    """The TLS the settings ask for (files read now, so a missing one fails at start-up), or False."""
    if not temporal.uses_tls:
        return False

    def read(path: Path | None) -> bytes | None:
        return path.read_bytes() if path is not None else None

    return TLSConfig(
        server_root_ca_cert=read(temporal.tls_server_ca_cert_path),
        domain=temporal.tls_server_name,
        client_cert=read(temporal.tls_client_cert_path),
        client_private_key=read(temporal.tls_client_key_path),
    )


async def connect(
    temporal: TemporalSettings, *, address: str | None = None, runtime: Runtime | None = None, lazy: bool = False
) -> Client:
    """Connect to the Temporal server the settings name (or `address`) with the project's data converter, over
    TLS or mTLS and with an API key when the settings say so; `runtime` carries telemetry (the worker
    passes `metrics_runtime`), the default one otherwise. `lazy`: connect at the first call instead (and
    again after a lost connection), so a process that can serve without Temporal starts while Temporal
    is unreachable."""
    api_key = temporal.api_key.get_secret_value() if temporal.api_key else None
    return await Client.connect(
        address or temporal.address,
        namespace=temporal.namespace,
        data_converter=data_converter(temporal),
        runtime=runtime,
        tls=tls_config(temporal),
        api_key=api_key,
        lazy=lazy,
    )


def run_client_script(main: Coroutine[Any, Any, None]) -> NoReturn:
    """Run a short-lived client script to its end and exit 0, skipping the interpreter's teardown: it
    can abort while the SDK's Rust threads are still about (temporalio/sdk-python#300). An exception
    still ends the script the usual way (a traceback, exit 1)."""
    asyncio.run(main)
    sys.stdout.flush()
    os._exit(0)
