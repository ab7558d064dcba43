"""Findings: weaknesses a hand-built CA (or any privca home) carries, each with a fix.

Checked against what clients actually do (OpenSSL 3.0 `verify -x509_strict`, which Python
3.13+ turns on by default as VERIFY_X509_STRICT): strict verification checks the extensions
of *every* CA certificate in the path, the trust anchor included, so a root without
keyUsage breaks strict clients even under a new, well-formed issuing CA. Only a root
certificate that carries keyUsage fixes it: re-issued from the same key and subject (old
and new certificates keep verifying) or a new root.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ed448, ed25519, rsa

from privca._time import days_left
from privca.adopt.index import format_serial
from privca.adopt.plan import AdoptionPlan
from privca.store.expiry import CRIT_PART, WARN_PART, due
from privca.store.status import CertificateStatus
from privca.x509.encoding import serial_hex

if TYPE_CHECKING:
    from privca.authority import CertificateAuthority

SEVERITIES = ("info", "warning", "critical")
LEAF_WARN = dt.timedelta(days=30)
LEAF_CRIT = dt.timedelta(days=7)
CA_WARN = dt.timedelta(days=180)
CA_CRIT = dt.timedelta(days=30)
# A root rollover should end well before its old root does: from then on, clients that
# trust only the old root reject everything, cross-certificate or not.
ROLLOVER_WARN = dt.timedelta(days=30)
EXAMPLES = 5
# Fewer bits than this cannot hold the 64 bits of entropy CA/B Forum rules ask for.
MIN_SERIAL_BITS = 64


_STRICT_FIX = (
    "run `privca rotate root --same-key`: it re-issues the root from the same key and "
    "subject with critical basicConstraints and keyUsage keyCertSign,cRLSign; every "
    "existing certificate keeps verifying, and strict clients accept the chain once they "
    "trust the new root.crt (privca trust install). `privca rotate issuing` alone does not "
    "help: strict clients check the root itself."
)


@dataclass(frozen=True)
class Finding:
    severity: str  # info | warning | critical
    code: str
    message: str
    fix: str

    def document(self) -> dict[str, str]:
        return asdict(self)


@dataclass(frozen=True)
class Leaf:
    """An issued certificate as doctor sees it."""

    certificate: x509.Certificate
    names: tuple[str, ...]
    live: bool  # neither expired nor revoked
    # Renewed already: its expiry is not news (check leaves it out too), its flaws are.
    superseded: bool = False

    @property
    def label(self) -> str:
        shown = ", ".join(self.names[:2]) or self.certificate.subject.rfc4514_string() or "-"
        return f"{serial_hex(self.certificate.serial_number)} ({shown})"


def has_problems(findings: Iterable[Finding]) -> bool:
    return any(f.severity != "info" for f in findings)


def ordered(findings: Iterable[Finding]) -> list[Finding]:
    return sorted(findings, key=lambda f: -SEVERITIES.index(f.severity))


def _examples(leaves: Sequence[Leaf]) -> str:
    shown = ", ".join(leaf.label for leaf in leaves[:EXAMPLES])
    return shown + (f" and {len(leaves) - EXAMPLES} more" if len(leaves) > EXAMPLES else "")


def _extension(cert: x509.Certificate, kind: type) -> Any:
    try:
        return cert.extensions.get_extension_for_class(kind).value
    except (x509.ExtensionNotFound, ValueError):
        return None


def _is_critical(cert: x509.Certificate, kind: type) -> bool:
    try:
        return cert.extensions.get_extension_for_class(kind).critical
    except (x509.ExtensionNotFound, ValueError):
        return False


def _weak_hash(cert: x509.Certificate) -> str | None:
    """The name of a broken signature hash (SHA-1, MD5), else None."""
    try:
        algorithm = cert.signature_hash_algorithm
    except Exception:  # an algorithm cryptography does not know is no better
        return None
    return algorithm.name if isinstance(algorithm, hashes.SHA1 | hashes.MD5) else None


def _weak_key(cert: x509.Certificate) -> str | None:
    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < 2048:
        return f"RSA-{key.key_size}"
    if isinstance(key, dsa.DSAPublicKey):
        return f"DSA-{key.key_size}"
    return None


# CA certificates --------------------------------------------------------------------------


def _basic_constraints(cert: x509.Certificate, what: str, role: str) -> list[Finding]:
    constraints = _extension(cert, x509.BasicConstraints)
    if constraints is None or not constraints.ca:
        return [
            Finding(
                "critical",
                "ca-not-ca",
                f"{what} has no basicConstraints CA:TRUE; clients may refuse to chain to it",
                "issue a new root (privca init) and move services to it",
            )
        ]
    if not _is_critical(cert, x509.BasicConstraints):
        return [
            Finding(
                "warning",
                "ca-basic-constraints-not-critical",
                f"{what} has basicConstraints not marked critical (easy-rsa 3.1 does this): "
                "`openssl verify -x509_strict` and Python 3.13+ clients (VERIFY_X509_STRICT "
                "is on by default) reject every chain under it",
                _STRICT_FIX if role == "root" else "privca rotate issuing",
            )
        ]
    return []


def _key_usage(cert: x509.Certificate, what: str, role: str) -> list[Finding]:
    usage = _extension(cert, x509.KeyUsage)
    if usage is None:
        return [
            Finding(
                "warning",
                "ca-no-key-usage",
                f"{what} has no keyUsage extension: `openssl verify -x509_strict` and "
                "Python 3.13+ clients (VERIFY_X509_STRICT is on by default) reject every "
                "chain under it",
                _STRICT_FIX if role == "root" else "privca rotate issuing",
            )
        ]
    if not usage.key_cert_sign:
        return [
            Finding(
                "critical",
                "ca-key-usage-no-certsign",
                f"{what} has keyUsage without keyCertSign: certificates it signs are invalid",
                "issue a new root (privca init) and re-issue the certificates under it",
            )
        ]
    if not usage.crl_sign:
        return [
            Finding(
                "warning",
                "ca-key-usage-no-crlsign",
                f"{what} has keyUsage without cRLSign: clients reject the CRLs it signs",
                "move revocation to an issuing CA: privca rotate issuing",
            )
        ]
    return []


def _algorithms(cert: x509.Certificate, what: str, role: str) -> list[Finding]:
    findings: list[Finding] = []
    algorithm = _weak_hash(cert)
    if algorithm is not None:
        findings.append(
            Finding(
                "warning" if role == "root" else "critical",
                "ca-weak-signature",
                f"{what} is signed with {algorithm}",
                "re-issue it with SHA-256 and the same key (privca rotate root --same-key for "
                "a root) and redistribute it",
            )
        )
    if isinstance(cert.public_key(), ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        fix = (
            "privca rotate issuing --key-type ec-p256"
            if role != "root"
            else "privca rotate root --new-key --key-type ec-p384"
        )
        findings.append(
            Finding(
                "warning",
                "ca-eddsa-key",
                f"{what} has an EdDSA key: browsers, NSS and the WebPKI rules `privca verify` "
                "follows refuse the chains it signs (OpenSSL, Go and Java accept them)",
                f"unless every client is known to accept EdDSA: {fix}",
            )
        )
    weak = _weak_key(cert)
    if weak:
        findings.append(
            Finding(
                "critical",
                "ca-weak-key",
                f"{what} has a {weak} key, below the 2048-bit minimum",
                "make a new CA (privca init) and re-issue everything under it",
            )
        )
    return findings


def _expiry(cert: x509.Certificate, what: str, role: str, now: dt.datetime) -> list[Finding]:
    not_after = cert.not_valid_after_utc
    left = not_after - now
    if left <= dt.timedelta(0):
        return [
            Finding(
                "critical",
                "ca-expired",
                f"{what} expired on {not_after:%Y-%m-%d}",
                "make a new CA and distribute its root"
                if role == "root"
                else "privca rotate issuing",
            )
        ]
    if left <= CA_WARN:
        return [
            Finding(
                "critical" if left <= CA_CRIT else "warning",
                "ca-expiring",
                f"{what} expires on {not_after:%Y-%m-%d} ({days_left(not_after, now)} days)",
                "make a new root now and distribute it before the old one expires"
                if role == "root"
                else "privca rotate issuing",
            )
        ]
    return []


def examine_authority(cert: x509.Certificate, role: str, now: dt.datetime) -> list[Finding]:
    what = f"{role} CA '{cert.subject.rfc4514_string()}'"
    findings = [
        *_basic_constraints(cert, what, role),
        *_key_usage(cert, what, role),
        *_algorithms(cert, what, role),
        *_expiry(cert, what, role, now),
    ]
    if role == "root" and _extension(cert, x509.NameConstraints) is None:
        findings.append(
            Finding(
                "info",
                "ca-unconstrained",
                f"{what} has no name constraints: its key can sign any name",
                'set [policy] permitted = ["corp.internal", ...] in privca.toml, then '
                "`privca rotate issuing`: the new issuing CA carries the constraints",
            )
        )
    return findings


def examine_constraints(chain: Sequence[x509.Certificate], what: str) -> list[Finding]:
    """Name constraints that bind some name types and leave others open: a CA permitted
    only `corp.internal` still lets its key sign any IP address, email address or URI."""
    from privca.x509.constraints import coverage

    constraints = [_extension(cert, x509.NameConstraints) for cert in chain]
    found = coverage(constraints)
    if not found.open_types:
        return []
    subtrees = sorted(
        {
            str(g.value)
            for nc in constraints
            if nc is not None
            for g in nc.permitted_subtrees or ()
            if isinstance(g, x509.DNSName | x509.IPAddress)
        }
    )
    suggestion = ", ".join(f'"{s}"' for s in subtrees) or '"corp.internal", "10.0.0.0/8"'
    return [
        Finding(
            "warning",
            "ca-constraints-open",
            f"the name constraints of {what} leave {', '.join(found.open_types)} names "
            "unconstrained: a stolen CA key can sign any such name and clients accept it",
            f"set [policy] permitted = [{suggestion}] in privca.toml (the domains and "
            "networks this CA may certify), then run `privca rotate issuing`: the new "
            "issuing CA's constraints cover DNS, IP, email and URI names, so everything "
            "it signs is bound on every type",
        )
    ]


# issued certificates ----------------------------------------------------------------------


def _leaves_that_are_cas(live: Sequence[Leaf]) -> list[Finding]:
    findings: list[Finding] = []
    for leaf in live:
        constraints = _extension(leaf.certificate, x509.BasicConstraints)
        if constraints is not None and constraints.ca:
            findings.append(
                Finding(
                    "critical",
                    "leaf-is-ca",
                    f"certificate {leaf.label} has basicConstraints CA:TRUE (copied from its "
                    "CSR by -copy_extensions copyall): its holder can issue certificates "
                    "your clients trust",
                    f"privca renew {serial_hex(leaf.certificate.serial_number)} "
                    "--revoke-old, then privca crl (privca copies names only)",
                )
            )
    return findings


def _expiring(leaf: Leaf, now: dt.datetime, window: dt.timedelta, part: int) -> bool:
    """Not renewed and within `window` of its expiry, or within `part` of its lifetime if
    that is shorter: check's rule (store/expiry.py `due`), so doctor does not call every
    7-day certificate critical either."""
    certificate = leaf.certificate
    not_after = certificate.not_valid_after_utc
    lifetime = not_after - certificate.not_valid_before_utc
    return not leaf.superseded and due(not_after - now, lifetime, window, part)


# (severity, code, which live leaves, what they have, the fix)
_LEAF_RULES: tuple[tuple[str, str, Callable[[Leaf, dt.datetime], bool], str, str], ...] = (
    (
        "critical",
        "leaf-weak-key",
        lambda leaf, _now: _weak_key(leaf.certificate) is not None,
        "valid certificate(s) have keys below 2048 bits",
        "privca renew SERIAL (a new key is generated)",
    ),
    (
        "critical",
        "leaf-weak-signature",
        lambda leaf, _now: _weak_hash(leaf.certificate) is not None,
        "valid certificate(s) are signed with SHA-1 or MD5, which clients reject",
        "privca renew SERIAL (privca signs with SHA-256 or better)",
    ),
    (
        "warning",
        "leaf-no-san",
        lambda leaf, _now: _extension(leaf.certificate, x509.SubjectAlternativeName) is None,
        "valid certificate(s) have no subjectAltName; browsers, Go and Python's ssl "
        "ignore the CN and reject them for host names",
        "privca renew SERIAL (privca puts the names in the SAN)",
    ),
    (
        "critical",
        "leaf-expiring",
        lambda leaf, now: _expiring(leaf, now, LEAF_CRIT, CRIT_PART),
        f"valid certificate(s) expire within {LEAF_CRIT.days} days (or a sixth of their "
        "lifetime, if shorter)",
        "privca renew SERIAL now, and deploy the new files",
    ),
    (
        "warning",
        "leaf-expiring",
        lambda leaf, now: (
            _expiring(leaf, now, LEAF_WARN, WARN_PART)
            and not _expiring(leaf, now, LEAF_CRIT, CRIT_PART)
        ),
        f"valid certificate(s) expire within {LEAF_WARN.days} days (or a third of their "
        "lifetime, if shorter)",
        "privca renew SERIAL; privca check alerts before expiry from now on",
    ),
)


def examine_leaves(leaves: Sequence[Leaf], now: dt.datetime) -> list[Finding]:
    live = [leaf for leaf in leaves if leaf.live]
    findings = _leaves_that_are_cas(live)
    for severity, code, applies, text, fix in _LEAF_RULES:
        matched = [leaf for leaf in live if applies(leaf, now)]
        if matched:
            findings.append(
                Finding(severity, code, f"{len(matched)} {text}: {_examples(matched)}", fix)
            )
    findings.extend(_examine_serials(leaves))
    return findings


def _examine_serials(leaves: Sequence[Leaf]) -> list[Finding]:
    serials = {leaf.certificate.serial_number for leaf in leaves}
    predictable = [
        leaf
        for leaf in leaves
        if leaf.certificate.serial_number.bit_length() < MIN_SERIAL_BITS
        or leaf.certificate.serial_number - 1 in serials
        or leaf.certificate.serial_number + 1 in serials
    ]
    if not predictable:
        return []
    live = [leaf for leaf in predictable if leaf.live]
    return [
        Finding(
            "warning" if live else "info",
            "sequential-serials",
            f"{len(predictable)} certificate(s) have predictable, sequential serials "
            f"(`openssl ca` with a serial file, or -CAserial counting up): "
            f"{_examples(predictable)}",
            "nothing to do at once: privca issues random 128-bit serials from now on; "
            "retire the old ones as they come up for renewal (privca renew SERIAL)",
        )
    ]


# an adoption, before and after ------------------------------------------------------------


def examine_plan(plan: AdoptionPlan, now: dt.datetime) -> list[Finding]:
    findings = examine_authority(plan.ca_certificate, "root", now)
    findings += examine_constraints([plan.ca_certificate], "the CA certificate")
    findings += examine_leaves(
        [
            Leaf(
                item.certificate,
                item.names,
                item.status == "issued" and item.certificate.not_valid_after_utc > now,
            )
            for item in plan.certificates
        ],
        now,
    )
    findings += _examine_source(plan)
    return ordered(findings)


def _examine_source(plan: AdoptionPlan) -> list[Finding]:
    findings = []
    if plan.key_mode & 0o077:
        findings.append(
            Finding(
                "critical",
                "source-key-permissions",
                f"the original CA key '{plan.key_file}' is readable by group or others "
                f"(mode {plan.key_mode:04o})",
                f"privca keeps its own copy (0400, 0700 private/); delete the original "
                f"(shred -u '{plan.key_file}') once the adoption is checked",
            )
        )
    if not plan.key_was_encrypted:
        findings.append(
            Finding(
                "warning",
                "source-key-unencrypted",
                f"the original CA key '{plan.key_file}' is not encrypted",
                f"once the adoption is checked, delete it (shred -u '{plan.key_file}') and "
                "its backups; privca's copy is encrypted unless --no-passphrase was given",
            )
        )
    if plan.service_keys:
        shown = ", ".join(str(p) for p in plan.service_keys[:EXAMPLES])
        findings.append(
            Finding(
                "warning",
                "source-service-keys",
                f"{len(plan.service_keys)} service private key(s) lie next to the CA key: {shown}",
                "copy each to its service, then delete them from the CA host; privca never "
                "stores service keys",
            )
        )
    if plan.missing:
        shown = ", ".join(
            f"line {e.line} serial {format_serial(e.serial)} {e.subject}"
            for e in plan.missing[:EXAMPLES]
        )
        findings.append(
            Finding(
                "warning",
                "index-without-certificate",
                f"{len(plan.missing)} valid index.txt entr(ies) have no certificate file and "
                f"were not imported: {shown}",
                "find the files and import again with --certs 'PATTERN', or renew those "
                "services with privca issue",
            )
        )
    if plan.holds:
        findings.append(
            Finding(
                "info",
                "hold-imported-as-revoked",
                f"{len(plan.holds)} certificate(s) on certificateHold were imported as "
                "revoked (privca has no hold): "
                + ", ".join(format_serial(s) for s in plan.holds[:EXAMPLES]),
                "issue new certificates for those services if they are still needed",
            )
        )
    return findings


def _key_file_findings(path: Path | None, role: str) -> list[Finding]:
    """A CA key file others can reach (keys on a token have no file). A root key that is
    not there is one taken offline, as the README advises once the issuing CA and the
    root's CRL are signed: worth knowing, not a fault."""
    from privca.errors import EnvironmentRefused
    from privca.home import check_key_file, check_private_directory
    from privca.registry import CaRole

    if path is None:
        return []
    if role == CaRole.ROOT and not path.exists() and not path.is_symlink():
        return [
            Finding(
                "info",
                "root-key-offline",
                f"the root key is not in the home ({path.name}): taken offline",
                "bring it back into private/ (0400) for `privca crl --root`, a new issuing "
                "CA or a rollover, then take it away again",
            )
        ]
    try:
        check_private_directory(path.parent)
        check_key_file(path)
    except EnvironmentRefused as exc:
        return [Finding("critical", "ca-key-file", exc.message, exc.hint or "fix the key file")]
    return []


