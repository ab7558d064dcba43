"""Expiry tracking: what `privca check` reports and `/metrics` serves, read from the store
at the moment of asking so that every replica tells the same story.

What it costs follows the window, not the inventory: counts come from SQL aggregates (the
tally on SQLite, store/tally.py), and only the certificates inside the window are read,
four values each (InventoryView.expiring). `check --format nagios` reads none of them one
by one: a grouped count and the soonest one make its line (`summarize`). `/metrics` names
at most `limit` certificates (the soonest; 50,000 series per scrape would burden
Prometheus more than privca) and counts the rest by how soon they expire
(`privca_certificates_expiring`); `MetricsCache` keeps the rendered page until the store
changes or the minute turns.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from privca._text import printable
from privca._time import days_left, isoformat
from privca.store.expiry import CRIT_PART, WARN_PART, due
from privca.store.records import CertificateCount, CrlState
from privca.store.status import CertificateStatus
from privca.x509.encoding import serial_hex
from privca.x509.profiles import SELF_RENEWING_PROFILES

if TYPE_CHECKING:
    from privca.authority import CertificateAuthority
    from privca.registry import CaCertificate
    from privca.store.expiry import ExpiringCertificate

SEVERITY_ORDER = {"ok": 0, "warning": 1, "critical": 2}
# An expired certificate nobody renewed is still news for this long; older ones are history.
EXPIRED_RECENTLY = dt.timedelta(days=30)


@dataclass(frozen=True)
class ExpiryItem:
    kind: str  # certificate | ca | crl | rollover | revocation
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
    row: ExpiringCertificate, now: dt.datetime, warn: dt.timedelta, crit: dt.timedelta
) -> str:
    """--warn and --crit, narrowed to a third and a sixth of the certificate's lifetime
    (store/expiry.py `due`, which the SQL counts follow): a 7-day certificate is a
    warning with 2d8h left, not critical all its life; from 90 days up, --warn and --crit
    decide alone."""
    left, lifetime = row.not_after - now, row.not_after - row.not_before
    if due(left, lifetime, crit, CRIT_PART):
        return "critical"
    if due(left, lifetime, warn, WARN_PART):
        return "warning"
    return "ok"


def _describe(not_after: dt.datetime, now: dt.datetime) -> str:
    days = days_left(not_after, now)
    if not_after <= now:
        return f"expired {-days} days ago" if days < 0 else "expired today"
    # date().isoformat() is %Y-%m-%d for years from 1000 on, at a fraction of strftime's cost
    return f"expires in {days} days ({not_after.date().isoformat()})"


def _certificate_item(
    row: ExpiringCertificate,
    issuer: CaCertificate | None,
    now: dt.datetime,
    warn: dt.timedelta,
    crit: dt.timedelta,
    issuer_name: str | None = None,
) -> ExpiryItem:
    """A certificate nobody renewed (InventoryView.expiring): live with its severity, or
    expired, which is critical."""
    if row.not_after <= now:
        severity, detail = "critical", _describe(row.not_after, now) + ", not renewed"
    else:
        severity = _certificate_severity(row, now, warn, crit)
        detail = _describe(row.not_after, now)
    return ExpiryItem(
        "certificate",
        row.label,
        row.serial,
        issuer.label if issuer else "",
        row.not_after,
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


def worst(items: Iterable[ExpiryItem]) -> str:
    return max((i.severity for i in items), key=SEVERITY_ORDER.__getitem__, default="ok")


def _flagged_first(items: Iterable[ExpiryItem]) -> list[ExpiryItem]:
    """What needs attention, the most severe first, then the soonest (a stable sort: on a
    tie, the order of the items)."""
    return sorted(
        (i for i in items if i.severity != "ok"),
        key=lambda i: (-SEVERITY_ORDER[i.severity], i.not_after),
    )


@dataclass(frozen=True)
class CheckSummary:
    """What `privca check --format nagios` prints: how many certificates, how many items
    (certificates, CAs, CRLs) at each severity, the worst, and the item to name first."""

    certificates: int
    critical: int
    warning: int
    state: str
    first: ExpiryItem | None


@dataclass(frozen=True)
class CheckReport:
    """What `privca check` found: every item that may need attention (certificates in
    their warning window or expired unrenewed, every active CA, every CRL) and how many
    live certificates are fine, counted in SQL rather than listed one by one."""

    items: list[ExpiryItem]
    certificates_ok: int

    @property
    def certificates(self) -> int:
        listed = sum(1 for i in self.items if i.kind == "certificate")
        return listed + self.certificates_ok

    def summary(self) -> CheckSummary:
        flagged = _flagged_first(self.items)
        return CheckSummary(
            self.certificates,
            sum(1 for i in self.items if i.severity == "critical"),
            sum(1 for i in self.items if i.severity == "warning"),
            worst(self.items),
            flagged[0] if flagged else None,
        )


def _live(ca: CertificateAuthority, now: dt.datetime) -> int:
    """Valid certificates of the profiles check watches (the tally, store/metrics.py)."""
    return sum(
        count.count
        for count in ca.inventory.certificate_counts(now)
        if count.status == CertificateStatus.VALID and count.profile not in SELF_RENEWING_PROFILES
    )


def _authority_items(
    ca: CertificateAuthority,
    issuers: dict[int, CaCertificate],
    now: dt.datetime,
    warn: dt.timedelta,
    crit: dt.timedelta,
) -> list[ExpiryItem]:
    """Every active CA certificate, then each CA's CRL."""
    items = [
        _ca_item(a, now, warn, crit, ca.registry.issuer_name_of(a))
        for a in issuers.values()
        if a.active
    ]
    for state in _watched_crl_states(ca):
        issuer = issuers.get(state.issuer_id)
        if issuer is not None:
            items.append(_crl_item(state, issuer, now))
    items += _retired_root_items(ca, now)
    items += _revoked_ca_items(ca, now)
    return items


