"""What the CA publishes: CRLs, built with the next CRLNumber, and the files they go to.

A two-tier root signs only CAs, and its key may live offline: its CRL is published as a
file (`privca crl --root`, and once at init) that `privca serve` serves as it is, for the
root key is never used for a request. Each root's CRL is kept under its serial
(<home>/crl/<serial>.crl, the URL issuing CAs name); <home>/crl/root.crl is the copy
/crl/root.crl serves, which issuing CAs made before roots had their own URL name.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from privca.errors import EnvironmentRefused, KeyUnavailable
from privca.home import CAHome
from privca.keys.types import ISSUER_PUBLIC_KEY_CLASSES
from privca.store.inventory import Store
from privca.x509.build import Issuer
from privca.x509.crl import CA_REASONS, Revocation, build_crl
from privca.x509.encoding import serial_hex

ROOT_CRL_FILE = "root.crl"
PUBLIC = 0o644

CrlFile = tuple[Path, bytes, int]  # as atomic_write_many takes them


def root_crl_file(home: CAHome) -> Path:
    """Where the CRL /crl/root.crl serves is published, for when the root key goes
    offline."""
    return home.crl / ROOT_CRL_FILE


def crl_file_of(home: CAHome, serial: int) -> Path:
    """Where the CRL of the CA with this serial is published (DER; .pem beside it)."""
    return (home.crl / serial_hex(serial)).with_suffix(".crl")


def crl_files(path: Path, crl: x509.CertificateRevocationList) -> list[CrlFile]:
    """`path` (DER) and the same name with .pem, both world-readable."""
    return [
        (path.with_suffix(".crl"), crl.public_bytes(Encoding.DER), PUBLIC),
        (path.with_suffix(".pem"), crl.public_bytes(Encoding.PEM), PUBLIC),
    ]


def sign_crl(
    store: Store,
    authority_id: int,
    signer: Issuer,
    now: dt.datetime,
    next_update: dt.datetime,
    *,
    record: bool = True,
) -> x509.CertificateRevocationList:
    """A full CRL of one CA with its next CRLNumber (never reused, never lower); due
    scheduled revocations are listed at their scheduled time whether written or not.
    Without `record`, the caller records it (`record_crl`) once it is published."""
    listed_until = now - (next_update - now)
    entries = [
        Revocation(e.serial, e.revoked_at, e.reason)
        for e in store.revoked_entries(authority_id, now, listed_until)
    ]
    entries += _revoked_cas_signed_by(store, authority_id, listed_until)
    number = store.next_crl_number(authority_id, now)
    try:
        crl = build_crl(signer, entries, number, now, next_update)
    except ValueError as exc:  # an entry no CRL can carry: only a store edited by hand
        raise EnvironmentRefused(
            f"the CRL could not be built from the store's revocations: {exc}",
            "run `privca audit verify`: a revoked row holds what privca never writes",
        ) from exc
    if record:
        store.crl_signed(authority_id, number, now, next_update)
    return crl


def _revoked_cas_signed_by(
    store: Store, authority_id: int, listed_until: dt.datetime
) -> list[Revocation]:
    """The revoked issuing CA certificates that CA `authority_id` (a root) signed
    (Registry.revoked_signed_by), until one CRL period after they expired (as leaves:
    RFC 5280 3.3)."""
    from privca.registry import Registry

    registry = Registry.from_records(store.authorities())
    signer = registry.by_id(authority_id)
    found = []
    for record in registry.revoked_signed_by(signer, listed_until) if signer else []:
        if record.revocation_reason not in CA_REASONS:  # only a store edited by hand
            raise EnvironmentRefused(
                f"the revocation of CA {serial_hex(record.serial)} gives no reason a CRL can carry",
                "run `privca audit verify`: a CA row holds what privca never writes",
            )
        if record.revoked_at is not None:  # always: revoked_signed_by gives no other
            found.append(Revocation(record.serial, record.revoked_at, record.revocation_reason))
    return found


def record_crl(store: Store, authority_id: int, crl: x509.CertificateRevocationList) -> None:
    """Record `crl` as the CA's newest (what `check` and /metrics watch, its `crl-issued`
    entry), for a caller that signed it with `record=False` and has now published it."""
    number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    next_update = crl.next_update_utc
    if next_update is None:  # privca's CRLs always carry one
        raise ValueError("a CRL without nextUpdate")
    store.crl_signed(authority_id, number, crl.last_update_utc, next_update)


def _published_root_crl(
    home: CAHome, root: x509.Certificate
) -> x509.CertificateRevocationList | None:
    """The newest CRL on disk that `root` signed: the file under its serial, or root.crl
    (homes made before roots had their own file, and tests that drop one in). A file
    signed by another root (root.crl during a rollover) is not this root's CRL."""
    found: list[x509.CertificateRevocationList] = []
    for path in (crl_file_of(home, root.serial_number), root_crl_file(home)):
        try:
            crl = x509.load_der_x509_crl(path.read_bytes())
        except (OSError, ValueError):
            continue
        if crl.issuer == root.subject and _signed_by(crl, root):
            found.append(crl)
    return max(found, key=_crl_order, default=None)


def _crl_order(crl: x509.CertificateRevocationList) -> tuple[dt.datetime, int]:
    """Newer first by thisUpdate, then by CRLNumber (two made in the same second)."""
    try:
        number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    except x509.ExtensionNotFound:
        number = -1
    return crl.last_update_utc, number


def _signed_by(crl: x509.CertificateRevocationList, issuer: x509.Certificate) -> bool:
    key = issuer.public_key()
    return isinstance(key, ISSUER_PUBLIC_KEY_CLASSES) and crl.is_signature_valid(key)


def read_published_root_crl(
    home: CAHome, root: x509.Certificate, now: dt.datetime
) -> x509.CertificateRevocationList:
    """The CRL of `root` made earlier with `privca crl --root`, if it is still current
    (KeyUnavailable otherwise)."""
    crl = _published_root_crl(home, root)
    if crl is None:
        raise KeyUnavailable(
            f"no CRL of the root {serial_hex(root.serial_number)} was published",
            "with the root key at hand, run `privca crl --root`",
        )
    if crl.next_update_utc is not None and crl.next_update_utc <= now:
        raise KeyUnavailable(
            f"the published root CRL expired on {crl.next_update_utc:%Y-%m-%d}",
            "bring the root key back and run `privca crl --root`",
        )
    return crl


def root_crl_lists(home: CAHome, root: x509.Certificate, serial: int) -> bool:
    """Whether the CRL of `root` published in the home lists `serial`."""
    crl = _published_root_crl(home, root)
    return crl is not None and crl.get_revoked_certificate_by_serial_number(serial) is not None


def root_crl_due(
    home: CAHome, root: x509.Certificate, now: dt.datetime, must_list: frozenset[int] = frozenset()
) -> bool:
    """True when the published CRL of `root` is missing, past half its life, or lacks one
    of the serials `must_list` (issuing CAs revoked since): time for `privca crl` to
    publish a new one while the root key is at hand."""
    crl = _published_root_crl(home, root)
    if crl is None:
        return True
    if any(crl.get_revoked_certificate_by_serial_number(serial) is None for serial in must_list):
        return True
    if crl.next_update_utc is None:
        return False
    this_update = crl.last_update_utc
    return now >= this_update + (crl.next_update_utc - this_update) / 2


__all__ = [
    "crl_file_of",
    "crl_files",
    "read_published_root_crl",
    "root_crl_due",
    "root_crl_file",
    "root_crl_lists",
    "sign_crl",
]
