"""Names from CSRs, ACME requests and imported files never reach a terminal raw: an OSC
sequence (OSC 52 writes the clipboard, OSC 8 makes links) or a bidi override in a name is
shown escaped by sign, inspect, import, list, show, doctor and the ACME listings, in text
and table form, and in error messages."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from click.testing import Result
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from privca._time import utcnow
from privca.acme.repository import AccountRow, OrderRow
from privca.authority import CertificateAuthority
from tests.conftest import Cli, write

OSC52 = "\x1b]52;c;cm0gLXJmIH4=\x07"
OSC8 = "\x1b]8;;https://evil.example/\x1b\\"
BIDI = "\u202e"
HOSTILE_DNS = f"{OSC52}evil{BIDI}.corp.internal"
RAW = ("\x1b", "\x07", BIDI, "\x9b")


def assert_clean(result: Result) -> None:
    for stream, text in (("stdout", result.stdout), ("stderr", result.stderr)):
        for raw in RAW:
            assert raw not in text, (stream, text)


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def hostile_csr(path: Path) -> Path:
    """Built with cryptography directly, so nothing validates the names on the way."""
    key = _key()
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, OSC8 + "cn")]))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName._init_without_validation(HOSTILE_DNS),
                    x509.RFC822Name(f"a{OSC52}@corp.internal"),
                ]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    return write(path, csr.public_bytes(serialization.Encoding.PEM))


def hostile_openssl_ca(root: Path, ca_common_name: str) -> tuple[Path, Path]:
    """A CA directory as the runbook leaves it, whose CA name and one service
    certificate carry terminal escapes (the previous operator's files are not trusted)."""
    now = dt.datetime.now(dt.UTC)
    ca_key = _key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ca_common_name)])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, OSC8 + "x")]))
        .issuer_name(ca_name)
        .public_key(_key().public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName._init_without_validation(HOSTILE_DNS)]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    directory = root / "old-ca"
    write(directory / "certs" / "ca.crt", ca_cert.public_bytes(serialization.Encoding.PEM))
    key_pem = ca_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    write(directory / "private" / "ca.key", key_pem, 0o400)
    (directory / "private").chmod(0o700)
    leaf_path = write(root / "services" / "evil.crt", leaf.public_bytes(serialization.Encoding.PEM))
    return directory, leaf_path


def test_csr_names_in_sign_and_inspect(home_cli: Cli, tmp_path: Path) -> None:
    csr = hostile_csr(tmp_path / "evil.csr")
    signed = home_cli("sign", str(csr), "--passphrase-file", str(home_cli.passphrase_file))
    assert signed.exit_code == 2
    assert "\\x1b]52" in signed.stderr  # shown, escaped
    assert_clean(signed)
    for extra in ([], ["--json"]):
        inspected = home_cli("inspect", str(csr), *extra)
        assert inspected.exit_code == 0, inspected.stderr
        assert_clean(inspected)
    assert "\\u202e" in home_cli("inspect", str(csr)).stdout


def test_a_hostile_ca_name_is_refused_escaped(run_cli: Cli, tmp_path: Path) -> None:
    directory, leaf = hostile_openssl_ca(tmp_path, f"Old {OSC52}CA")
    result = run_cli(
        "import", "openssl", str(directory), "--certs", str(leaf),
        "--new-passphrase-file", str(run_cli.passphrase_file),
    )  # fmt: skip
    assert result.exit_code == 2
    assert "\\x1b]52" in result.stderr
    assert_clean(result)


@pytest.fixture
def imported(run_cli: Cli, tmp_path: Path) -> tuple[Cli, Result]:
    directory, leaf = hostile_openssl_ca(tmp_path, "Old Runbook CA")
    result = run_cli(
        "import", "openssl", str(directory), "--certs", str(leaf),
        "--new-passphrase-file", str(run_cli.passphrase_file),
    )  # fmt: skip
    return run_cli, result


def test_imported_names_in_import_list_show_doctor(
    imported: tuple[Cli, Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    cli, result = imported
    assert result.exit_code == 0, result.stdout + result.stderr
    assert_clean(result)
    listed = cli("list", "--all")
    assert "\\x1b]52" in listed.stdout
    assert_clean(listed)
    serial = json.loads(cli("list", "--all", "--json").stdout)[0]["serial"]
    for command in (["show", serial], ["show", serial, "--json"], ["doctor"], ["check"]):
        shown = cli(*command)
        assert_clean(shown)
    # The same listing drawn by rich, as on a terminal: escaped, and no markup parsed.
    monkeypatch.setattr("privca.cli.render.is_terminal", lambda: True)
    table = cli("list", "--all")
    assert "evil" in table.stdout
    assert_clean(table)


def test_acme_listings(home_cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    now = utcnow()
    with CertificateAuthority.open(home_cli.home) as ca:
        store = ca.acme_repository()
        store.add_account(
            AccountRow(
                "acct1", "thumb", "{}", "valid", (f"mailto:{OSC8}a@corp.internal",), None, now
            )
        )
        store.add_order(
            OrderRow(
                "order1", "acct1", "pending", "server", (("dns", HOSTILE_DNS),),
                None, None, now + dt.timedelta(days=1), None, None, None, now,
            ),
            [],
            [],
        )  # fmt: skip
    for terminal in (False, True):
        monkeypatch.setattr("privca.cli.render.is_terminal", lambda t=terminal: t)
        for command in (["acme", "accounts", "list"], ["acme", "orders", "list"]):
            result = home_cli(*command)
            assert result.exit_code == 0, result.stderr
            assert_clean(result)
            assert "\\x1b" in result.stdout


def test_a_hostile_csr_file_name_is_escaped_in_the_warnings_of_sign(
    home_cli: Cli, tmp_path: Path
) -> None:
    """A valid CSR whose file name carries an escape sequence and a bidi override: the
    "asks for subject CN ... not copied" warning used to print the name raw."""
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "someone-else")]))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("db.corp.internal")]), critical=False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(_key(), hashes.SHA256())
    )
    path = write(tmp_path / f"db{OSC52}{BIDI}.csr", csr.public_bytes(serialization.Encoding.PEM))
    signed = home_cli(
        "sign", str(path), "--out", str(tmp_path / "out"),
        "--passphrase-file", str(home_cli.passphrase_file),
    )  # fmt: skip
    assert signed.exit_code == 0, signed.stderr
    warnings = [line for line in signed.stderr.splitlines() if "\\x1b]52" in line]
    assert any("asks for subject CN 'someone-else'" in line for line in warnings), signed.stderr
    assert any("not copied" in line and "asks for" not in line for line in warnings)
    assert "\\u202e" in signed.stderr
    assert_clean(signed)
