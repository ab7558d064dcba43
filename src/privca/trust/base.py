"""What every trust store module shares: the anchor being distributed, the verbs, the results.

A store answers "is our root here?" by probing the store itself (the generated bundle, the
NSS database, the keystore), never from a record of what privca did earlier.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from privca.errors import InputError
from privca.x509.encoding import der_certificate, load_certificates, pem_certificate, serial_hex

_SLUG_UNSAFE = re.compile(r"[^a-z0-9]+")
_SLUG_MAX = 40
SLUG_PREFIX = "privca-"


def _common_name(cert: x509.Certificate) -> str:
    for attribute in (x509.NameOID.COMMON_NAME, x509.NameOID.ORGANIZATION_NAME):
        values = cert.subject.get_attributes_for_oid(attribute)
        if values:
            value = values[0].value
            return value if isinstance(value, str) else value.decode("utf-8", "replace")
    return "root"


def build_slug(cert: x509.Certificate) -> str:
    """A file-, nickname- and alias-safe name for one CA: its CN plus a serial prefix.

    The serial prefix keeps two CAs with the same CN apart, so each can be removed alone.
    """
    words = _SLUG_UNSAFE.sub("-", _common_name(cert).lower()).strip("-")
    words = words.removeprefix("privca-").removeprefix("privca")[:_SLUG_MAX].strip("-")
    serial = f"{serial_hex(cert.serial_number)}"[:8]
    return f"{SLUG_PREFIX}{words or 'root'}-{serial}"


@dataclass(frozen=True)
class TrustAnchor:
    """The CA certificate to distribute, with the names it goes by in every store."""

    certificate: x509.Certificate
    source: Path | None = None

    @property
    def pem(self) -> bytes:
        return pem_certificate(self.certificate)

    @property
    def der(self) -> bytes:
        return der_certificate(self.certificate)

    @property
    def slug(self) -> str:
        return build_slug(self.certificate)

    @property
    def names(self) -> tuple[str, str]:
        """The names a store may know this root by, in the order install tries them: the
        slug, then the slug with the full SHA-256 fingerprint, which no other root can have.
        Two roots may share a slug (same CN, serials alike in their first 8 hex digits):
        the second one installed takes the long name, so neither replaces the other (NSS
        ties nicknames to the subject, so there it is refused instead)."""
        return (self.slug, f"{self.slug}-{self.sha256.hex()}")

    @property
    def sha256(self) -> bytes:
        return self.certificate.fingerprint(hashes.SHA256())

    @property
    def sha1(self) -> bytes:
        # Windows certutil and macOS `security` identify certificates by SHA-1 hash.
        return self.certificate.fingerprint(hashes.SHA1())

    @property
    def subject(self) -> str:
        return self.certificate.subject.rfc4514_string()


def check_ca_certificate(cert: x509.Certificate, source: str) -> None:
    """Refuse a certificate that cannot act as a trust anchor for TLS servers."""
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is None or not constraints.ca:
        raise InputError(
            f"{source} ({cert.subject.rfc4514_string()}) is not a CA certificate "
            "(basicConstraints CA:TRUE is missing)",
            "pass the CA's root certificate, e.g. certs/root.crt of the CA home",
        )


def check_installable(anchor: TrustAnchor, now: dt.datetime) -> str | None:
    """Refuse to install an expired root (it validates nothing, and a store keeps it
    until someone notices); a root not valid yet is a warning, returned, since it may be
    put in place ahead of a planned start."""
    if anchor.certificate.not_valid_after_utc <= now:
        raise InputError(
            f"the root {anchor.subject} expired on "
            f"{anchor.certificate.not_valid_after_utc:%Y-%m-%d}: no client accepts a "
            "certificate under it",
            "install the CA's current root (certs/root.crt of its home); remove this one "
            "from the stores with privca trust uninstall",
        )
    if anchor.certificate.not_valid_before_utc > now:
        return (
            f"the root {anchor.subject} is not valid until "
            f"{anchor.certificate.not_valid_before_utc:%Y-%m-%d %H:%M} UTC: clients reject "
            "certificates under it until then (is this machine's clock right?)"
        )
    return None


def load_anchor(data: bytes, source: str, path: Path | None = None) -> TrustAnchor:
    """Parse exactly one CA certificate (PEM or DER) into a TrustAnchor."""
    certs = load_certificates(data, source)
    if len(certs) != 1:
        raise InputError(
            f"{source} holds {len(certs)} certificates, expected only the root",
            "pass the root certificate alone (privca's certs/root.crt)",
        )
    check_ca_certificate(certs[0], source)
    return TrustAnchor(certs[0], path)


class Scope(enum.StrEnum):
    """Whose trust store: the whole machine (needs admin) or only the current user."""

    MACHINE = "machine"
    USER = "user"


class Presence(enum.StrEnum):
    PRESENT = "present"
    ABSENT = "absent"
    NOT_HERE = "not-installed-here"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class StoreReport:
    """The answer of one probe: is the anchor in this store location, and how we know."""

    store: str
    location: str
    presence: Presence
    probe: str
    note: str | None = None

    def as_json(self) -> dict[str, str | None]:
        return {
            "store": self.store,
            "location": self.location,
            "state": self.presence.value,
            "probe": self.probe,
            "note": self.note,
        }


@dataclass(frozen=True)
class Step:
    """One change to a store: `summary` is what --dry-run prints, `apply` makes it."""

    summary: str
    apply: Callable[[], None] = field(compare=False)


class Result(enum.StrEnum):
    INSTALLED = "installed"
    ALREADY_INSTALLED = "already-installed"
    REMOVED = "removed"
    NOT_INSTALLED = "not-installed"
    SKIPPED = "skipped"
    WOULD_CHANGE = "would-change"


@dataclass(frozen=True)
class Outcome:
    """What install/uninstall did (or, under --dry-run, would do) to one store location."""

    store: str
    location: str
    result: Result
    steps: tuple[str, ...] = ()
    note: str | None = None

    def as_json(self) -> dict[str, object]:
        return {
            "store": self.store,
            "location": self.location,
            "result": self.result.value,
            "steps": list(self.steps),
            "note": self.note,
        }


def carry_out(
    store: str,
    location: str,
    steps: Sequence[Step],
    done: Result,
    *,
    dry_run: bool,
    note: str | None = None,
) -> Outcome:
    """Apply `steps` in order (or only list them under dry_run) and describe the outcome."""
    summaries = tuple(step.summary for step in steps)
    if dry_run:
        return Outcome(store, location, Result.WOULD_CHANGE, summaries, note)
    for step in steps:
        step.apply()
    return Outcome(store, location, done, summaries, note)


class TrustStore(Protocol):
    """The verbs every store offers. Locations are probed at call time, never cached."""

    @property
    def name(self) -> str:
        """The store's name on the command line (--stores system,nss,java)."""
        ...

    def available(self) -> bool:
        """Whether this kind of store exists on this machine at all."""
        ...

    def status(self, anchor: TrustAnchor) -> list[StoreReport]:
        """Where the store is looked for, and whether `anchor` is there (probed)."""
        ...

    def install(self, anchor: TrustAnchor, *, dry_run: bool = False) -> list[Outcome]:
        """Make the store trust `anchor` (or list the steps under dry_run).

        Raises:
            ToolMissing: the store's tool (certutil, keytool, update-ca-...) is absent.
            EnvironmentRefused: the tool failed or the store did not change as expected.
        """
        ...

    def uninstall(self, anchor: TrustAnchor, *, dry_run: bool = False) -> list[Outcome]:
        """Remove exactly `anchor` from the store; other CAs stay.

        Raises:
            ToolMissing: as install.
            EnvironmentRefused: as install.
        """
        ...
