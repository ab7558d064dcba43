"""OpenSSL's CA database, `index.txt`: parse it (strictly, naming file and line) and write it.

One line per certificate, six tab-separated fields:

    V|R|E  expiry  revocation[,reason[,extra]]  SERIAL(hex)  filename  /DN

Times are UTCTime `YYMMDDHHMMSSZ` (GeneralizedTime `YYYYMMDDHHMMSSZ` from 2050 on), as
`openssl ca` writes them; `openssl ca -status` and `openssl ocsp -index` read the same form.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass

from privca.errors import InputError

_SERIAL = re.compile(r"^[0-9A-Fa-f]+$")
# RFC 5280 4.1.2.2: a serial is a positive integer of at most 20 octets (DER, so below
# 2^159). Anything else was taken in and then no CRL could be signed ("serial number
# should be positive", "... not be more than 159 bits": every `privca crl` exit 70).
SERIAL_BITS = 159


def serial_problem(serial: int) -> str | None:
    """Why `serial` is not one a certificate, a CRL or the store can carry, or None."""
    if serial <= 0:
        return "is not positive (RFC 5280 4.1.2.2)"
    if serial.bit_length() > SERIAL_BITS:
        return "is longer than 20 octets (RFC 5280 4.1.2.2)"
    return None


def _shown(serial: int) -> str:
    text = format_serial(serial)
    return text if len(text) <= 44 else text[:40] + "..."


# `openssl ca -crl_reason` spellings (apps/ca.c crl_reasons[]) -> privca's reason names.
# privca has no certificate hold: a hold is imported as a (permanent) revocation, which
# is what every client that checks the CRL does with it today anyway.
_READ_REASONS: dict[str, str] = {
    "unspecified": "unspecified",
    "keycompromise": "keyCompromise",
    "keytime": "keyCompromise",
    "cacompromise": "caCompromise",
    "cakeytime": "caCompromise",
    "affiliationchanged": "affiliationChanged",
    "superseded": "superseded",
    "cessationofoperation": "cessationOfOperation",
    "privilegewithdrawn": "privilegeWithdrawn",
    "certificatehold": "unspecified",
    "holdinstruction": "unspecified",
    "removefromcrl": "unspecified",
}
HOLD_REASONS = frozenset({"certificatehold", "holdinstruction", "removefromcrl"})

# privca -> openssl. OpenSSL's list has no privilegeWithdrawn and would reject the whole
# line, so it is written as unspecified (the CRL and OCSP of privca keep the real reason).
_WRITE_REASONS: dict[str, str] = {
    "keyCompromise": "keyCompromise",
    "caCompromise": "CACompromise",
    "affiliationChanged": "affiliationChanged",
    "superseded": "superseded",
    "cessationOfOperation": "cessationOfOperation",
}


@dataclass(frozen=True)
class IndexEntry:
    """One line of index.txt."""

    status: str  # V (valid), R (revoked), E (expired)
    expires: dt.datetime
    revoked_at: dt.datetime | None
    reason: str | None  # privca's reason name
    serial: int
    filename: str
    subject: str  # OpenSSL's one-line form: /CN=a/O=b
    line: int = 0
    hold: bool = False  # the line said certificateHold: imported as revoked


def parse_time(text: str) -> dt.datetime:
    """UTCTime or GeneralizedTime as OpenSSL writes them; ValueError otherwise."""
    if not text.endswith("Z") or len(text) not in (13, 15) or not text[:-1].isdigit():
        raise ValueError(text)
    if len(text) == 13:
        year = int(text[:2])
        # RFC 5280 4.1.2.5.1: YY >= 50 is 19YY, below is 20YY.
        text = ("19" if year >= 50 else "20") + text
    return dt.datetime.strptime(text, "%Y%m%d%H%M%SZ").replace(tzinfo=dt.UTC)


def format_time(value: dt.datetime) -> str:
    value = value.astimezone(dt.UTC)
    if 1950 <= value.year < 2050:
        return value.strftime("%y%m%d%H%M%SZ")
    return value.strftime("%Y%m%d%H%M%SZ")


def format_serial(serial: int) -> str:
    """Uppercase hex with an even number of digits, as OpenSSL's BN_bn2hex writes it."""
    text = f"{serial:X}"
    return "0" + text if len(text) % 2 else text


