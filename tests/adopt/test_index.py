"""index.txt: the parser is strict and names the line; what we write OpenSSL reads."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from privca.adopt.export import index_entries
from privca.adopt.index import (
    IndexEntry,
    format_index,
    format_serial,
    format_time,
    parse_index,
    parse_time,
)
from privca.errors import InputError
from privca.store.records import CertificateRecord
from tests.adopt.conftest import Runbook
from tests.conftest import Cli, openssl, write

UTC = dt.UTC


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("491231235959Z", dt.datetime(2049, 12, 31, 23, 59, 59, tzinfo=UTC)),
        ("500101000000Z", dt.datetime(1950, 1, 1, tzinfo=UTC)),
        ("20500101000000Z", dt.datetime(2050, 1, 1, tzinfo=UTC)),
    ],
    ids=["utctime-2049", "utctime-1950", "generalized-2050"],
)
def test_times_round_trip(text: str, expected: dt.datetime) -> None:
    assert parse_time(text) == expected
    assert format_time(expected) == text


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ("V\t300101000000Z\t\t01\tunknown", "5 tab-separated fields"),
        ("X\t300101000000Z\t\t01\tunknown\t/CN=a", "status 'X'"),
        ("V\t3001010000Z\t\t01\tunknown\t/CN=a", "expiry '3001010000Z'"),
        ("V\t300101000000Z\t\t0G\tunknown\t/CN=a", "serial '0G'"),
        ("R\t300101000000Z\t\t01\tunknown\t/CN=a", "revocation ''"),
        ("R\t300101000000Z\t250101000000Z,lost\t01\tunknown\t/CN=a", "reason 'lost'"),
        ("V\t300101000000Z\t250101000000Z\t01\tunknown\t/CN=a", "status V but a revocation"),
    ],
    ids=["fields", "status", "expiry", "serial", "no-date", "reason", "valid-with-date"],
)
def test_malformed_lines_name_file_and_line(line: str, fragment: str) -> None:
    text = "V\t300101000000Z\t\t0A\tunknown\t/CN=ok\n" + line + "\n"
    with pytest.raises(InputError) as info:
        parse_index(text, "'index.txt'")
    assert "'index.txt' line 2" in info.value.message and fragment in info.value.message


def test_duplicate_serial_is_refused() -> None:
    line = "V\t300101000000Z\t\t0A\tunknown\t/CN=ok\n"
    with pytest.raises(InputError, match="already on line 1"):
        parse_index(line + "\n# comment\n" + line.replace("V", "E", 1), "'i'")


def test_reasons_and_holds() -> None:
    text = (
        "R\t300101000000Z\t250101000000Z,CACompromise,250101000000Z\t01\tunknown\t/CN=a\n"
        "R\t300101000000Z\t250101000000Z,certificateHold,1.2.840.10040.2.2\t02\tunknown\t/CN=b\n"
        "R\t300101000000Z\t250101000000Z\t03\tunknown\t/CN=c\n"
    )
    first, second, third = parse_index(text, "i")
    assert (first.reason, first.hold) == ("caCompromise", False)
    assert (second.reason, second.hold) == ("unspecified", True)
    assert third.reason == "unspecified"
    assert format_index([first]).split("\t")[2] == "250101000000Z,CACompromise"
    assert format_index([third]).split("\t")[2] == "250101000000Z"


def test_serials_are_written_as_openssl_writes_them() -> None:
    assert format_serial(1) == "01"
    assert format_serial(0xABC) == "0ABC"
    entry = IndexEntry("V", dt.datetime(2030, 1, 1, tzinfo=UTC), None, None, 0xABC, "", "/CN=a")
    assert format_index([entry]) == "V\t300101000000Z\t\t0ABC\tunknown\t/CN=a\n"


def test_export_is_what_openssl_ca_and_ocsp_read(
    run_cli: Cli, runbook: Runbook, tmp_path: Path
) -> None:
    assert run_cli(*runbook.import_args("--no-passphrase")).exit_code == 0
    docs = {d["names"][0]: d for d in json.loads(run_cli("list", "--json").stdout)}
    assert run_cli("revoke", "db.corp.internal", "--reason", "superseded").exit_code == 0
    out = tmp_path / "exported"
    result = run_cli("export", "openssl-index", "--out", str(out))
    assert result.exit_code == 0, result.stderr
    assert {p.name for p in out.iterdir()} == {"index.txt", "index.txt.attr", "serial"}
    config = write(
        tmp_path / "status.cnf",
        f"[ca]\ndefault_ca = d\n[d]\ndatabase = {out}/index.txt\nserial = {out}/serial\n",
    )
    expected = {
        "web1.corp.internal": "Valid",
        "web2.corp.internal": "Revoked",
        "db.corp.internal": "Revoked",
    }
    for name, status in expected.items():
        serial = format_serial(int(docs[name]["serial"], 16))
        answer = openssl("ca", "-config", str(config), "-status", serial)
        assert f"{serial}={status}" in answer.stdout + answer.stderr, answer.stderr
    # An OCSP responder straight from the exported index (request -> response files).
    ca, key = str(runbook.ca_cert), str(runbook.ca_dir / "private" / "ca.key")
    request, response = tmp_path / "req.der", tmp_path / "resp.der"
    db_serial = "0x" + docs["db.corp.internal"]["serial"]
    assert (
        openssl(
            "ocsp", "-issuer", ca, "-serial", db_serial, "-reqout", str(request), "-no_nonce"
        ).returncode
        == 0
    )
    responder = openssl(
        "ocsp",
        "-index",
        str(out / "index.txt"),
        "-CA",
        ca,
        "-rsigner",
        ca,
        "-rkey",
        key,
        "-reqin",
        str(request),
        "-respout",
        str(response),
    )
    assert responder.returncode == 0, responder.stderr
    answer = openssl(
        "ocsp",
        "-respin",
        str(response),
        "-CAfile",
        ca,
        "-issuer",
        ca,
        "-serial",
        db_serial,
        "-no_nonce",
    )
    assert answer.returncode == 0, answer.stderr
    assert f"{db_serial}: revoked" in answer.stdout and "superseded" in answer.stdout
    # Without --out the index goes to stdout.
    printed = run_cli("export", "openssl-index")
    assert printed.stdout == (out / "index.txt").read_text()


NOW = dt.datetime(2030, 6, 1, tzinfo=UTC)
DAY = dt.timedelta(days=1)

# (id, stored status, days to notAfter, revoked days ago, days to a scheduled revocation,
#  the index.txt entry: status, revocation date, reason) -- None: not listed
EXPORTED = [
    ("valid", "issued", 30, None, None, ("V", None, None)),
    ("expired", "issued", -1, None, None, ("E", None, None)),
    ("revoked", "revoked", 30, 2, None, ("R", NOW - 2 * DAY, "keyCompromise")),
    ("scheduled-not-due", "issued", 30, None, 1, ("V", None, None)),
    ("scheduled-due", "issued", 30, None, -1, ("R", NOW - DAY, "superseded")),
    ("pending", "pending", 30, None, None, None),
]


@pytest.mark.parametrize(
    ("stored", "days", "revoked_ago", "revoke_in", "expected"),
    [row[1:] for row in EXPORTED],
    ids=[row[0] for row in EXPORTED],
)
def test_the_exported_status_is_the_one_crls_and_ocsp_give(
    stored: str,
    days: int,
    revoked_ago: int | None,
    revoke_in: int | None,
    expected: tuple[str, dt.datetime | None, str | None] | None,
) -> None:
    """A renewal's grace that is over counts as a revocation in index.txt too (as in the
    CRL and OCSP), dated when it fell due."""
    record = CertificateRecord(
        serial=0xABC,
        issuer_id=1,
        status=stored,
        profile="server",
        names=("a.corp.internal",),
        subject="CN=a.corp.internal",
        not_before=NOW - 10 * DAY,
        not_after=NOW + days * DAY,
        public_key_sha256="00",
        der=None,  # the subject then comes from the record alone
        created_at=NOW - 10 * DAY,
        revoked_at=NOW - revoked_ago * DAY if revoked_ago is not None else None,
        revocation_reason="keyCompromise" if revoked_ago is not None else None,
        revoke_after=NOW + revoke_in * DAY if revoke_in is not None else None,
    )
    entries = index_entries([record], NOW)
    found = [(e.status, e.revoked_at, e.reason) for e in entries]
    assert found == ([] if expected is None else [expected])
