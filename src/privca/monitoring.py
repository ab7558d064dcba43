"""Expiry tracking: what `privca check` reports and `/metrics` serves, read from the store
at the moment of asking so that every replica tells the same story."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from privca._text import printable
from privca._time import days_left, isoformat
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

    def document(self, now: dt.datetime) -> dict[str, object]:
        return {
            "kind": self.kind,
            "label": self.label,
            "serial": self.serial,
            "issuer": self.issuer,
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


def _describe(not_after: dt.datetime, now: dt.datetime) -> str:
    days = days_left(not_after, now)
    if not_after <= now:
        return f"expired {-days} days ago" if days < 0 else "expired today"
    return f"expires in {days} days ({not_after:%Y-%m-%d})"


def _cn(rfc4514: str) -> str:
    return rfc4514.removeprefix("CN=")


def collect(
    ca: CertificateAuthority, now: dt.datetime, warn: dt.timedelta, crit: dt.timedelta
) -> list[ExpiryItem]:
    """Every live certificate, the CA certificates and each CA's CRL, with a severity."""
    issuers = {a.id: a for a in ca.authorities()}
    items: list[ExpiryItem] = []
    for record in ca.inventory.find(now=now - EXPIRED_RECENTLY):
        if record.profile in SELF_RENEWING_PROFILES:
            continue
        status = record.status_at(now)
        if status == "expired" and record.superseded_by is None:
            severity, detail = "critical", _describe(record.not_after, now) + ", not renewed"
        elif status == "valid":
            severity = _severity(record.not_after, now, warn, crit)
            detail = _describe(record.not_after, now)
        else:
            continue  # revoked, superseded or expired-and-replaced: nothing to do
        issuer = issuers.get(record.issuer_id)
        items.append(
            ExpiryItem(
                "certificate",
                record.names[0] if record.names else record.subject,
                serial_hex(record.serial),
                _cn(issuer.common_name) if issuer else "",
                record.not_after,
                severity,
                detail,
            )
        )
    for authority in ca.authorities():
        if not authority.active:
            continue
        items.append(
            ExpiryItem(
                "ca",
                _cn(authority.common_name),
                serial_hex(authority.serial),
                authority.role,
                authority.not_after,
                # A CA must be replaced long before its leaves run out: twice the windows.
                _severity(authority.not_after, now, warn * 2, crit * 2),
                f"{authority.role} CA " + _describe(authority.not_after, now),
            )
        )
    for state in ca.inventory.crl_states():
        authority = issuers.get(state.issuer_id)
        if authority is None:
            continue
        left = state.next_update - now
        severity = (
            "critical"
            if left <= dt.timedelta(0)
            else ("warning" if left <= dt.timedelta(days=1) else "ok")
        )
        items.append(
            ExpiryItem(
                "crl",
                f"CRL of {_cn(authority.common_name)}",
                serial_hex(authority.serial),
                _cn(authority.common_name),
                state.next_update,
                severity,
                f"CRL #{state.number} next update "
                + ("overdue" if severity == "critical" else f"{state.next_update:%Y-%m-%d %H:%M}Z"),
            )
        )
    return items


def worst(items: Sequence[ExpiryItem]) -> str:
    return max((i.severity for i in items), key=SEVERITY_ORDER.__getitem__, default="ok")


def render_text(items: Sequence[ExpiryItem]) -> str:
    flagged = [i for i in items if i.severity != "ok"]
    lines = [f"{len(items)} item(s) checked, {len(flagged)} need attention"]
    for item in sorted(flagged, key=lambda i: (-SEVERITY_ORDER[i.severity], i.not_after)):
        lines.append(
            f"{item.severity.upper():9}{item.kind:12}{item.label} ({item.serial}): {item.detail}"
        )
    return "\n".join(lines)


def render_json(items: Sequence[ExpiryItem], now: dt.datetime) -> str:
    return json.dumps({"status": worst(items), "items": [i.document(now) for i in items]}, indent=2)


NAGIOS_CODES = {"ok": 0, "warning": 1, "critical": 2}