def _hsm_module_findings(module: str) -> list[Finding]:
    """A PKCS#11 module others could replace: every command that signs refuses to load it
    (exit 3), and doctor, which loads no key, says so before the next one does."""
    from privca.errors import EnvironmentRefused
    from privca.keys.pkcs11 import check_module

    if not module:
        return []
    try:
        check_module(module, "hsm_module")
    except EnvironmentRefused as exc:
        return [Finding("critical", "hsm-module", exc.message, exc.hint or "fix the module")]
    return []


def _settings_findings(ca: CertificateAuthority) -> list[Finding]:
    findings: list[Finding] = []
    if not ca.settings.encrypted_keys:
        findings.append(
            Finding(
                "warning",
                "ca-key-unencrypted",
                f"the CA keys in '{ca.home.private}' are stored unencrypted",
                "anyone who copies private/ can issue: keep private/ on an encrypted volume, "
                "or move the keys to an HSM",
            )
        )
    findings += _hsm_module_findings(ca.settings.hsm_module)
    if ca.settings.single_tier:
        findings.append(
            Finding(
                "info",
                "single-tier",
                "the root signs services directly, so its key must stay online",
                "`privca rotate issuing` moves to two tiers under the same root; no client "
                "trust store changes",
            )
        )
    return findings


def _home_leaves(ca: CertificateAuthority, now: dt.datetime) -> list[Leaf]:
    from privca.x509.profiles import SELF_RENEWING_PROFILES

    leaves = []
    for record in ca.inventory.find(now=now):
        # privca's own server and OCSP responder certificates: privca issues and replaces
        # them itself (no SAN on a responder is by design), so there is nothing to fix.
        if record.der is None or record.profile in SELF_RENEWING_PROFILES:
            continue
        status = record.status_at(now)
        leaves.append(
            Leaf(
                x509.load_der_x509_certificate(record.der),
                record.names,
                status in (CertificateStatus.VALID, CertificateStatus.SUPERSEDED),
                superseded=status == CertificateStatus.SUPERSEDED,
            )
        )
    return leaves


