"""A test PKI made with x509/ alone: no CA home, no store, no clock inside the code under
test. Keys are cached per (type, label) so a table of cases costs one RSA key each.

The third-party judge is the real `openssl` binary: `judge_chain` writes the certificates
to a directory and runs `openssl verify -x509_strict` on them at a given time.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.hazmat.primitives.serialization import Encoding

from privca._time import utcnow
from privca.keys.types import KeyType
from privca.x509.build import (
    CertificateSpec,
    Issuer,
    build_certificate,
    ca_subject,
    leaf_subject,
    self_issuer,
)
from privca.x509.names import NameSubtree, parse_names, parse_subtree
from privca.x509.profiles import ISSUING, ROOT, SERVER, Profile

NOW = utcnow()
CRL_URL = "http://pki.corp.internal/crl/issuing.crl"
OCSP_URL = "http://pki.corp.internal/ocsp"
CA_ISSUERS_URL = "http://pki.corp.internal/ca/issuing.der"


@functools.cache
def key(key_type: KeyType, label: str = "") -> CertificateIssuerPrivateKeyTypes:
    """One key per (type, label) for the whole session."""
    generated: CertificateIssuerPrivateKeyTypes = key_type.generate()
    return generated


@dataclass(frozen=True)
class Pki:
    """A root and an issuing CA, each with the Issuer that signs below it."""

    root: x509.Certificate
    root_issuer: Issuer
    issuing: x509.Certificate
    issuing_issuer: Issuer


def _serial(seed: str) -> int:
    return int.from_bytes(seed.encode()[:15].ljust(15, b"\0"), "big") | (1 << 120)


def make_pki(
    root_type: KeyType = KeyType.EC_P384,
    issuing_type: KeyType = KeyType.EC_P256,
    *,
    permitted: Sequence[str] = (),
    excluded: Sequence[str] = (),
    at: dt.datetime = NOW,
    label: str = "",
) -> Pki:
    """root -> issuing, the issuing CA carrying name constraints when subtrees are given.
    Another `label` gives other keys under the same names (an impostor CA)."""
    root_key = key(root_type, "root" + label)
    root_subject = ca_subject("Test x509 Root")
    root_self = self_issuer(root_subject, root_key)
    root = build_certificate(
        CertificateSpec(
            subject=root_subject,
            public_key=root_key.public_key(),
            profile=ROOT,
            serial=_serial(f"root-{root_type}"),
            not_before=at - dt.timedelta(days=1),
            not_after=at + dt.timedelta(days=3650),
        ),
        root_self,
    )
    root_issuer = Issuer.from_certificate(root, root_key)
    issuing_key = key(issuing_type, "issuing" + label)
    issuing = build_certificate(
        CertificateSpec(
            subject=ca_subject("Test x509 Issuing CA"),
            public_key=issuing_key.public_key(),
            profile=ISSUING,
            serial=_serial(f"issuing-{issuing_type}"),
            not_before=at - dt.timedelta(days=1),
            not_after=at + dt.timedelta(days=1825),
            permitted=tuple(parse_subtree(s) for s in permitted),
            excluded=tuple(parse_subtree(s) for s in excluded),
        ),
        root_issuer,
    )
    return Pki(root, root_issuer, issuing, Issuer.from_certificate(issuing, issuing_key))


def leaf_spec(
    names: Sequence[str],
    *,
    profile: Profile = SERVER,
    key_type: KeyType = KeyType.EC_P256,
    at: dt.datetime = NOW,
    serial: int = 0x1234_5678_9ABC_DEF0_1122_3344,
    **changes: object,
) -> CertificateSpec:
    parsed = parse_names(names)
    spec = CertificateSpec(
        subject=leaf_subject(parsed),
        public_key=key(key_type, "leaf").public_key(),
        profile=profile,
        serial=serial,
        not_before=at - dt.timedelta(minutes=5),
        not_after=at + dt.timedelta(days=90),
        names=parsed,
        crl_url=CRL_URL,
        ocsp_url=OCSP_URL,
        ca_issuers_url=CA_ISSUERS_URL,
    )
    return dataclasses.replace(spec, **changes)  # type: ignore[arg-type]


def subtrees(*texts: str) -> tuple[NameSubtree, ...]:
    return tuple(parse_subtree(t) for t in texts)


def write_pem(path: Path, *certificates: x509.Certificate) -> Path:
    path.write_bytes(b"".join(c.public_bytes(Encoding.PEM) for c in certificates))
    return path


def judge_chain(
    directory: Path,
    leaf: x509.Certificate,
    pki: Pki,
    *extra: str,
    at: dt.datetime = NOW,
) -> subprocess.CompletedProcess[str]:
    """`openssl verify -x509_strict` of leaf <- issuing <- root at time `at`."""
    root = write_pem(directory / "root.pem", pki.root)
    issuing = write_pem(directory / "issuing.pem", pki.issuing)
    cert = write_pem(directory / "leaf.pem", leaf)
    return subprocess.run(
        ["openssl", "verify", "-x509_strict", "-attime", str(int(at.timestamp())),
         "-CAfile", str(root), "-untrusted", str(issuing), *extra, str(cert)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def openssl_text(directory: Path, certificate: x509.Certificate) -> str:
    """What `openssl x509 -text` reads in a certificate (it fails on malformed DER)."""
    path = write_pem(directory / "text.pem", certificate)
    done = subprocess.run(
        ["openssl", "x509", "-noout", "-text", "-in", str(path)],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return done.stdout
