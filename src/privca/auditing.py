"""The audit key and what it signs: checkpoints of the audit log and exports of it.

The audit key is a CA-held key like the CA keys (keys/custody.py: an encrypted file in
private/ beside the issuing CA's key, or on the HSM that holds it), made on first need
(a migration cannot make keys) and certified by the issuing CA with the `audit-signer`
profile (x509/profiles.py says why that shape). The issuing CA signs it because its key
is the one at hand whenever privca works (the root's may be offline); the root vouches
for the issuing CA, so an outsider needs only the root.

Checkpoint (a JSON file): {"format", "statement", "signature", "certificates"} where
`statement` is the canonical JSON text {"at", "entries", "format", "head", "root_sha256"}
exactly as signed, `signature` the base64 of a detached CMS signature over those bytes
(x509/cms.py), and `certificates` the PEM of the audit certificate and the CA chain.

Export: a canonical JSON file of the entries since a date and the certificates they
name, with a detached CMS signature beside it (FILE.p7s); `openssl cms -verify -binary`
checks it against the root.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from privca.errors import CheckFailed, InputError
from privca.home import CAHome, atomic_write
from privca.issuance import BACKDATE, public_key_sha256, record_and_sign
from privca.keys.custody import HomeCustody, PrivateKey
from privca.keys.types import KeyType
from privca.registry import CaCertificate
from privca.store.auditlog import (
    AuditEntry,
    canonical_json,
    der_fingerprint,
    entry_hash,
    format_time,
    parse_time,
)
from privca.store.inventory import Store
from privca.store.records import Intent
from privca.x509 import profiles
from privca.x509.build import CertificateSpec, Issuer, build_certificate, ca_subject
from privca.x509.cms import certificates_of, check_detached, sign_detached
from privca.x509.crl import is_crl_of, load_crl, reason_of
from privca.x509.encoding import load_certificates, pem_certificate, pem_certificates
from privca.x509.verify import is_signed_by

AUDIT_KEY_TYPE = KeyType.EC_P256
CHECKPOINT_FORMAT = "privca-audit-checkpoint-v1"
EXPORT_FORMAT = "privca-audit-export-v1"
# A new audit certificate is made when the current one has less than this left.
RENEW_BEFORE = dt.timedelta(days=30)


@dataclass(frozen=True)
class AuditSigner:
    certificate: x509.Certificate
    key: PrivateKey
    chain: tuple[x509.Certificate, ...]  # the issuing CA ... the root

    def sign(self, data: bytes) -> bytes:
        """A detached CMS signature (DER) over `data`, carrying the certificates."""
        return sign_detached(data, self.certificate, self.key, self.chain)


def read_audit_certificate(home: CAHome) -> x509.Certificate | None:
    try:
        data = home.audit_certificate.read_bytes()
    except FileNotFoundError:
        return None
    return load_certificates(data, str(home.audit_certificate))[0]


def read_audit_key_ref(home: CAHome) -> str | None:
    """The audit key's key_ref, once one was made."""
    try:
        return home.audit_key_reference.read_text(encoding="utf-8").strip() or None
    except FileNotFoundError:
        return None


def load_audit_signer(
    home: CAHome,
    custody: HomeCustody,
    issuing: CaCertificate,
    chain: tuple[x509.Certificate, ...],
    now: dt.datetime,
) -> AuditSigner | None:
    """The audit key, unlocked, with its certificate and `chain` (the chain of `issuing`,
    the active issuing CA); None when there is none yet, its certificate is about to
    expire, or another CA certified it (after a rotation `chain` is not its chain: a new
    audit key is then made under the new issuing CA; older checkpoints carry theirs)."""
    key_ref = read_audit_key_ref(home)
    certificate = read_audit_certificate(home)
    if key_ref is None or certificate is None:
        return None
    if certificate.not_valid_after_utc - RENEW_BEFORE < now:
        return None
    if _authority_key_id(certificate) != issuing.key_identifier:
        return None
    key = custody.load_for(certificate, key_ref, "audit")
    return AuditSigner(certificate, key, chain)


def _authority_key_id(certificate: x509.Certificate) -> bytes | None:
    try:
        extension = certificate.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)
    except x509.ExtensionNotFound:
        return None
    return extension.value.key_identifier