def _rollover_findings(ca: CertificateAuthority, now: dt.datetime) -> list[Finding]:
    """A root rollover left open past, or within ROLLOVER_WARN of, its old root's end."""
    old = ca.registry.previous_root
    if old is None:
        return []
    status = ca.rollover_status(now)
    what = f"the old root '{old.label}' of the root rollover under way"
    retire = "privca rotate root --retire-old"
    if old.not_after <= now:
        return [
            Finding(
                "critical",
                "rollover-open-past-old-root",
                f"{what} expired on {old.not_after:%Y-%m-%d}: clients that trust only it "
                "reject every certificate, and its cross-certificate has ended with it",
                f"end the transition: {retire}" + (" --force" if status.old_leaves else ""),
            )
        ]
    if old.not_after - now <= ROLLOVER_WARN:
        return [
            Finding(
                "warning",
                "rollover-old-root-expiring",
                f"{what} expires on {old.not_after:%Y-%m-%d} "
                f"({days_left(old.not_after, now)} days); {status.old_leaves} valid "
                "certificate(s) still chain only to it",
                "renew them (privca renew), make sure clients trust the new root "
                f"(privca trust install, privca rotate status), then {retire}",
            )
        ]
    return []


def _retired_root_findings(ca: CertificateAuthority, now: dt.datetime) -> list[Finding]:
    """Valid certificates left under a root retired by a rollover (`--retire-old
    --force`): listed as valid, yet no client that trusts only the current root takes
    them; doctor said nothing, verify said FAILED."""
    from privca.rotation import left_under_retired_root

    left = left_under_retired_root(ca.registry, ca.inventory, now)
    if left is None:
        return []
    return [
        Finding(
            "warning",
            "leaves-under-retired-root",
            f"{left.count} valid certificate(s) chain only to a root retired by a rollover: "
            "no client that trusts only the current root accepts them (the last expires on "
            f"{left.last_expiry:%Y-%m-%d})",
            "renew each (privca renew NAME); privca verify names the retired root of one",
        )
    ]


def examine_home(ca: CertificateAuthority, now: dt.datetime) -> list[Finding]:
    """Findings for an open CertificateAuthority (any privca home)."""
    from privca.registry import CROSS_ROLES

    findings: list[Finding] = []
    active = [authority for authority in ca.authorities() if authority.active]
    findings += _rollover_findings(ca, now)
    findings += _retired_root_findings(ca, now)
    for authority in active:
        if authority.role in CROSS_ROLES:
            continue  # they end with the old root: _rollover_findings says when
        findings += examine_authority(authority.certificate, authority.role, now)
        findings += _key_file_findings(ca.key_file(authority), authority.role)
    findings += examine_constraints(
        [authority.certificate for authority in active], "the active CA certificates"
    )
    findings += _settings_findings(ca)
    findings += examine_leaves(_home_leaves(ca, now), now)
    return ordered(findings)