def _watched_crl_states(ca: CertificateAuthority) -> list[CrlState]:
    """The CRLs `check` and /metrics watch: not those of a root re-issued with its key (the
    active same-key root's CRL is theirs), nor of a revoked CA whose key was destroyed
    (its CRL can no longer be renewed, by design: the root's CRL lists the CA)."""
    registry = ca.registry
    replaced = registry.replaced_roots
    watched = []
    for state in ca.inventory.crl_states():
        issuer = registry.by_id(state.issuer_id)
        if state.issuer_id in replaced or (issuer is not None and ca.key_destroyed(issuer)):
            continue
        watched.append(state)
    return watched


def _revoked_ca_items(ca: CertificateAuthority, now: dt.datetime) -> list[ExpiryItem]:
    """An unexpired revoked issuing CA that its root's published CRL does not list yet
    (critical: clients still trust it), and one whose certificates are still in use
    (warning: clients that check the root's CRL reject them)."""
    from privca.publication import root_crl_lists

    registry = ca.registry
    items = []
    for root in registry.trusted_roots:
        for entry in registry.revoked_signed_by(root, now):
            if not root_crl_lists(ca.home, root.certificate, entry.serial):
                detail = (
                    f"revoked on {entry.revoked_at:%Y-%m-%d} but the CRL of root "
                    f"{serial_hex(root.serial)} does not list it yet (run privca crl --root "
                    "where the root key is)"
                )
                items.append(_revoked_ca_item(entry, "critical", detail))
    revoked = [a for a in registry.authorities if a.revoked_at is not None and a.not_after > now]
    left = ca.inventory.valid_by_issuer([a.id for a in revoked], now, SELF_RENEWING_PROFILES)
    for entry in revoked:
        if entry.id in left:
            detail = (
                f"{left[entry.id].count} valid certificate(s) it signed, rejected by clients "
                "that check the root's CRL (renew each: privca renew NAME)"
            )
            items.append(_revoked_ca_item(entry, "warning", detail))
    return items


def _revoked_ca_item(entry: CaCertificate, severity: str, detail: str) -> ExpiryItem:
    label = f"revoked issuing CA {entry.label}"
    return ExpiryItem(
        "revocation",
        label,
        serial_hex(entry.serial),
        entry.label,
        entry.not_after,
        severity,
        detail,
    )


