"""privca inspect: what a certificate, chain, CSR or CRL file says, as `step certificate
inspect` or `openssl x509 -text` would show it, in fewer lines. No CA home needed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from privca._text import printable
from privca.cli.options import json_option
from privca.cli.render import print_json

if TYPE_CHECKING:
    from privca.cli.main import AppContext

# A CRL of 100,000 revocations is about 4 MB.
INSPECT_LIMIT = 32 * 1024 * 1024
CRL_ENTRIES_SHOWN = 20
_TITLES = {"certificate": "Certificate", "csr": "Certificate signing request", "crl": "CRL"}


@click.command("inspect")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True, path_type=Path))
@json_option
@click.pass_obj
def inspect_command(app: AppContext, file: Path, as_json: bool) -> None:
    """Show the subject, names, validity, key, extensions and fingerprints of each
    certificate in FILE (PEM or DER; a chain shows each), or of a CSR or CRL.

    '-' reads standard input. Private keys in the file are never shown."""
    import sys

    from privca._time import utcnow
    from privca.home import read_input_file
    from privca.x509.describe import describe_objects
    from privca.x509.encoding import load_inspectable

    if str(file) == "-":
        data = sys.stdin.buffer.read(INSPECT_LIMIT + 1)
        if len(data) > INSPECT_LIMIT:
            from privca.errors import InputError

            raise InputError(f"standard input is larger than {INSPECT_LIMIT} bytes")
        source = "standard input"
    else:
        data = read_input_file(file, "file", limit=INSPECT_LIMIT)
        source = f"'{file}'"
    documents = describe_objects(load_inspectable(data, source), utcnow())
    if as_json:
        print_json(documents)
        return
    for index, document in enumerate(documents):
        if index:
            click.echo("")
        title = _TITLES[document["kind"]]
        if len(documents) > 1:
            title += f" ({index + 1} of {len(documents)})"
        click.echo(title)
        for label, value in _rows(document):
            _field(label, value)


def _field(label: str, value: Any, indent: str = "  ") -> None:
    if isinstance(value, list):
        if not value:
            return
        click.echo(f"{indent}{label + ':':22}{printable(str(value[0]))}")
        for item in value[1:]:
            click.echo(f"{indent}{'':22}{printable(str(item))}")
        return
    click.echo(f"{indent}{label + ':':22}{printable(str(value))}")


def _extension_lines(document: dict[str, Any]) -> list[str]:
    lines = []
    for extension in document["extensions"]:
        value = extension["value"]
        if isinstance(value, dict):
            value = "; ".join(
                f"{key} {', '.join(items) if items else '-'}" for key, items in value.items()
            )
        elif isinstance(value, list):
            value = ", ".join(str(item) for item in value)
        critical = " (critical)" if extension["critical"] else ""
        lines.append(f"{extension['name']}{critical}: {value}")
    return lines


Rows = list[tuple[str, Any]]


def _key(document: dict[str, Any]) -> str:
    return f"{document['key']['type']} (SPKI SHA-256 {document['key']['spki_sha256']})"


def _certificate_rows(document: dict[str, Any]) -> Rows:
    self_signed = "  (self-signed)" if document["self_signed"] else ""
    validity = f"{document['not_before']} to {document['not_after']} ({_validity(document)})"
    rows: Rows = [
        ("Subject", document["subject"] or "(empty)"),
        ("Issuer", document["issuer"] + self_signed),
        ("Serial", document["serial"]),
        ("Validity", validity),
        ("Names", document["names"] or "(no subjectAltName)"),
        ("Key", _key(document)),
        ("Signature", document["signature_algorithm"]),
        ("Extensions", _extension_lines(document)),
        ("SHA-256 fingerprint", document["fingerprints"]["sha256"]),
        ("SHA-1 fingerprint", document["fingerprints"]["sha1"]),
    ]
    if "signed_by_next" in document:
        chain = (
            "signed by the next certificate"
            if document["signed_by_next"]
            else "NOT signed by the next certificate (wrong order or a broken chain)"
        )
        rows.append(("Chain", chain))
    return rows


def _csr_rows(document: dict[str, Any]) -> Rows:
    invalid = "" if document["signature_valid"] else "  (INVALID signature)"
    return [
        ("Subject", document["subject"] or "(empty)"),
        ("Names", document["names"] or "(no subjectAltName)"),
        ("Key", _key(document)),
        ("Signature", document["signature_algorithm"] + invalid),
        ("Extensions", _extension_lines(document) or "(none requested)"),
    ]


def _crl_rows(document: dict[str, Any]) -> Rows:
    entries = document["entries"]
    shown = [
        f"{e['serial']}  {e['revoked_at']}" + (f"  {e['reason']}" if e["reason"] else "")
        for e in entries[:CRL_ENTRIES_SHOWN]
    ]
    if len(entries) > CRL_ENTRIES_SHOWN:
        shown.append(f"... and {len(entries) - CRL_ENTRIES_SHOWN} more (--json lists all)")
    out_of_date = "" if document["current"] else "  (OUT OF DATE)"
    return [
        ("Issuer", document["issuer"]),
        ("This update", document["this_update"]),
        ("Next update", (document["next_update"] or "(none)") + out_of_date),
        ("Signature", document["signature_algorithm"]),
        ("Extensions", _extension_lines(document)),
        ("Revoked", [f"{len(entries)} certificate(s)", *shown]),
    ]


_ROWS: dict[str, Callable[[dict[str, Any]], Rows]] = {
    "certificate": _certificate_rows,
    "csr": _csr_rows,
    "crl": _crl_rows,
}


def _rows(document: dict[str, Any]) -> Rows:
    return _ROWS[document["kind"]](document)


def _validity(document: dict[str, Any]) -> str:
    if document["validity"] == "expired":
        return "EXPIRED"
    if document["validity"] == "not yet valid":
        return "NOT YET VALID"
    return f"{document['days_left']} days left"