def render_nagios(
    items: Sequence[ExpiryItem], warn: dt.timedelta, crit: dt.timedelta
) -> tuple[str, int]:
    """One status line with perfdata after '|', and the Nagios plugin exit code."""
    state = worst(items)
    counts = {s: sum(1 for i in items if i.severity == s) for s in SEVERITY_ORDER}
    certificates = [i for i in items if i.kind == "certificate"]
    flagged = sorted(
        (i for i in items if i.severity != "ok"),
        key=lambda i: (-SEVERITY_ORDER[i.severity], i.not_after),
    )
    summary = (
        f"{len(certificates)} certificates, {counts['critical']} critical, "
        f"{counts['warning']} warning"
    )
    if flagged:
        summary += f"; first: {flagged[0].label} {flagged[0].detail}"
    perfdata = (
        f"certificates={len(certificates)};;;0 "
        f"warning={counts['warning']};;;0 "
        f"critical={counts['critical']};;;0 "
        f"warn_days={warn.days};;; crit_days={crit.days};;;"
    )
    return f"PRIVCA {state.upper()} - {summary} | {perfdata}", NAGIOS_CODES[state]


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render_prometheus(
    ca: CertificateAuthority,
    now: dt.datetime,
    window: dt.timedelta | None = None,
    authorities: Sequence[CaCertificate] | None = None,
) -> str:
    """Prometheus text exposition: aggregates for every CA (counts by profile and status,
    soonest expiry, CA and CRL expiry) and a series per certificate only for those that
    expire within `window`, so a scrape neither lists the whole inventory to whoever can
    reach it nor reads the whole table (every query is served by an index). `window`
    None lists every live certificate: for `privca check --format prometheus`, whose
    file only the operator's node exporter reads.

    Expiry is a timestamp, as x509-certificate-exporter and cert-manager export it."""
    records = list(authorities) if authorities is not None else ca.authorities()
    issuers = {a.id: a for a in records}
    out: list[str] = []

    def family(name: str, kind: str, help_text: str) -> None:
        out.append(f"# HELP {name} {help_text}")
        out.append(f"# TYPE {name} {kind}")

    def ca_labels(authority: CaCertificate) -> str:
        return (
            f'issuer="{_label(_cn(authority.common_name))}",'
            f'issuer_serial="{serial_hex(authority.serial)}"'
        )

    counts = ca.inventory.certificate_counts(now)
    family(
        "privca_certificates",
        "gauge",
        "Certificates in the inventory by issuing CA, profile and status.",
    )
    for count in counts:
        issuer = issuers.get(count.issuer_id)
        if issuer is not None:
            out.append(
                f'privca_certificates{{{ca_labels(issuer)},profile="{_label(count.profile)}",'
                f'status="{count.status}"}} {count.count}'
            )
    family(
        "privca_issuer_soonest_expiry_timestamp_seconds",
        "gauge",
        "Per CA, the expiry of its first live certificate to expire (Unix time).",
    )
    soonest = ca.inventory.soonest_expiry(list(issuers), now, SELF_RENEWING_PROFILES)
    for issuer_id, not_after in sorted(soonest.items()):
        out.append(
            f"privca_issuer_soonest_expiry_timestamp_seconds{{{ca_labels(issuers[issuer_id])}}} "
            f"{int(not_after.timestamp())}"
        )
    family("privca_ca_not_after_timestamp_seconds", "gauge", "Expiry of each CA certificate.")
    for authority in records:
        out.append(
            "privca_ca_not_after_timestamp_seconds{"
            f'serial="{serial_hex(authority.serial)}",role="{authority.role}",'
            f'name="{_label(_cn(authority.common_name))}",active="{str(authority.active).lower()}"'
            f"}} {int(authority.not_after.timestamp())}"
        )
    family(
        "privca_crl_next_update_timestamp_seconds", "gauge", "nextUpdate of each CA's latest CRL."
    )
    for state in ca.inventory.crl_states():
        crl_issuer = issuers.get(state.issuer_id)
        if crl_issuer is not None:
            out.append(
                "privca_crl_next_update_timestamp_seconds{"
                f'issuer="{_label(_cn(crl_issuer.common_name))}",'
                f'serial="{serial_hex(crl_issuer.serial)}"}} {int(state.next_update.timestamp())}'
            )
    family(
        "privca_certificate_not_after_timestamp_seconds",
        "gauge",
        "Expiry of each live certificate"
        + (f" expiring within {window.days} days" if window is not None else "")
        + " (Unix time).",
    )
    until = now + window if window is not None else None
    for record in ca.inventory.find(status="valid", expiring_before=until, now=now):
        if record.profile in SELF_RENEWING_PROFILES:
            continue
        issuer = issuers.get(record.issuer_id)
        name = record.names[0] if record.names else record.subject
        out.append(
            "privca_certificate_not_after_timestamp_seconds{"
            f'serial="{serial_hex(record.serial)}",name="{_label(printable(name, 255))}",'
            f'issuer="{_label(_cn(issuer.common_name) if issuer else "")}"'
            f"}} {int(record.not_after.timestamp())}"
        )
    by_issuer: dict[int, dict[str, int]] = {}
    for count in counts:
        if count.status in ("pending", "failed"):
            continue
        totals = by_issuer.setdefault(count.issuer_id, {"issued": 0, "revoked": 0})
        totals["issued"] += count.count
        if count.status == "revoked":
            totals["revoked"] += count.count
    for kind, help_text in (
        ("issued", "Certificates signed, per CA."),
        ("revoked", "Certificates revoked, per CA."),
    ):
        family(f"privca_certificates_{kind}_total", "counter", help_text)
        for authority in records:
            total = by_issuer.get(authority.id, {}).get(kind, 0)
            out.append(
                f'privca_certificates_{kind}_total{{issuer="{_label(_cn(authority.common_name))}"}}'
                f" {total}"
            )
    return "\n".join(out) + "\n"
