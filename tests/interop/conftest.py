"""Shared fixtures for the third-party judges: CAs cached for the session, leaves on disk.

Creating a CA costs up to ~1.5 s (RSA-4096 keys, the passphrase KDF), so each CA shape is
made once per session by the real `CertificateAuthority.init` and shared read-only: tests
only issue from it, which never changes what another test sees.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from privca.authority import CertificateAuthority, IssuedCertificate
from privca.keys.types import KeyType
from privca.x509.encoding import pem_private_key_unencrypted
from tests.acme.conftest import dns_server  # noqa: F401  (fixture: names -> 127.0.0.1)
from tests.conftest import PASSPHRASE, openssl, write

CORP_PERMITTED = ("corp.internal", "10.0.0.0/8")


@dataclass(frozen=True)
class Leaf:
    """An issued certificate written out as a service would receive it."""

    issued: IssuedCertificate
    key: Path
    certificate: Path
    chain: Path


@dataclass
class PooledCA:
    """One CA home plus a cache of leaves issued from it (keyed by their request)."""

    ca: CertificateAuthority
    label: str
    work: Path
    leaves: dict[tuple[object, ...], Leaf] = field(default_factory=dict)

    @property
    def root_crt(self) -> Path:
        return self.ca.home.root_cert

    @property
    def issuing_crt(self) -> Path | None:
        path = self.ca.home.issuing_cert
        return path if path.exists() else None

    @property
    def single_tier(self) -> bool:
        return self.ca.settings.single_tier

    def untrusted_args(self) -> list[str]:
        """`-untrusted issuing.crt` for a two-tier CA; nothing when the root signs leaves."""
        return [] if self.issuing_crt is None else ["-untrusted", str(self.issuing_crt)]

    def leaf(
        self,
        *names: str,
        profile: str = "server-client",
        key_type: KeyType = KeyType.EC_P256,
    ) -> Leaf:
        cache_key = (names, profile, key_type)
        if cache_key not in self.leaves:
            issued = self.ca.issue(list(names), profile=profile, key_type=key_type)
            stem = f"leaf{len(self.leaves)}"
            self.leaves[cache_key] = Leaf(
                issued=issued,
                key=write(
                    self.work / f"{stem}.key",
                    pem_private_key_unencrypted(issued.private_key),
                    0o600,
                ),
                certificate=write(self.work / f"{stem}.crt", issued.certificate_pem()),
                chain=write(self.work / f"{stem}.chain.pem", issued.chain_pem()),
            )
        return self.leaves[cache_key]


class CAPool:
    """CAs by shape: (key type, single tier, permitted subtrees, base URL)."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.cas: dict[tuple[object, ...], PooledCA] = {}

    def get(
        self,
        key_type: KeyType | None = None,
        *,
        single_tier: bool = False,
        permitted: Sequence[str] = (),
        base_url: str = "",
        name: str = "Interop Test CA",
    ) -> PooledCA:
        cache_key = (key_type, single_tier, tuple(permitted), base_url, name)
        if cache_key not in self.cas:
            label = f"ca{len(self.cas)}"
            ca = CertificateAuthority.init(
                self.base / label,
                name,
                key_type=key_type,
                single_tier=single_tier,
                permitted=permitted,
                base_url=base_url,
                passphrase=PASSPHRASE,
            )
            work = self.base / f"{label}-leaves"
            work.mkdir()
            self.cas[cache_key] = PooledCA(ca=ca, label=label, work=work)
        return self.cas[cache_key]

    def close(self) -> None:
        for pooled in self.cas.values():
            pooled.ca.close()


@pytest.fixture(scope="session")
def ca_pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CAPool]:
    pool = CAPool(tmp_path_factory.mktemp("interop-cas"))
    yield pool
    pool.close()


def openssl_verify(
    pooled: PooledCA, certificate: Path, *flags: str, purpose: str = "sslserver"
) -> subprocess.CompletedProcess[str]:
    """The runbook's judge: `openssl verify -x509_strict` trusting only our root."""
    return openssl(
        "verify",
        "-x509_strict",
        "-purpose",
        purpose,
        "-CAfile",
        str(pooled.root_crt),
        *pooled.untrusted_args(),
        *flags,
        str(certificate),
    )


def openssl_output(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}"