def _retired_root_items(ca: CertificateAuthority, now: dt.datetime) -> list[ExpiryItem]:
    """Valid certificates left under a root retired by a rollover (`--retire-old
    --force`): not expiring, yet no client that trusts only the current root accepts
    them, so a monitor warns until they are renewed (doctor's leaves-under-retired-root)."""
    from privca.rotation import left_under_retired_root

    left = left_under_retired_root(ca.registry, ca.inventory, now)
    if left is None:
        return []
    detail = (
        f"{left.count} valid certificate(s) chain only to a root retired by a rollover "
        "(renew each: privca renew NAME)"
    )
    label = "certificates under a retired root"
    return [ExpiryItem("rollover", label, "", "", left.last_expiry, "warning", detail)]


def collect(
    ca: CertificateAuthority, now: dt.datetime, warn: dt.timedelta, crit: dt.timedelta
) -> CheckReport:
    """Certificates in their warning window or expired unrenewed (read by the expiry
    index, five values each: the rows within --warn that their lifetime does not flag are
    left out in SQL), the other live ones as a count (the /metrics aggregates of
    store/metrics), the CA certificates and each CA's CRL, with a severity (read only: a
    scheduled revocation that is due counts as done)."""
    issuers = {a.id: a for a in ca.authorities()}
    names = {i: ca.registry.issuer_name_of(a) for i, a in issuers.items()}
    rows = ca.inventory.expiring(
        now,
        now + warn,
        since=now - EXPIRED_RECENTLY,
        skip_profiles=SELF_RENEWING_PROFILES,
        part=WARN_PART,
    )
    items = [
        _certificate_item(
            row, issuers.get(row.issuer_id), now, warn, crit, names.get(row.issuer_id)
        )
        for row in rows
    ]
    in_window = sum(1 for i in items if i.not_after > now)
    live = _live(ca, now)
    items += _authority_items(ca, issuers, now, warn, crit)
    return CheckReport(items, max(live - in_window, 0))


def summarize(
    ca: CertificateAuthority, now: dt.datetime, warn: dt.timedelta, crit: dt.timedelta
) -> CheckSummary:
    """`collect(...).summary()` without listing the window: the certificates are counted
    in SQL by severity, and only the first of the worst is read (the item named first,
    unless a CA or CRL item comes before it)."""
    issuers = {a.id: a for a in ca.authorities()}
    since = now - EXPIRED_RECENTLY
    expired, critical, warning = ca.inventory.severity_counts(
        now, warn, crit, since=since, skip_profiles=SELF_RENEWING_PROFILES
    )
    # The soonest critical certificate (expired ones first), else the soonest warning: a
    # short-lived certificate can be a warning and expire before a long-lived critical one.
    window, part = (crit, CRIT_PART) if expired + critical else (warn, WARN_PART)
    # A list, so the read is over (and its connection back) before anything else.
    first = (
        list(
            ca.inventory.expiring(
                now,
                now + window,
                since=since,
                skip_profiles=SELF_RENEWING_PROFILES,
                limit=1,
                part=part,
            )
        )
        if expired + critical + warning
        else []
    )
    candidates: list[ExpiryItem] = []
    for soonest in first:
        issuer = issuers.get(soonest.issuer_id)
        name = ca.registry.issuer_name_of(issuer)
        candidates.append(_certificate_item(soonest, issuer, now, warn, crit, name))
    others = _authority_items(ca, issuers, now, warn, crit)
    candidates += others
    # The worst state and the first item are among these: the certificate read is the
    # first of the worst certificates, in the order collect's listing sorts them.
    flagged = _flagged_first(candidates)
    ok = max(_live(ca, now) - critical - warning, 0)
    return CheckSummary(
        expired + critical + warning + ok,
        expired + critical + sum(1 for i in others if i.severity == "critical"),
        warning + sum(1 for i in others if i.severity == "warning"),
        worst(candidates),
        flagged[0] if flagged else None,
    )


