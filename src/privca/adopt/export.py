"""The inventory as OpenSSL's CA database: index.txt, index.txt.attr and serial.

For tools that read one: `openssl ca -status`, `openssl ocsp -index` (a stop-gap OCSP
responder), or going back to `openssl ca` if privca is ever abandoned.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import NameOID

from privca.adopt.index import IndexEntry, format_index, format_serial
from privca.errors import EnvironmentRefused, InputError
from privca.home import atomic_write_many
from privca.store.records import CertificateRecord
from privca.store.serials import random_serial

# OpenSSL's short names in its one-line DN form (X509_NAME_oneline); others as dotted OIDs.
_SHORT_NAMES = {
    NameOID.COMMON_NAME: "CN",
    NameOID.COUNTRY_NAME: "C",
    NameOID.LOCALITY_NAME: "L",
    NameOID.STATE_OR_PROVINCE_NAME: "ST",
    NameOID.ORGANIZATION_NAME: "O",
    NameOID.ORGANIZATIONAL_UNIT_NAME: "OU",
    NameOID.EMAIL_ADDRESS: "emailAddress",
    NameOID.DOMAIN_COMPONENT: "DC",
    NameOID.USER_ID: "UID",
    NameOID.SERIAL_NUMBER: "serialNumber",
}


def oneline_subject(name: x509.Name) -> str:
    return "".join(
        f"/{_SHORT_NAMES.get(attribute.oid, attribute.oid.dotted_string)}={attribute.value!s}"
        for attribute in name
    )


def _subject_of(record: CertificateRecord) -> str:
    if record.der is not None:
        return oneline_subject(x509.load_der_x509_certificate(record.der).subject)
    # Only an RFC 4514 string is known (a revocation whose certificate was lost).
    parts = [part for part in record.subject.split(",") if part]
    return "".join("/" + part for part in reversed(parts))


def index_entries(records: Iterable[CertificateRecord], now: dt.datetime) -> list[IndexEntry]:
    entries = []
    for record in sorted(records, key=lambda r: r.serial):
        if record.status not in ("issued", "revoked"):
            continue  # pending or failed: never signed, nothing for a client to ask about
        # Revoked as CRLs and OCSP say it: written, or scheduled and due.
        revocation = record.revocation_at(now)
        expired = "E" if record.not_after <= now else "V"
        status = "R" if revocation is not None else expired
        entries.append(
            IndexEntry(
                status=status,
                expires=record.not_after,
                revoked_at=revocation.revoked_at if revocation is not None else None,
                reason=revocation.reason if revocation is not None else None,
                serial=record.serial,
                filename="unknown",
                subject=_subject_of(record),
            )
        )
    return entries


def write_openssl_index(
    records: Iterable[CertificateRecord], directory: Path, now: dt.datetime
) -> list[Path]:
    """index.txt, index.txt.attr and serial in `directory`, each written atomically."""
    entries = index_entries(records, now)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as exc:
        raise InputError(f"--out '{directory}' is not a directory") from exc
    except OSError as exc:
        raise EnvironmentRefused(f"cannot create '{directory}': {exc.strerror}") from exc
    files = [
        (directory / "index.txt", format_index(entries).encode(), 0o644),
        # privca issues many certificates for one name (renewals): let `openssl ca` too.
        (directory / "index.txt.attr", b"unique_subject = no\n", 0o644),
        # A random start, so an operator who goes on with `openssl ca` does not count 01, 02.
        (directory / "serial", format_serial(random_serial()).encode() + b"\n", 0o644),
    ]
    atomic_write_many(files)
    return [path for path, _, _ in files]
