"""The registry: an immutable snapshot of the CA certificates of one CA home.

Each CA certificate is parsed once, when the snapshot is made, and found by id, serial,
subject key identifier, public key or role. Which CA is active, which chain a leaf needs
and which CAs publish CRLs and answer OCSP are decided here and nowhere else, so that a
second root during a rollover, cross-certificates and several named issuing CAs have one
place to go.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from enum import StrEnum

from cryptography import x509

from privca.errors import NotFound
from privca.store.records import AuthorityRecord, IssuerRecord
from privca.x509.build import authority_key_identifier, subject_key_identifier
from privca.x509.encoding import public_key_der, serial_hex
from privca.x509.verify import UntrustedRoot


class CaRole(StrEnum):
    ROOT = "root"  # self-signed: the trust anchor
    ISSUING = "issuing"  # signed by a root; signs services
    # A root rollover's new root signed by the old root (same subject and key as the new
    # root): active while the transition lasts, so clients that trust only the old root
    # still build a path to new leaves.
    CROSS = "cross"
    # Optionally, the old root signed by the new (same subject and key as the old root):
    # a client that trusts only the new root reaches the old hierarchy through it.
    REVERSE_CROSS = "reverse-cross"


# Certificates of a root key signed by another root: never the parent in a chain built
# here (chains end at a self-signed root); `cross_for` adds them where a chain needs them.
CROSS_ROLES = frozenset({CaRole.CROSS, CaRole.REVERSE_CROSS})


# `privca crl issuing`, /crl/current.crl, ...: the aliases operators use for active CAs.
ISSUING_ALIASES = ("issuing", "current")


@dataclass(frozen=True)
class CaCertificate(AuthorityRecord):
    """One CA certificate of the home: its inventory record (the fields it inherits) and
    what the registry parsed from it once."""

    certificate: x509.Certificate = field(compare=False, repr=False)
    key_identifier: bytes = field(compare=False, repr=False)
    public_key: bytes = field(compare=False, repr=False)  # SubjectPublicKeyInfo DER

    @classmethod
    def from_record(cls, record: AuthorityRecord) -> CaCertificate:
        certificate = x509.load_der_x509_certificate(record.der)
        kept = {f.name: getattr(record, f.name) for f in fields(AuthorityRecord)}
        return cls(
            **kept,
            certificate=certificate,
            key_identifier=subject_key_identifier(certificate),
            public_key=public_key_der(certificate.public_key()),
        )

    @property
    def is_self_signed(self) -> bool:
        return self.certificate.subject == self.certificate.issuer

    @property
    def label(self) -> str:
        """The common name without its `CN=` prefix, for people."""
        return self.common_name.removeprefix("CN=")


@dataclass(frozen=True)
class Registry:
    """Every CA certificate ever recorded, oldest first (records are never deleted, so
    certificates signed by a retired CA keep their chain, CRL and OCSP)."""

    authorities: tuple[CaCertificate, ...] = ()
    issuers: tuple[IssuerRecord, ...] = ()

    @classmethod
    def from_records(
        cls, records: Iterable[AuthorityRecord], issuers: Iterable[IssuerRecord] = ()
    ) -> Registry:
        return cls(tuple(CaCertificate.from_record(r) for r in records), tuple(issuers))

    # lookups ------------------------------------------------------------------------------

    def active(self, role: CaRole | str) -> CaCertificate | None:
        """The newest active CA of `role` (the one that signs now)."""
        for entry in reversed(self.authorities):
            if entry.role == role and entry.active:
                return entry
        return None

    def by_id(self, authority_id: int) -> CaCertificate | None:
        return next((a for a in self.authorities if a.id == authority_id), None)

    def by_serial(self, serial: int) -> CaCertificate | None:
        return next((a for a in self.authorities if a.serial == serial), None)

    def by_key_identifier(self, key_identifier: bytes) -> list[CaCertificate]:
        """Every certificate of one CA key (a re-issued root shares its key identifier)."""
        return [a for a in self.authorities if a.key_identifier == key_identifier]

    def by_public_key(self, public_key: bytes) -> CaCertificate | None:
        """The CA whose key this SubjectPublicKeyInfo DER is, if any."""
        return next((a for a in self.authorities if a.public_key == public_key), None)

    def select(self, name: str) -> CaCertificate | None:
        """A CA by hex serial, or by alias: `root` is the active root, `issuing` and
        `current` the default issuer's active issuing CA (the root of a single-tier CA),
        an issuer's name its active issuing CA."""
        text = name.lower().removesuffix(".crl")
        if text == CaRole.ROOT:
            return self.active(CaRole.ROOT)
        if text in ISSUING_ALIASES:
            return self._issuing_or_none(self._default_name())
        by_serial = next((a for a in self.authorities if serial_hex(a.serial) == text), None)
        if by_serial is not None:
            return by_serial
        if any(i.name == text for i in self.issuers):
            return self._issuing_or_none(text)
        return None

    # named issuers ------------------------------------------------------------------------

    def issuer(self, name: str | None = None) -> IssuerRecord:
        """The issuer called `name` (None: the default issuer).

        Raises:
            NotFound: no issuer has that name (or no issuer is the default)."""
        from privca._text import printable

        if name is None:
            found = self.default_issuer
            if found is None:
                raise NotFound("the inventory has no default issuer", "see privca issuer list")
            return found
        found = next((i for i in self.issuers if i.name == name), None)
        if found is None:
            raise NotFound(f"no issuer named '{printable(name, 63)}'", "see privca issuer list")
        return found

    @property
    def default_issuer(self) -> IssuerRecord | None:
        return next((i for i in self.issuers if i.default), None)

    def _default_name(self) -> str | None:
        default = self.default_issuer
        return default.name if default is not None else None

    def active_issuing(self, name: str | None) -> CaCertificate | None:
        """The active issuing CA certificate of issuer `name`, if it has one."""
        for entry in reversed(self.authorities):
            if (
                entry.role == CaRole.ISSUING
                and entry.active
                and entry.revoked_at is None  # also when a row was made active again by hand
                and entry.issuer == name
            ):
                return entry
        return None

    def _issuing_or_none(self, name: str | None) -> CaCertificate | None:
        found = self.active_issuing(name)
        if found is not None:
            return found
        if name is None:
            # A store without issuers (a registry built by hand): the newest issuing CA.
            return self.active(CaRole.ISSUING) or self.active(CaRole.ROOT)
        if name is not None and name == self._root_signs_for():
            return self.active(CaRole.ROOT)
        return None

    def _root_signs_for(self) -> str | None:
        """The issuer a single-tier root signs for: the oldest one that never had an
        issuing CA of its own (`main` of a home made with --single-tier)."""
        lineages = {a.issuer for a in self.authorities if a.role == CaRole.ISSUING}
        return next((i.name for i in self.issuers if i.name not in lineages), None)

    def issuing_of(self, name: str | None = None) -> CaCertificate:
        """The CA that signs now for issuer `name` (None: the default issuer): its active
        issuing CA, or the root of a single-tier CA for the default issuer.

        Raises:
            NotFound: no such issuer, or it has no active issuing CA."""
        issuer = self.issuer(name) if name is not None or self.issuers else None
        entry = self._issuing_or_none(issuer.name if issuer is not None else None)
        if entry is None:
            if not self.roots:
                raise NotFound("the inventory has no root CA", "is this a privca home?")
            shown = issuer.name if issuer is not None else "default"
            raise NotFound(
                f"issuer '{shown}' has no active issuing CA",
                f"make one: privca rotate issuing --issuer {shown}",
            )
        return entry

    def issuer_name_of(self, entry: CaCertificate | None) -> str | None:
        """The named issuer a CA certificate signs for: an issuing CA's own, the issuer a
        single-tier root signs for (see `_root_signs_for`); else None."""
        if entry is None:
            return None
        if entry.role == CaRole.ISSUING:
            return entry.issuer
        if entry.role == CaRole.ROOT:
            return self._root_signs_for()
        return None

    # the hierarchy ------------------------------------------------------------------------

    @property
    def root(self) -> CaCertificate:
        """The active root; NotFound when the inventory has none."""
        entry = self.active(CaRole.ROOT)
        if entry is None:
            raise NotFound("the inventory has no root CA", "is this a privca home?")
        return entry

    @property
    def issuing(self) -> CaCertificate:
        """The CA that signs services now for the default issuer: its active issuing CA,
        or the root of a single-tier CA."""
        return self.issuing_of(None)

    def issuer_of(self, entry: CaCertificate) -> CaCertificate | None:
        """The CA certificate that signed `entry` (None for a root): by subject and key
        identifier, preferring the active one."""
        if entry.is_self_signed:
            return None
        return self.signer_of(entry.certificate)

    def signer_of(self, certificate: x509.Certificate) -> CaCertificate | None:
        """The CA certificate of this home that signed `certificate` (a leaf or a CA): by
        subject and key identifier, preferring the active one."""
        # A cross-certificate shares the new root's subject and key identifier, but paths
        # built here end at a self-signed root; the cross-certificate is added by
        # `cross_for` where a chain must also reach the old root.
        named = [
            a
            for a in self.authorities
            if a.certificate.subject == certificate.issuer and a.role not in CROSS_ROLES
        ]
        aki = authority_key_identifier(certificate)
        candidates = [a for a in named if a.key_identifier == aki] or named
        active = [a for a in candidates if a.active]
        found = active or candidates
        return found[-1] if found else None

    def roots_signing(self, entry: CaCertificate) -> list[CaCertificate]:
        """The root certificates whose CRL must list `entry` when it is revoked: every one
        with the name and key that signed it (a root re-issued with its key too)."""
        aki = authority_key_identifier(entry.certificate)
        issuer = entry.certificate.issuer
        return [
            r for r in self.roots if r.certificate.subject == issuer and r.key_identifier == aki
        ]

    def revoked_signed_by(self, root: CaCertificate, now: dt.datetime) -> list[CaCertificate]:
        """The revoked issuing CAs, unexpired at `now`, that `root` signed: what its CRL
        must list."""
        return [
            a
            for a in self.authorities
            if a.revoked_at is not None and a.not_after > now and root in self.roots_signing(a)
        ]

    def revoked_above(self, certificate: x509.Certificate) -> list[CaCertificate]:
        """The revoked CA certificates on the path from `certificate` up to its root."""
        revoked = []
        parent = self.signer_of(certificate)
        seen: set[int] = set()
        while parent is not None and parent.id not in seen:
            seen.add(parent.id)
            if parent.revoked_at is not None:
                revoked.append(parent)
            parent = self.issuer_of(parent)
        return revoked

    def chain_of(self, entry: CaCertificate) -> tuple[x509.Certificate, ...]:
        """`entry` and the CA certificates above it, root last."""
        chain = [entry.certificate]
        parent = self.issuer_of(entry)
        while parent is not None and len(chain) < len(self.authorities) + 1:
            chain.append(parent.certificate)
            parent = self.issuer_of(parent)
        return tuple(chain)

    @property
    def chain(self) -> tuple[x509.Certificate, ...]:
        """The CA certificates above a new leaf, root last."""
        return self.chain_of(self.issuing)

    def certificates(self) -> list[x509.Certificate]:
        return [a.certificate for a in self.authorities]

    def intermediates(self) -> list[x509.Certificate]:
        """The CA certificates that are not self-signed, for path building: every issuing
        CA (retired ones too: what they signed keeps its chain), and the cross-certificates
        of a rollover under way only. Once the old root is retired its crosses have ended:
        clients are no longer given them, so a leaf of the retired hierarchy must not be
        judged valid through the reverse cross to the new root."""
        crossing = {c.id for c in self.crosses}
        return [
            a.certificate
            for a in self.authorities
            if not a.is_self_signed and (a.role not in CROSS_ROLES or a.id in crossing)
        ]

    def publishing(self, signed_leaves: Sequence[int] | frozenset[int]) -> list[CaCertificate]:
        """CAs that sign leaves, so publish CRLs and answer OCSP: all issuing CAs, or the
        root of a single-tier CA. A root that signed leaves itself (single-tier, then
        rotated; or imported) keeps publishing for them: `signed_leaves` are the ids of
        the roots that did."""
        issuing = [a for a in self.authorities if a.role == CaRole.ISSUING]
        roots = [a for a in self.authorities if a.role == CaRole.ROOT]
        if not issuing:
            return roots
        return [r for r in roots if r.id in signed_leaves] + issuing

    @property
    def roots(self) -> list[CaCertificate]:
        return [a for a in self.authorities if a.role == CaRole.ROOT]

    def same_key_roots(self, root: CaCertificate) -> list[CaCertificate]:
        """Every root certificate with `root`'s name and key, itself included (a root
        re-issued with `rotate root --same-key`): one CRL issuer, so one CRL sequence,
        published under each serial (issuing CAs name the serial of the one that was
        active when they were made)."""
        subject = root.certificate.subject
        return [
            r
            for r in self.roots
            if r.certificate.subject == subject and r.key_identifier == root.key_identifier
        ]

    @property
    def replaced_roots(self) -> frozenset[int]:
        """Roots re-issued with their own key: the active one's CRL is theirs too, so
        monitoring watches only that one's."""
        return frozenset(
            r.id
            for r in self.roots
            if not r.active and any(o.active for o in self.same_key_roots(r))
        )

    # a root rollover ----------------------------------------------------------------------

    @property
    def cross(self) -> CaCertificate | None:
        """The cross-certificate of a root rollover still under way (None otherwise)."""
        return self.active(CaRole.CROSS)

    @property
    def reverse_cross(self) -> CaCertificate | None:
        """The old root signed by the new one, when the rollover made it (`--reverse-cross`)
        and is still under way."""
        return self.active(CaRole.REVERSE_CROSS) if self.cross is not None else None

    @property
    def crosses(self) -> list[CaCertificate]:
        """The cross-certificates of a rollover under way (`export cross`, /ca/cross.pem):
        the new root signed by the old, then the reverse one if it was made."""
        return [c for c in (self.cross, self.reverse_cross) if c is not None]

    @property
    def previous_root(self) -> CaCertificate | None:
        """The old root of a rollover under way: the one that signed the cross-certificate."""
        cross = self.cross
        return self.issuer_of(cross) if cross is not None else None

    @property
    def trusted_roots(self) -> list[CaCertificate]:
        """Every root clients should trust now, oldest first: the active root, and during a
        rollover the old root as well."""
        previous = self.previous_root
        root = self.root
        if previous is None or previous.key_identifier == root.key_identifier:
            return [root]
        return [previous, root]

    def untrusted_roots(self, trusted: Sequence[x509.Certificate]) -> list[UntrustedRoot]:
        """The roots of this CA that a verification trusting only `trusted` does not, and
        why, for `privca verify` to name the one a leaf chains to: retired by a rollover
        that ended; or, left out of `trusted`, the old root of the rollover under way or
        the current root. A root with the key of a trusted one is no such root (a leaf
        under it chains to that one)."""
        trusted_keys = {public_key_der(t.public_key()) for t in trusted}
        current = self.root.public_key
        previous = self.previous_root
        found: list[UntrustedRoot] = []
        for entry in sorted(self.roots, key=lambda a: not a.active):  # the active first
            if entry.public_key in trusted_keys:
                continue
            if entry.public_key == current:
                found.append(UntrustedRoot(entry.certificate, "not-given"))
            elif previous is not None and entry.public_key == previous.public_key:
                found.append(UntrustedRoot(entry.certificate, "transition"))
            else:
                found.append(UntrustedRoot(entry.certificate, "retired"))
        return found

    @property
    def root_crl_alias(self) -> CaCertificate:
        """The root whose CRL /crl/root.crl serves. Only issuing CAs made before each root
        had its own CRL URL name it, and those are under the oldest root still trusted: so
        it is the old root's CRL while a rollover lasts, the active root's otherwise."""
        return self.trusted_roots[0]

    def cross_for(self, entry: CaCertificate) -> tuple[x509.Certificate, ...]:
        """What a chain under `entry` adds during a rollover so that clients that trust
        only the old root find a path: the cross-certificate, when `entry` is under the
        new root; nothing otherwise."""
        cross = self.cross
        if cross is None:
            return ()
        top = self.chain_of(entry)[-1]
        if subject_key_identifier(top) != cross.key_identifier:
            return ()
        return (cross.certificate,)

    def chain_for_old_clients(self) -> tuple[x509.Certificate, ...]:
        """The CA certificates above a new leaf for a client that trusts only the old root:
        the issuing CA, the cross-certificate and the old root (root last). Without a
        rollover under way, the same as `chain`."""
        previous = self.previous_root
        cross = self.cross_for(self.issuing)
        if previous is None or not cross:
            return self.chain
        return (*self.chain[:-1], *cross, previous.certificate)


__all__ = ["CROSS_ROLES", "CaCertificate", "CaRole", "Registry"]
