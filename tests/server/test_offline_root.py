"""A root whose key went offline: issuance goes on, and its published CRL is still served."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from privca.authority import CertificateAuthority
from privca.publication import crl_file_of
from tests.conftest import PASSPHRASE, Cli, openssl, write


def test_offline_root(make_ca, run_cli: Cli, live_server, tmp_path: Path) -> None:
    ca = make_ca(base_url="http://ca.corp.internal")
    home = ca.home.root
    result = run_cli(
        "crl", "--root", "--json", "--passphrase-file", str(run_cli.passphrase_file), home=home
    )
    assert result.exit_code == 0, result.stderr
    published = ca.root_crl_file.read_bytes()
    crl = x509.load_der_x509_crl(published)
    assert crl.issuer == ca.root.subject
    assert crl.next_update_utc - crl.last_update_utc == dt.timedelta(days=180)
    pem = write(tmp_path / "root-crl.pem", ca.root_crl_file.with_suffix(".pem").read_bytes())
    checked = openssl("crl", "-in", str(pem), "-noout", "-CAfile", str(ca.home.root_cert))
    assert checked.returncode == 0 and "verify OK" in checked.stdout + checked.stderr

    # The root key leaves the machine (kept on offline media).
    shutil.move(home / "private" / "root.key", tmp_path / "offline-root.key")
    offline = CertificateAuthority.open(home, PASSPHRASE)
    issued = offline.issue(["db.corp.internal"])  # the issuing CA needs no root key
    assert offline.verify(issued.certificate)[0].ok
    server = live_server(offline)
    answer = server.get("/crl/root.crl")
    assert answer.status == 200 and answer.body == published
    assert server.get("/crl/issuing.crl").status == 200  # built live, as always

    ca.root_crl_file.unlink()
    crl_file_of(ca.home, ca.root.serial_number).unlink()  # the copy under its serial
    fresh = live_server(CertificateAuthority.open(home, PASSPHRASE))
    missing = fresh.get("/crl/root.crl")
    assert missing.status == 503
    assert b"privca crl --root" in missing.body


def test_privca_crl_refreshes_the_root_crl_while_the_root_key_is_at_hand(
    make_ca, run_cli: Cli, tmp_path: Path
) -> None:
    """serve never signs the root's CRL, so `privca crl` keeps the published one fresh:
    it publishes it when missing or past half its life, if the root key is present."""
    from privca._time import utcnow

    ca = make_ca(now=utcnow() - dt.timedelta(days=120))
    home = ca.home.root
    args = ("crl", "--passphrase-file", str(run_cli.passphrase_file))
    assert ca.root_crl_file.exists()  # init published the first one
    ca.root_crl_file.unlink()
    assert run_cli(*args, home=home).exit_code == 0
    first = x509.load_der_x509_crl(ca.root_crl_file.read_bytes())
    assert first.issuer == ca.root.subject
    assert first.next_update_utc - first.last_update_utc == dt.timedelta(days=180)

    assert run_cli(*args, home=home).exit_code == 0  # fresh: left as it is
    assert x509.load_der_x509_crl(ca.root_crl_file.read_bytes()) == first

    root = next(a for a in ca.authorities() if a.role == "root")
    old = ca.crl(root, utcnow() - dt.timedelta(days=100), days=180)  # past half its life
    by_serial = crl_file_of(ca.home, root.serial)
    for published in (ca.root_crl_file, by_serial):
        write(published, old.public_bytes(Encoding.DER))
    assert run_cli(*args, home=home).exit_code == 0
    renewed = x509.load_der_x509_crl(ca.root_crl_file.read_bytes())
    assert renewed.last_update_utc > old.last_update_utc
    assert by_serial.read_bytes() == ca.root_crl_file.read_bytes()

    # Without the root key, `privca crl` still publishes the issuing CA's and leaves the
    # root's alone.
    for published in (ca.root_crl_file, by_serial):
        write(published, old.public_bytes(Encoding.DER))
    shutil.move(home / "private" / "root.key", tmp_path / "offline-root.key")
    result = run_cli(*args, home=home)
    assert result.exit_code == 0, result.stderr
    assert ca.root_crl_file.read_bytes() == old.public_bytes(Encoding.DER)
