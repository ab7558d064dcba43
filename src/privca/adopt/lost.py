"""`privca import FILE...|--from-scan`: certificates our CAs signed that the inventory
lacks (the period a restore from an older backup lost), described as adoption describes
an old CA's certificates, for the authority to check and record (import_lost)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from cryptography import x509

from privca.adopt.plan import certificate_names, certificate_profile
from privca.errors import InputError
from privca.home import read_input_file
from privca.issuance import public_key_sha256
from privca.store.records import ImportedRow
from privca.x509.encoding import der_certificate, load_certificates, serial_hex

Found = tuple[x509.Certificate, ImportedRow]


def lost_row(certificate: x509.Certificate, source: str) -> Found:
    try:
        names, profile = certificate_names(certificate), certificate_profile(certificate)
    except ValueError as exc:  # cryptography parses extensions lazily
        raise InputError(
            f"certificate '{source}' (serial {serial_hex(certificate.serial_number)}) has "
            f"malformed extensions: {exc}"
        ) from exc
    row = ImportedRow(
        serial=certificate.serial_number,
        status="issued",
        profile=profile,
        names=names,
        subject=certificate.subject.rfc4514_string(),
        not_before=certificate.not_valid_before_utc,
        not_after=certificate.not_valid_after_utc,
        public_key_sha256=public_key_sha256(certificate.public_key()),
        der=der_certificate(certificate),
        source=source,
    )
    return certificate, row


def read_lost(paths: Sequence[Path]) -> list[Found]:
    """The first certificate of each file (a leaf, its chain after it is ours already)."""
    found: list[Found] = []
    for path in paths:
        certificates = load_certificates(read_input_file(path, "certificate file"), f"'{path}'")
        found.append(lost_row(certificates[0], str(path)))
    return found


def from_scan(chains: Iterable[tuple[str, Sequence[x509.Certificate]]]) -> list[Found]:
    """The leaf each scanned service served (target, chain), for import_lost to judge."""
    return [lost_row(chain[0], f"scan of {target}") for target, chain in chains if chain]


__all__ = ["from_scan", "lost_row", "read_lost"]