def establish_audit_key(
    home: CAHome,
    custody: HomeCustody,
    store: Store,
    authority: CaCertificate,
    signer: Issuer,
    chain: tuple[x509.Certificate, ...],
    now: dt.datetime,
) -> AuditSigner:
    """A new audit key where the issuing CA's key is, certified by it and recorded in the
    inventory (with its audit entry) before the key and certificate are written."""
    # A random tag: a rotation can make a new audit key in the second the last was made.
    name = f"audit-{now:%Y%m%d%H%M%S}-{secrets.token_hex(4)}"
    generated = custody.generate(AUDIT_KEY_TYPE, "audit", name, beside=authority.key_ref)
    subject = ca_subject(f"{authority.label[:40]} Audit Log")
    not_before = max(now - BACKDATE, signer.not_before_or(now))
    days = profiles.AUDIT_SIGNER.default_days
    not_after = min(now + dt.timedelta(days=days), signer.not_after or now)
    public_key = generated.private_key.public_key()
    intent = Intent(
        issuer_id=authority.id,
        profile=profiles.AUDIT_SIGNER.name,
        names=(),
        subject=subject.rfc4514_string(),
        not_before=not_before,
        not_after=not_after,
        public_key_sha256=public_key_sha256(public_key),
    )

    def build(_index: int, serial: int) -> x509.Certificate:
        spec = CertificateSpec(
            subject=subject,
            public_key=public_key,
            profile=profiles.AUDIT_SIGNER,
            serial=serial,
            not_before=not_before,
            not_after=not_after,
        )
        return build_certificate(spec, signer)

    [certificate] = record_and_sign(store, [intent], build, now)
    custody.keep(generated)
    atomic_write(home.audit_key_reference, generated.key_ref.encode() + b"\n", 0o644)
    atomic_write(home.audit_certificate, pem_certificate(certificate), 0o644)
    return AuditSigner(certificate, generated.private_key, chain)


# Checkpoints ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    entries: int
    head: str
    at: dt.datetime
    root_sha256: str
    statement: bytes  # as signed
    signature: bytes  # detached CMS, DER
    certificates: tuple[x509.Certificate, ...]  # the audit certificate first

    def document(self) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "statement": self.statement.decode("ascii"),
            "signature": base64.b64encode(self.signature).decode("ascii"),
            "certificates": [pem_certificate(c).decode("ascii") for c in self.certificates],
        }

    def text(self) -> str:
        return json.dumps(self.document(), indent=2, sort_keys=True) + "\n"


def sign_checkpoint(
    signer: AuditSigner, entries: int, head: str, at: dt.datetime, root: x509.Certificate
) -> Checkpoint:
    root_sha256 = der_fingerprint(root.public_bytes(Encoding.DER))
    statement = canonical_json(
        {
            "format": CHECKPOINT_FORMAT,
            "entries": entries,
            "head": head,
            "at": format_time(at),
            "root_sha256": root_sha256,
        }
    ).encode("ascii")
    return Checkpoint(
        entries,
        head,
        at,
        root_sha256,
        statement,
        signer.sign(statement),
        (signer.certificate, *signer.chain),
    )