def render_text(report: CheckReport) -> str:
    items = report.items
    flagged = [i for i in items if i.severity != "ok"]
    checked = len(items) + report.certificates_ok
    lines = [f"{checked} item(s) checked, {len(flagged)} need attention"]
    for item in _flagged_first(flagged):
        serial = f" ({item.serial})" if item.serial else ""
        lines.append(f"{item.severity.upper():9}{item.kind:12}{item.label}{serial}: {item.detail}")
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


def nagios_text(text: str, escaped: bool = False) -> str:
    """`text` for the part of a Nagios line before the perfdata: printable, one line, and
    without '|', which starts the perfdata (a certificate named 'x | critical=0' would add
    its own); escaped as printable() escapes, so the name stays readable. `escaped`: the
    text has been through printable() already."""
    return (text if escaped else printable(text)).replace("|", "\\x7c")


def render_nagios(
    report: CheckSummary | CheckReport, warn: dt.timedelta, crit: dt.timedelta
) -> tuple[str, int]:
    """One status line with perfdata after '|', and the Nagios plugin exit code."""
    summary = report.summary() if isinstance(report, CheckReport) else report
    state = summary.state
    text = (
        f"{summary.certificates} certificates, {summary.critical} critical, "
        f"{summary.warning} warning"
    )
    if summary.first is not None:
        first = f"{summary.first.label} {summary.first.detail}"
        text += f"; first: {nagios_text(first)}"
    perfdata = (
        f"certificates={summary.certificates};;;0 "
        f"warning={summary.warning};;;0 "
        f"critical={summary.critical};;;0 "
        f"warn_days={warn.days};;; crit_days={crit.days};;;"
    )
    return f"PRIVCA {state.upper()} - {text} | {perfdata}", NAGIOS_CODES[state]


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


NAME_LIMIT = 255  # characters of a certificate's name in a label value


def _name_label(name: str) -> str:
    """A certificate name as a label value: printable (it may be hostile text), cut to
    NAME_LIMIT, escaped. Printable ASCII without a backslash or quote needs none of it,
    and that is nearly every name: checked first, in C."""
    if (
        len(name) <= NAME_LIMIT
        and name.isascii()
        and name.isprintable()
        and "\\" not in name
        and '"' not in name
    ):
        return name
    return _label(printable(name, NAME_LIMIT))