def parse_index(text: str, source: str) -> list[IndexEntry]:
    """Every entry, or InputError naming `source`, the line and what is wrong with it."""
    entries: list[IndexEntry] = []
    seen: dict[int, int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip() or raw.startswith("#"):
            continue
        entry = _parse_line(raw, number, source)
        if entry.serial in seen:
            raise InputError(
                f"{source} line {number}: serial {format_serial(entry.serial)} is already "
                f"on line {seen[entry.serial]}",
                "a serial identifies one certificate; remove the duplicate line",
            )
        seen[entry.serial] = number
        entries.append(entry)
    return entries


def _parse_line(raw: str, number: int, source: str) -> IndexEntry:
    where = f"{source} line {number}"
    fields = raw.rstrip("\r\n").split("\t")
    if len(fields) != 6:
        raise InputError(
            f"{where} has {len(fields)} tab-separated fields, not 6",
            "expected: status, expiry, revocation, serial, filename, subject",
        )
    status, expiry, revocation, serial, filename, subject = fields
    if status not in ("V", "R", "E"):
        raise InputError(f"{where}: status '{status}' is not V, R or E")
    try:
        expires = parse_time(expiry)
    except ValueError:
        raise InputError(f"{where}: expiry '{expiry}' is not a time like 300101000000Z") from None
    if not _SERIAL.match(serial):
        raise InputError(f"{where}: serial '{serial}' is not hexadecimal")
    problem = serial_problem(int(serial, 16))
    if problem:
        raise InputError(
            f"{where}: serial {_shown(int(serial, 16))} {problem}",
            "no CA can revoke or list it; remove the line (or fix the serial)",
        )
    revoked_at = reason = None
    hold = False
    if status == "R":
        revoked_at, reason, hold = _parse_revocation(revocation, where)
    elif revocation:
        raise InputError(f"{where}: status {status} but a revocation field '{revocation}'")
    return IndexEntry(
        status=status,
        expires=expires,
        revoked_at=revoked_at,
        reason=reason,
        serial=int(serial, 16),
        filename=filename,
        subject=subject,
        line=number,
        hold=hold,
    )


def _parse_revocation(text: str, where: str) -> tuple[dt.datetime, str, bool]:
    parts = text.split(",")
    try:
        revoked_at = parse_time(parts[0])
    except ValueError:
        raise InputError(
            f"{where}: revocation '{text}' is not a time like 260101000000Z[,reason]"
        ) from None
    if len(parts) == 1 or not parts[1]:
        return revoked_at, "unspecified", False
    key = parts[1].lower()
    if key not in _READ_REASONS:
        raise InputError(
            f"{where}: revocation reason '{parts[1]}' is not one OpenSSL writes",
            "use keyCompromise, CACompromise, affiliationChanged, superseded, "
            "cessationOfOperation, certificateHold or unspecified",
        )
    return revoked_at, _READ_REASONS[key], key in HOLD_REASONS


def format_entry(entry: IndexEntry) -> str:
    revocation = ""
    if entry.status == "R" and entry.revoked_at is not None:
        revocation = format_time(entry.revoked_at)
        written = _WRITE_REASONS.get(entry.reason or "")
        if written:
            revocation += "," + written
    return "\t".join(
        [
            entry.status,
            format_time(entry.expires),
            revocation,
            format_serial(entry.serial),
            entry.filename or "unknown",
            entry.subject,
        ]
    )


def format_index(entries: Iterable[IndexEntry]) -> str:
    return "".join(format_entry(entry) + "\n" for entry in entries)