def load_checkpoint(text: str | bytes, source: str) -> Checkpoint:
    """Parse a checkpoint file (nothing checked yet but its shape; see check_signed)."""
    try:
        document = json.loads(text)
        if document.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"format is not {CHECKPOINT_FORMAT}")
        statement = str(document["statement"]).encode("ascii")
        fields = json.loads(statement)
        signature = base64.b64decode(document["signature"], validate=True)
        pems = "".join(document["certificates"]).encode("ascii")
        certificates = tuple(load_certificates(pems, source))
        return Checkpoint(
            int(fields["entries"]),
            str(fields["head"]),
            parse_time(fields["at"]),
            str(fields["root_sha256"]),
            statement,
            signature,
            certificates,
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InputError(
            f"{source} is not a privca audit checkpoint: {exc}",
            "give a file written by `privca audit checkpoint`",
        ) from exc


def check_signed(
    data: bytes,
    signature: bytes,
    roots: Sequence[x509.Certificate],
    at: dt.datetime,
) -> tuple[x509.Certificate, ...]:
    """Check a detached CMS signature over `data` by an audit certificate that chains to
    one of `roots` and was valid at `at`; returns its path up to the root (left out): the
    audit certificate, then the issuing CA that certified it (none in a single-tier CA).

    Raises:
        CheckFailed: the signature or the chain does not hold.
    """
    carried = certificates_of(signature)
    # A SignedData keeps its certificates as a DER SET, sorted by their bytes: the signer
    # is the end-entity certificate among them whose key made the signature.
    signers = [c for c in carried if not _is_ca(c)]
    if not signers:
        raise CheckFailed("the signature carries no signer certificate")
    failure: CheckFailed | None = None
    for signer in signers:
        try:
            check_detached(data, signature, signer)
            break
        except CheckFailed as exc:
            failure = exc
    else:
        raise failure or CheckFailed("the signature does not match the signed bytes")
    _check_audit_signer(signer)
    return _check_chain_to_roots(signer, [c for c in carried if c is not signer], roots, at)


def _check_audit_signer(certificate: x509.Certificate) -> None:
    """Only an audit-signer certificate speaks for the log: any other certificate of this
    CA (a TLS leaf whose key sits on a web server) must not be able to sign a checkpoint
    or an export. The same usage `openssl cms -verify` demands (S/MIME signing)."""
    try:
        usages = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        key_usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        usages, key_usage = None, None
    wanted = list(profiles.AUDIT_SIGNER.extended_key_usages)
    if (
        usages is None
        or key_usage is None
        or list(usages) != wanted
        or not (key_usage.digital_signature and key_usage.content_commitment)
    ):
        raise CheckFailed(
            f"the signer '{certificate.subject.rfc4514_string()}' is not an audit signer",
            "checkpoints and exports are signed by the CA's audit key (profile audit-signer)",
        )


def _check_chain_to_roots(
    leaf: x509.Certificate,
    intermediates: Iterable[x509.Certificate],
    roots: Sequence[x509.Certificate],
    at: dt.datetime,
) -> tuple[x509.Certificate, ...]:
    pool = list(intermediates) + list(roots)
    trusted = {r.public_bytes(Encoding.DER) for r in roots}
    current = leaf
    path: list[x509.Certificate] = []
    for _depth in range(4):
        if current.public_bytes(Encoding.DER) in trusted:
            return tuple(path)
        path.append(current)
        if not current.not_valid_before_utc - BACKDATE <= at <= current.not_valid_after_utc:
            raise CheckFailed(
                f"certificate '{current.subject.rfc4514_string()}' was not valid at "
                f"{format_time(at)}"
            )
        issuer = next(
            (c for c in pool if c.subject == current.issuer and is_signed_by(current, c)), None
        )
        if issuer is None:
            break
        if leaf is not current and not _is_ca(current):
            break
        current = issuer
    raise CheckFailed(
        "the audit certificate does not chain to this CA's root",
        "the signature was made by another CA's key, or the root given is not ours",
    )


# Reasons that make a CA's key suspect: whoever holds it can certify an audit key and sign
# a checkpoint or an export with any time in it, before the revocation included.
COMPROMISE_REASONS = frozenset({"keyCompromise", "caCompromise"})


@dataclass(frozen=True)
class IssuerRevocation:
    """What a verifier knows of one issuing CA's revocation: the log's or the store's
    (`issuer revoke`), or its root's CRL (verified against the root)."""

    reason: str
    at: dt.datetime


@dataclass(frozen=True)
class RevokedSigner:
    """A checkpoint's or an export's signature made under a revoked issuing CA."""

    ca_serial: str  # hex
    revocation: IssuerRevocation
    signed_at: dt.datetime  # the time the document claims

    @property
    def compromised(self) -> bool:
        """Its key is suspect: the document's time and content prove nothing."""
        return self.revocation.reason in COMPROMISE_REASONS

    @property
    def too_late(self) -> bool:
        """Signed (as it claims) after a revocation whose key is not suspect."""
        return not self.compromised and self.signed_at > self.revocation.at

    def problem(self, what: str, remedy: str) -> str:
        revoked = (
            f"issuing CA {self.ca_serial}, revoked for {self.revocation.reason} on "
            f"{self.revocation.at:%Y-%m-%dT%H:%M:%SZ}"
        )
        if self.compromised:
            return f"{what} is signed under {revoked}: its key signs any time, so {remedy}"
        return (
            f"{what} is signed on {self.signed_at:%Y-%m-%dT%H:%M:%SZ} under {revoked}, "
            f"after its revocation; {remedy}"
        )


def revoked_signer(
    path: Sequence[x509.Certificate],
    revocations: Mapping[int, IssuerRevocation],
    signed_at: dt.datetime,
) -> RevokedSigner | None:
    """The revoked issuing CA a signature's path (check_signed's) runs through, if any;
    `revocations` by the CA certificate's serial (random 127 bits: one CA's)."""
    for certificate in path[1:]:
        found = revocations.get(certificate.serial_number)
        if found is not None:
            return RevokedSigner(f"{certificate.serial_number:x}", found, signed_at)
    return None


def crl_revocations(
    data: bytes, roots: Sequence[x509.Certificate], source: str
) -> dict[int, IssuerRevocation]:
    """The revocations a root's CRL (PEM or DER) lists, once one of `roots` issued it.

    Raises:
        InputError: not a CRL, or not one of `roots`'.
    """
    try:
        crl = load_crl(data)
    except ValueError as exc:
        raise InputError(
            f"{source} is not a CRL", "give the root's CRL (crl/root.crl in the CA home)"
        ) from exc
    if not any(is_crl_of(crl, root) for root in roots):
        raise InputError(
            f"{source} is not a CRL of the root given",
            "give the CRL of the root the export chains to (crl/root.crl in the CA home)",
        )
    return {e.serial_number: IssuerRevocation(reason_of(e), e.revocation_date_utc) for e in crl}


def _is_ca(certificate: x509.Certificate) -> bool:
    try:
        return bool(certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


# Exports -------------------------------------------------------------------------------


def entry_document(entry: AuditEntry) -> dict[str, Any]:
    return {**entry.document(), "hash": entry.hash}


def build_export(
    entries: Sequence[AuditEntry],
    certificates: Mapping[str, bytes],
    *,
    since: dt.datetime,
    at: dt.datetime,
    head: tuple[int, str],
    signer: AuditSigner,
) -> bytes:
    """The export's bytes: canonical JSON, so the signature covers one exact encoding."""
    document = {
        "format": EXPORT_FORMAT,
        "exported_at": format_time(at),
        "since": format_time(since),
        "head": {"entries": head[0], "hash": head[1]},
        "entries": [entry_document(e) for e in entries],
        "certificates": {
            serial: base64.b64encode(der).decode("ascii")
            for serial, der in sorted(certificates.items())
        },
        "audit_certificate": pem_certificate(signer.certificate).decode("ascii"),
        "chain": pem_certificates(list(signer.chain)).decode("ascii"),
    }
    return canonical_json(document).encode("ascii") + b"\n"


@dataclass(frozen=True)
class ExportSummary:
    entries: int
    certificates: int
    since: str
    first_seq: int | None
    last_seq: int | None
    signer: str


def check_export(
    data: bytes,
    signature: bytes,
    roots: Sequence[x509.Certificate],
    source: str,
    revocations: Mapping[int, IssuerRevocation] | None = None,
) -> ExportSummary:
    """Check an export: its signature (not under an issuing CA that `revocations`, by
    serial, says was compromised, nor made after its revocation), each entry's hash and
    link to the one before, and each certificate against the fingerprint its entry
    recorded.

    Raises:
        CheckFailed: naming the first thing that does not hold.
        InputError: not an export.
    """
    try:
        document = json.loads(data)
        if document.get("format") != EXPORT_FORMAT:
            raise ValueError(f"format is not {EXPORT_FORMAT}")
        exported_at = parse_time(document["exported_at"])
        raw_entries = list(document["entries"])
        certificates = {
            str(k): base64.b64decode(v, validate=True)
            for k, v in dict(document["certificates"]).items()
        }
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InputError(
            f"{source} is not a privca audit export: {exc}",
            "give a file written by `privca audit export`",
        ) from exc
    path = check_signed(data, signature, roots, exported_at)
    revoked = revoked_signer(path, revocations or {}, exported_at)
    if revoked is not None and (revoked.compromised or revoked.too_late):
        raise CheckFailed(
            revoked.problem("the export", "export it again under the current issuing CA"),
            "privca audit export --since ... (where the CA is)",
        )
    previous: str | None = None
    fingerprints: dict[str, str] = {}
    first: int | None = None
    last: int | None = None
    for raw in raw_entries:
        claimed = raw.get("hash")
        body = {k: v for k, v in raw.items() if k != "hash"}
        seq = body.get("seq")
        if entry_hash(body) != claimed:
            raise CheckFailed(f"entry {seq} of the export does not match its hash")
        if previous is not None and body.get("prev") != previous:
            raise CheckFailed(f"entry {seq} of the export does not follow the one before it")
        previous = str(claimed)
        first = seq if first is None else first
        last = seq
        fingerprint = (body.get("detail") or {}).get("fingerprint")
        if body.get("serial") and fingerprint:
            fingerprints[str(body["serial"])] = str(fingerprint)
    for serial, der in sorted(certificates.items()):
        if fingerprints.get(serial) != der_fingerprint(der):
            raise CheckFailed(
                f"certificate {serial} in the export does not match the fingerprint its entry "
                "recorded"
            )
    return ExportSummary(
        len(raw_entries),
        len(certificates),
        str(document.get("since")),
        first,
        last,
        path[0].subject.rfc4514_string(),
    )


def read_roots_file(path: Path) -> list[x509.Certificate]:
    from privca.home import read_input_file

    return load_certificates(read_input_file(path, "root certificate file"), str(path))


__all__ = [
    "AUDIT_KEY_TYPE",
    "CHECKPOINT_FORMAT",
    "COMPROMISE_REASONS",
    "EXPORT_FORMAT",
    "AuditSigner",
    "Checkpoint",
    "ExportSummary",
    "IssuerRevocation",
    "build_export",
    "check_export",
    "check_signed",
    "crl_revocations",
    "entry_document",
    "establish_audit_key",
    "load_audit_signer",
    "load_checkpoint",
    "read_audit_certificate",
    "read_audit_key_ref",
    "read_roots_file",
    "revoked_signer",
    "sign_checkpoint",
]
