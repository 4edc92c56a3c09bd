"""The one client factory reaches a TLS or mTLS cluster, and Temporal Cloud with an API key: tested
against the real dev server put behind TLS (certificates made by the test)."""

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from core.settings import Settings
from core.temporal import connect
from tests.support.net import free_port
from tests.support.tls import CertificateAuthority, Issued, tls_proxy


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[CertificateAuthority, Issued, Issued]:
    ca = CertificateAuthority(tmp_path_factory.mktemp("pki"))
    return ca, ca.issue("temporal", server=True), ca.issue("worker", server=False)


@pytest.fixture
async def mtls_server(dev_server: str, pki: tuple[CertificateAuthority, Issued, Issued]) -> AsyncIterator[str]:
    ca, server, _ = pki
    async with tls_proxy(dev_server, server, free_port(), client_ca=ca.cert) as address:
        yield address


@pytest.fixture
async def tls_server(dev_server: str, pki: tuple[CertificateAuthority, Issued, Issued]) -> AsyncIterator[str]:
    _, server, _ = pki
    async with tls_proxy(dev_server, server, free_port()) as address:
        yield address


def _settings(address: str, **values: Any) -> Settings:
    return Settings(_env_file=None, environment="test", temporal_address=address, **values)


async def _answers(settings: Settings) -> bool:
    client = await connect(settings.temporal)  # the SDK asks the server for its system info on connecting
    await client.count_workflows()
    return True


async def test_mtls_with_the_client_certificate(
    mtls_server: str, pki: tuple[CertificateAuthority, Issued, Issued]
) -> None:
    ca, _, client = pki
    mtls = {
        "temporal_tls_server_ca_cert_path": ca.cert,
        "temporal_tls_client_cert_path": client.cert,
        "temporal_tls_client_key_path": client.key,
    }
    assert await _answers(_settings(mtls_server, **mtls))
    # The same server by name, the certificate's name given where the address does not carry it.
    by_name = _settings(mtls_server, temporal_tls_server_name="localhost", **mtls)
    assert await _answers(by_name)


async def test_mtls_refuses_a_client_without_a_certificate(
    mtls_server: str, pki: tuple[CertificateAuthority, Issued, Issued]
) -> None:
    ca, _, _ = pki
    with pytest.raises(RuntimeError):
        await _answers(_settings(mtls_server, temporal_tls_server_ca_cert_path=ca.cert))


async def test_tls_trusts_only_the_given_authority(tls_server: str, tmp_path: Path) -> None:
    with pytest.raises(RuntimeError):  # the system's roots do not know the test's CA
        await _answers(_settings(tls_server, temporal_tls=True))
    other = CertificateAuthority(tmp_path, "other CA")
    with pytest.raises(RuntimeError):
        await _answers(_settings(tls_server, temporal_tls_server_ca_cert_path=other.cert))
    with pytest.raises(RuntimeError):  # plaintext to a TLS port
        await _answers(_settings(tls_server))


async def test_an_api_key_goes_over_tls(tls_server: str, pki: tuple[CertificateAuthority, Issued, Issued]) -> None:
    ca, _, _ = pki
    settings = _settings(tls_server, temporal_tls_server_ca_cert_path=ca.cert, temporal_api_key="a-cloud-api-key")
    client = await connect(settings.temporal)
    await client.count_workflows()
    assert client.service_client.config.api_key == "a-cloud-api-key"
    # A key alone turns TLS on (Temporal Cloud): never sent in the clear.
    assert _settings("example.tmprl.cloud:7233", temporal_api_key="k").temporal.uses_tls


def test_a_client_certificate_needs_its_key(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="TEMPORAL_TLS_CLIENT_KEY_PATH"):
        _settings("127.0.0.1:7233", temporal_tls_client_cert_path=tmp_path / "c.pem")
    assert not _settings("127.0.0.1:7233").temporal.uses_tls  # plaintext by default, as the dev server
