"""What the CA publishes: CRLs, built with the next CRLNumber, and the files they go to.

A two-tier root signs only CAs, and its key may live offline: its CRL is published as a
file (`privca crl --root`, and once at init) that `privca serve` serves as it is, for the
root key is never used for a request.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from privca.errors import KeyUnavailable
from privca.home import CAHome
from privca.store.inventory import Store
from privca.x509.build import Issuer
from privca.x509.crl import Revocation, build_crl

ROOT_CRL_FILE = "root.crl"
PUBLIC = 0o644

CrlFile = tuple[Path, bytes, int]  # as atomic_write_many takes them


def root_crl_file(home: CAHome) -> Path:
    """Where the root's CRL is published, for when its key goes offline."""
    return home.crl / ROOT_CRL_FILE


def crl_files(path: Path, crl: x509.CertificateRevocationList) -> list[CrlFile]:
    """`path` (DER) and the same name with .pem, both world-readable."""
    return [
        (path.with_suffix(".crl"), crl.public_bytes(Encoding.DER), PUBLIC),
        (path.with_suffix(".pem"), crl.public_bytes(Encoding.PEM), PUBLIC),
    ]


def sign_crl(
    store: Store, authority_id: int, signer: Issuer, now: dt.datetime, next_update: dt.datetime
) -> x509.CertificateRevocationList:
    """A full CRL of one CA with its next CRLNumber (never reused, never lower); due
    scheduled revocations are listed at their scheduled time whether written or not."""
    entries = [
        Revocation(e.serial, e.revoked_at, e.reason)
        for e in store.revoked_entries(authority_id, now)
    ]
    number = store.next_crl_number(authority_id, now, next_update)
    return build_crl(signer, entries, number, now, next_update)


def read_published_root_crl(home: CAHome, now: dt.datetime) -> x509.CertificateRevocationList:
    """The root CRL made earlier with `privca crl --root`, if it is still current
    (KeyUnavailable otherwise)."""
    try:
        crl = x509.load_der_x509_crl(root_crl_file(home).read_bytes())
    except (OSError, ValueError) as exc:
        raise KeyUnavailable(
            "no root CRL was published",
            "with the root key at hand, run `privca crl --root`",
        ) from exc
    if crl.next_update_utc is not None and crl.next_update_utc <= now:
        raise KeyUnavailable(
            f"the published root CRL expired on {crl.next_update_utc:%Y-%m-%d}",
            "bring the root key back and run `privca crl --root`",
        )
    return crl


def root_crl_due(home: CAHome, now: dt.datetime) -> bool:
    """True when the published root CRL is missing or past half its life: time for
    `privca crl` to publish a new one while the root key is at hand."""
    try:
        crl = x509.load_der_x509_crl(root_crl_file(home).read_bytes())
    except (OSError, ValueError):
        return True
    if crl.next_update_utc is None:
        return False
    this_update = crl.last_update_utc
    return now >= this_update + (crl.next_update_utc - this_update) / 2


__all__ = [
    "crl_files",
    "read_published_root_crl",
    "root_crl_due",
    "root_crl_file",
    "sign_crl",
]
