"""The monitoring of main before issue 13 made check and /metrics read the window lean
(main at 622ec5d, src/privca/monitoring.py): the oracle that
tests/test_monitoring_equivalence.py holds the new code to, record by record. Changed
since only by the rule for short-lived certificates (`_certificate_severity`), written
here on its own from the record's notBefore, and by leaving out the certificates that
rule finds fine (`collect`), as check lists only what needs attention."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from privca._text import printable
from privca._time import days_left, isoformat
from privca.store.records import CertificateCount, CertificateRecord, CrlState
from privca.store.status import CertificateStatus
from privca.x509.encoding import serial_hex
from privca.x509.profiles import SELF_RENEWING_PROFILES

if TYPE_CHECKING:
    from privca.authority import CertificateAuthority
    from privca.registry import CaCertificate

SEVERITY_ORDER = {"ok": 0, "warning": 1, "critical": 2}
# An expired certificate nobody renewed is still news for this long; older ones are history.
EXPIRED_RECENTLY = dt.timedelta(days=30)


@dataclass(frozen=True)
class ExpiryItem:
    kind: str  # certificate | ca | crl
    label: str
    serial: str
    issuer: str
    not_after: dt.datetime
    severity: str  # ok | warning | critical
    detail: str
    issuer_name: str | None = None  # the named issuer (privca issuer list), when known

    def document(self, now: dt.datetime) -> dict[str, object]:
        return {
            "kind": self.kind,
            "label": self.label,
            "serial": self.serial,
            "issuer": self.issuer,
            "issuer_name": self.issuer_name,
            "not_after": isoformat(self.not_after),
            "days_left": days_left(self.not_after, now),
            "severity": self.severity,
            "detail": self.detail,
        }


def _severity(
    not_after: dt.datetime, now: dt.datetime, warn: dt.timedelta, crit: dt.timedelta
) -> str:
    left = not_after - now
    if left <= crit:
        return "critical"
    if left <= warn:
        return "warning"
    return "ok"


def _certificate_severity(
    record: CertificateRecord, now: dt.datetime, warn: dt.timedelta, crit: dt.timedelta
) -> str:
    """Critical within min(crit, lifetime / 6), a warning within min(warn, lifetime / 3),
    edges included; compared as 6 x left <= lifetime, so no rounding of the division."""
    left, lifetime = record.not_after - now, record.not_after - record.not_before
    if left <= crit and left * 6 <= lifetime:
        return "critical"
    if left <= warn and left * 3 <= lifetime:
        return "warning"
    return "ok"


def _describe(not_after: dt.datetime, now: dt.datetime) -> str:
    days = days_left(not_after, now)
    if not_after <= now:
        return f"expired {-days} days ago" if days < 0 else "expired today"
    return f"expires in {days} days ({not_after:%Y-%m-%d})"


def _certificate_item(
    record: CertificateRecord,
    issuer: CaCertificate | None,
    now: dt.datetime,
    warn: dt.timedelta,
    crit: dt.timedelta,
    issuer_name: str | None = None,
) -> ExpiryItem | None:
    """A live certificate with its severity, or one that expired without a successor;
    None for what needs nothing (revoked, superseded, expired and replaced)."""
    status = record.status_at(now)
    if status == CertificateStatus.EXPIRED and record.superseded_by is None:
        severity, detail = "critical", _describe(record.not_after, now) + ", not renewed"
    elif status == CertificateStatus.VALID:
        severity = _certificate_severity(record, now, warn, crit)
        detail = _describe(record.not_after, now)
    else:
        return None
    return ExpiryItem(
        "certificate",
        record.names[0] if record.names else record.subject,
        serial_hex(record.serial),
        issuer.label if issuer else "",
        record.not_after,
        severity,
        detail,
        issuer_name,
    )


def _ca_item(
    authority: CaCertificate,
    now: dt.datetime,
    warn: dt.timedelta,
    crit: dt.timedelta,
    issuer_name: str | None = None,
) -> ExpiryItem:
    return ExpiryItem(
        "ca",
        authority.label,
        serial_hex(authority.serial),
        authority.role,
        authority.not_after,
        # A CA must be replaced long before its leaves run out: twice the windows.
        _severity(authority.not_after, now, warn * 2, crit * 2),
        f"{authority.role} CA " + _describe(authority.not_after, now),
        issuer_name,
    )


def _crl_item(state: CrlState, issuer: CaCertificate, now: dt.datetime) -> ExpiryItem:
    severity = _severity(state.next_update, now, dt.timedelta(days=1), dt.timedelta(0))
    return ExpiryItem(
        "crl",
        f"CRL of {issuer.label}",
        serial_hex(issuer.serial),
        issuer.label,
        state.next_update,
        severity,
        f"CRL #{state.number} next update "
        + ("overdue" if severity == "critical" else f"{state.next_update:%Y-%m-%d %H:%M}Z"),
    )


@dataclass(frozen=True)
class CheckReport:
    """What `privca check` found: every item that may need attention (certificates in the
    warning window or expired unrenewed, every active CA, every CRL) and how many live
    certificates are fine, counted in SQL rather than listed one by one."""

    items: list[ExpiryItem]
    certificates_ok: int

    @property
    def certificates(self) -> int:
        listed = sum(1 for i in self.items if i.kind == "certificate")
        return listed + self.certificates_ok


def collect(
    ca: CertificateAuthority, now: dt.datetime, warn: dt.timedelta, crit: dt.timedelta
) -> CheckReport:
    """Certificates in the warning window or expired unrenewed (read by the expiry index),
    the live ones beyond the window as a count (the /metrics aggregates of store/metrics),
    the CA certificates and each CA's CRL, with a severity (read only: a scheduled
    revocation that is due counts as done)."""
    issuers = {a.id: a for a in ca.authorities()}
    items: list[ExpiryItem] = []
    window = (now - EXPIRED_RECENTLY, now + warn)
    for record in ca.inventory.find(expiring_between=window, now=now, with_der=False):
        if record.profile not in SELF_RENEWING_PROFILES:
            issuer = issuers.get(record.issuer_id)
            name = ca.registry.issuer_name_of(issuer)
            item = _certificate_item(record, issuer, now, warn, crit, name)
            if item is not None and item.severity != "ok":
                items.append(item)
    live = sum(
        count.count
        for count in ca.inventory.certificate_counts(now)
        if count.status == CertificateStatus.VALID and count.profile not in SELF_RENEWING_PROFILES
    )
    in_window = sum(1 for i in items if i.kind == "certificate" and i.not_after > now)
    items += [
        _ca_item(a, now, warn, crit, ca.registry.issuer_name_of(a))
        for a in issuers.values()
        if a.active
    ]
    for state in ca.inventory.crl_states():
        issuer = issuers.get(state.issuer_id)
        if issuer is not None:
            items.append(_crl_item(state, issuer, now))
    return CheckReport(items, max(live - in_window, 0))


def worst(items: Sequence[ExpiryItem]) -> str:
    return max((i.severity for i in items), key=SEVERITY_ORDER.__getitem__, default="ok")


def render_text(report: CheckReport) -> str:
    items = report.items
    flagged = [i for i in items if i.severity != "ok"]
    checked = len(items) + report.certificates_ok
    lines = [f"{checked} item(s) checked, {len(flagged)} need attention"]
    for item in sorted(flagged, key=lambda i: (-SEVERITY_ORDER[i.severity], i.not_after)):
        lines.append(
            f"{item.severity.upper():9}{item.kind:12}{item.label} ({item.serial}): {item.detail}"
        )
    return "\n".join(lines)


def render_json(report: CheckReport, now: dt.datetime) -> str:
    """The items that may need attention one by one; the certificates beyond the warning
    window only as a count (`certificates.ok`)."""
    listed = [i for i in report.items if i.kind == "certificate"]
    document = {
        "status": worst(report.items),
        "certificates": {
            "total": report.certificates,
            "ok": report.certificates_ok,
            "warning": sum(1 for i in listed if i.severity == "warning"),
            "critical": sum(1 for i in listed if i.severity == "critical"),
        },
        "items": [i.document(now) for i in report.items],
    }
    return json.dumps(document, indent=2)


NAGIOS_CODES = {"ok": 0, "warning": 1, "critical": 2}


def render_nagios(report: CheckReport, warn: dt.timedelta, crit: dt.timedelta) -> tuple[str, int]:
    """One status line with perfdata after '|', and the Nagios plugin exit code."""
    items = report.items
    state = worst(items)
    counts = {s: sum(1 for i in items if i.severity == s) for s in SEVERITY_ORDER}
    flagged = sorted(
        (i for i in items if i.severity != "ok"),
        key=lambda i: (-SEVERITY_ORDER[i.severity], i.not_after),
    )
    summary = (
        f"{report.certificates} certificates, {counts['critical']} critical, "
        f"{counts['warning']} warning"
    )
    if flagged:
        summary += f"; first: {flagged[0].label} {flagged[0].detail}"
    perfdata = (
        f"certificates={report.certificates};;;0 "
        f"warning={counts['warning']};;;0 "
        f"critical={counts['critical']};;;0 "
        f"warn_days={warn.days};;; crit_days={crit.days};;;"
    )
    return f"PRIVCA {state.upper()} - {summary} | {perfdata}", NAGIOS_CODES[state]


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class _Exposition:
    """The lines of one Prometheus text exposition, family by family."""

    def __init__(
        self, authorities: Sequence[CaCertificate], names: dict[int, str] | None = None
    ) -> None:
        self.authorities = list(authorities)
        self.issuers = {a.id: a for a in self.authorities}
        # Each CA's named issuer (privca issuer list), "" for roots and cross-certificates.
        self.names = names or {}
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str, samples: Iterable[str]) -> None:
        self.lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
        self.lines += [f"{name}{sample}" for sample in samples]

    def issuer_label(self, issuer_id: int) -> str:
        issuer = self.issuers.get(issuer_id)
        return _label(issuer.label) if issuer else ""

    def name_label(self, issuer_id: int) -> str:
        return f'issuer_name="{_label(self.names.get(issuer_id, ""))}"'

    def ca_labels(self, authority: CaCertificate) -> str:
        return (
            f'issuer="{_label(authority.label)}",issuer_serial="{serial_hex(authority.serial)}",'
            + self.name_label(authority.id)
        )

    def counts(self, counts: Sequence[CertificateCount]) -> None:
        self.family(
            "privca_certificates",
            "gauge",
            "Certificates in the inventory by issuing CA, profile and status.",
            (
                f'{{{self.ca_labels(self.issuers[c.issuer_id])},profile="{_label(c.profile)}",'
                f'status="{c.status}"}} {c.count}'
                for c in counts
                if c.issuer_id in self.issuers
            ),
        )

    def soonest(self, soonest: dict[int, dt.datetime]) -> None:
        self.family(
            "privca_issuer_soonest_expiry_timestamp_seconds",
            "gauge",
            "Per CA, the expiry of its first live certificate to expire (Unix time).",
            (
                f"{{{self.ca_labels(self.issuers[issuer_id])}}} {int(not_after.timestamp())}"
                for issuer_id, not_after in sorted(soonest.items())
            ),
        )

    def ca_expiry(self) -> None:
        self.family(
            "privca_ca_not_after_timestamp_seconds",
            "gauge",
            "Expiry of each CA certificate.",
            (
                f'{{serial="{serial_hex(a.serial)}",role="{a.role}",name="{_label(a.label)}",'
                f'active="{str(a.active).lower()}"}} {int(a.not_after.timestamp())}'
                for a in self.authorities
            ),
        )

    def crl_next_update(self, states: Sequence[CrlState]) -> None:
        self.family(
            "privca_crl_next_update_timestamp_seconds",
            "gauge",
            "nextUpdate of each CA's latest CRL.",
            (
                f'{{issuer="{_label(self.issuers[s.issuer_id].label)}",'
                f'serial="{serial_hex(self.issuers[s.issuer_id].serial)}"}} '
                f"{int(s.next_update.timestamp())}"
                for s in states
                if s.issuer_id in self.issuers
            ),
        )

    def certificates(
        self, records: Iterable[CertificateRecord], window: dt.timedelta | None
    ) -> None:
        within = f" expiring within {window.days} days" if window is not None else ""
        self.family(
            "privca_certificate_not_after_timestamp_seconds",
            "gauge",
            f"Expiry of each live certificate{within} (Unix time).",
            (
                f'{{serial="{serial_hex(r.serial)}",'
                f'name="{_label(printable(r.names[0] if r.names else r.subject, 255))}",'
                f'issuer="{self.issuer_label(r.issuer_id)}",{self.name_label(r.issuer_id)}}} '
                f"{int(r.not_after.timestamp())}"
                for r in records
                if r.profile not in SELF_RENEWING_PROFILES
            ),
        )

    def totals(self, counts: Sequence[CertificateCount]) -> None:
        signed = {CertificateStatus.PENDING, CertificateStatus.FAILED}
        issued: Counter[int] = Counter()
        revoked: Counter[int] = Counter()
        for count in counts:
            if count.status not in signed:
                issued[count.issuer_id] += count.count
            if count.status == CertificateStatus.REVOKED:
                revoked[count.issuer_id] += count.count
        for kind, totals, help_text in (
            ("issued", issued, "Certificates signed, per CA."),
            ("revoked", revoked, "Certificates revoked, per CA."),
        ):
            self.family(
                f"privca_certificates_{kind}_total",
                "counter",
                help_text,
                (f"{{{self.ca_labels(a)}}} {totals[a.id]}" for a in self.authorities),
            )


def render_prometheus(
    ca: CertificateAuthority,
    now: dt.datetime,
    window: dt.timedelta | None = None,
    authorities: Sequence[CaCertificate] | None = None,
) -> str:
    """Prometheus text exposition: aggregates for every CA (counts by profile and status,
    soonest expiry, CA and CRL expiry) and a series per certificate only for those that
    expire within `window`, so a scrape neither lists the whole inventory to whoever can
    reach it nor reads the whole table (every query is served by an index); `privca check
    --format prometheus` passes its --warn. `window` None lists every live certificate.

    Expiry is a timestamp, as x509-certificate-exporter and cert-manager export it."""
    registry = ca.registry
    shown = authorities if authorities is not None else ca.authorities()
    names = {a.id: registry.issuer_name_of(a) or "" for a in shown}
    exposition = _Exposition(shown, names)
    counts = ca.inventory.certificate_counts(now)
    exposition.counts(counts)
    exposition.soonest(
        ca.inventory.soonest_expiry(list(exposition.issuers), now, SELF_RENEWING_PROFILES)
    )
    exposition.ca_expiry()
    exposition.crl_next_update(ca.inventory.crl_states())
    until = now + window if window is not None else None
    exposition.certificates(
        ca.inventory.find(
            status=CertificateStatus.VALID, expiring_before=until, now=now, with_der=False
        ),
        window,
    )
    exposition.totals(counts)
    return "\n".join(exposition.lines) + "\n"