def _span(span: dt.timedelta) -> str:
    """A span as a label value: 30d, 12h, 90m or 45s."""
    seconds = int(span.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


# The spans of privca_certificates_expiring, those shorter than the window, and the window.
EXPIRING_SPANS = (dt.timedelta(days=1), dt.timedelta(days=7), dt.timedelta(days=30))


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

    def expiring(
        self,
        counts: dict[tuple[int, str], list[int]],
        valid: Iterable[tuple[int, str]],
        spans: Sequence[dt.timedelta],
    ) -> None:
        """Per CA and profile, how many valid certificates expire within each span
        (cumulative, as a histogram's buckets); every profile that has valid
        certificates gets every span, zeros included, so the series stay put."""
        keys = sorted({*counts, *valid})
        samples = []
        for issuer_id, profile in keys:
            if issuer_id not in self.issuers:
                continue
            labels = f'{self.ca_labels(self.issuers[issuer_id])},profile="{_label(profile)}"'
            total = 0
            found = counts.get((issuer_id, profile), [0] * len(spans))
            for span, n in zip(spans, found, strict=True):
                total += n
                samples.append(f'{{{labels},within="{_span(span)}"}} {total}')
        self.family(
            "privca_certificates_expiring",
            "gauge",
            "Valid certificates expiring within each span from now, by issuing CA and "
            "profile (not those privca renews by itself).",
            samples,
        )

    def certificates(
        self,
        rows: Iterable[ExpiringCertificate],
        window: dt.timedelta | None,
        limit: int | None = None,
    ) -> None:
        within = f" expiring within {window.days} days" if window is not None else ""
        if limit is not None:
            within += f", the {limit} soonest"
        # Everything after the name is the same for every certificate of one CA.
        tails = {
            i: f'",issuer="{_label(a.label)}",{self.name_label(i)}}} '
            for i, a in self.issuers.items()
        }
        default_tail = f'",issuer="",{self.name_label(-1)}}} '
        self.family(
            "privca_certificate_not_after_timestamp_seconds",
            "gauge",
            f"Expiry of each live certificate{within} (Unix time).",
            (
                f'{{serial="{r.serial}",name="{_name_label(r.label)}'
                f"{tails.get(r.issuer_id, default_tail)}{int(r.not_after.timestamp())}"
                for r in rows
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
                # By serial too: a root and its cross-certificate share a subject (label).
                (f"{{{self.ca_labels(a)}}} {totals[a.id]}" for a in self.authorities),
            )


def _spans(window: dt.timedelta | None) -> list[dt.timedelta]:
    spans = [s for s in EXPIRING_SPANS if window is None or s < window]
    return [*spans, window] if window is not None else spans


def render_prometheus(
    ca: CertificateAuthority,
    now: dt.datetime,
    window: dt.timedelta | None = None,
    authorities: Sequence[CaCertificate] | None = None,
    limit: int | None = None,
) -> str:
    """Prometheus text exposition: aggregates for every CA (counts by profile and status,
    soonest expiry, CA and CRL expiry, how many expire within 1, 7 and 30 days and
    `window`) and a series per certificate only for those that expire within `window`
    (the `limit` soonest of them, when given), so a scrape neither lists the whole
    inventory to whoever can reach it nor reads the whole table (every query is served by
    an index); `privca check --format prometheus` passes its --warn and no limit.
    `window` None lists every live certificate.

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
    exposition.crl_next_update(_watched_crl_states(ca))
    spans = _spans(window)
    exposition.expiring(
        ca.inventory.expiry_counts(
            now, [now + s for s in spans], skip_profiles=SELF_RENEWING_PROFILES
        ),
        (
            (c.issuer_id, c.profile)
            for c in counts
            if c.status == CertificateStatus.VALID and c.profile not in SELF_RENEWING_PROFILES
        ),
        spans,
    )
    until = now + window if window is not None else None
    exposition.certificates(
        ca.inventory.expiring(now, until, skip_profiles=SELF_RENEWING_PROFILES, limit=limit),
        window,
        limit,
    )
    exposition.totals(counts)
    return "\n".join(exposition.lines) + "\n"


_MINUTE = 60


class MetricsCache:
    """One `/metrics` page, kept until the store changes or the minute turns, so a scrape
    in between (several Prometheus servers, a dashboard, a retry) is a memory read.

    The store's change marker is read before the page is built: a change made while it
    is built shows on the next scrape. On SQLite the marker is `PRAGMA data_version`
    (any commit moves it); on PostgreSQL the WAL insert position (any write moves it,
    also ones that change nothing here; between a commit's WAL record and its visibility
    a change can be missed for the rest of that minute). Without a marker nothing is
    kept. Time alone changes the page too (what expired, what entered the window): it is
    at most a minute behind the clock."""

    def __init__(
        self,
        ca: CertificateAuthority,
        window: dt.timedelta | None,
        limit: int | None = None,
    ) -> None:
        self._ca = ca
        self._window = window
        self._limit = limit
        self._counter = ca.inventory.change_counter()
        self._lock = threading.Lock()
        self._key: tuple[object, ...] | None = None
        self._page = ""

    def _marker(self) -> object | None:
        if self._counter is not None:
            return self._counter.value()
        return self._ca.inventory.write_position()

    def page(self, now: dt.datetime, authorities: Sequence[CaCertificate] | None = None) -> str:
        # One page built at a time: scrapers that arrive meanwhile wait and read it.
        with self._lock:
            marker = self._marker()
            shown = tuple((a.id, a.active) for a in authorities) if authorities else None
            key = (marker, int(now.timestamp()) // _MINUTE, shown)
            if marker is not None and key == self._key:
                return self._page
            self._page = render_prometheus(self._ca, now, self._window, authorities, self._limit)
            self._key = key if marker is not None else None
            return self._page

    def close(self) -> None:
        if self._counter is not None:
            self._counter.close()
