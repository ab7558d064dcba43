"""`privca serve` works with the CA it is given: its TLS certificate names what
--server-name says (never the listen address), a constrained CA serves on 127.0.0.1, the
server and responder certificates are reused across restarts and superseded when replaced,
and a start that fails (taken port, bad settings, wrong passphrase) issues nothing.

Real `privca serve` processes on loopback; a real TLS handshake reads the served serial.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from privca._time import utcnow
from privca.authority import CertificateAuthority
from privca.server.credentials import ServeCredentials, read_credential
from privca.server.tls import ServerCertificate
from tests.conftest import PASSPHRASE, assert_user_error, write
from tests.server.conftest import free_port

CORP = ("corp.internal", "10.0.0.0/8")
SERVER_NAME = "ca.corp.internal"


@pytest.fixture
def corp_ca(make_ca) -> CertificateAuthority:
    """The README's CA: constrained to corp.internal and 10.0.0.0/8 (not 127.0.0.1)."""
    return make_ca(permitted=CORP)


@pytest.fixture
def pass_file(tmp_path: Path) -> Path:
    return write(tmp_path / "pass", PASSPHRASE + b"\n", 0o600)


def serve_argv(home: Path, port: int, pass_file: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "privca", "--home", str(home), "serve",
        "--listen", f"127.0.0.1:{port}", "--passphrase-file", str(pass_file), *extra,
    ]  # fmt: skip


def served_certificate(port: int, root: Path, name: str = SERVER_NAME) -> x509.Certificate:
    """The leaf a verifying client sees for `name` (the TLS check is the real one)."""
    context = ssl.create_default_context(cafile=str(root))
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=name) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


class Served:
    """One running `privca serve`; stopped with SIGTERM."""

    def __init__(self, ca: CertificateAuthority, pass_file: Path, *extra: str) -> None:
        self.ca = ca
        self.port = free_port()
        self.process = subprocess.Popen(
            serve_argv(ca.home.root, self.port, pass_file, *extra),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.process.kill()
                    raise AssertionError(self.process.communicate()[1].decode()) from None
                time.sleep(0.1)

    def certificate(self, name: str = SERVER_NAME) -> x509.Certificate:
        return served_certificate(self.port, self.ca.home.root_cert, name)

    def stop(self) -> str:
        self.process.send_signal(signal.SIGTERM)
        _, err = self.process.communicate(timeout=20)
        assert self.process.returncode == 0, err.decode()
        return err.decode()


@pytest.fixture
def running() -> Iterator[list[Served]]:
    started: list[Served] = []
    yield started
    for served in started:
        if served.process.poll() is None:
            served.process.kill()
            served.process.wait()


def valid_by_profile(ca: CertificateAuthority) -> Counter[str]:
    return Counter(r.profile for r in ca.inventory.find(status="valid", now=utcnow()))


def all_by_profile(ca: CertificateAuthority) -> Counter[str]:
    return Counter(r.profile for r in ca.inventory.find(now=utcnow()))


def san_values(cert: x509.Certificate) -> list[str]:
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return [str(v) for v in san.get_values_for_type(x509.DNSName)] + [
        str(v) for v in san.get_values_for_type(x509.IPAddress)
    ]


def test_a_constrained_ca_serves_on_loopback_under_its_server_name(
    corp_ca: CertificateAuthority, pass_file: Path, running: list[Served]
) -> None:
    served = Served(corp_ca, pass_file, "--server-name", SERVER_NAME)
    running.append(served)
    cert = served.certificate()
    assert san_values(cert) == [SERVER_NAME]  # not 127.0.0.1: the CA may not certify it
    # A client that connects by address is (rightly) refused: the name is what it checks.
    with pytest.raises(ssl.SSLCertVerificationError):
        served_certificate(served.port, corp_ca.home.root_cert, "127.0.0.1")
    served.stop()


def test_repeated_server_names_all_go_into_the_certificate(
    corp_ca: CertificateAuthority, pass_file: Path, running: list[Served]
) -> None:
    names = ("--server-name", SERVER_NAME, "--server-name", "10.0.0.7")
    served = Served(corp_ca, pass_file, *names, "--server-name", "CA.corp.internal")
    running.append(served)
    assert san_values(served.certificate()) == [SERVER_NAME, "10.0.0.7"]
    served.stop()


def test_five_restarts_keep_one_server_and_one_responder_certificate(
    corp_ca: CertificateAuthority, pass_file: Path, running: list[Served]
) -> None:
    serials = set()
    for _ in range(5):
        served = Served(corp_ca, pass_file, "--server-name", SERVER_NAME)
        running.append(served)
        serials.add(served.certificate().serial_number)
        served.stop()
    assert len(serials) == 1  # the same certificate every time
    assert valid_by_profile(corp_ca) == {"privca-server": 1, "ocsp-responder": 1, "audit-signer": 1}
    assert all_by_profile(corp_ca) == {"privca-server": 1, "ocsp-responder": 1, "audit-signer": 1}
    # privca's own certificates never need the operator: doctor says nothing about them.
    from privca.adopt.doctor import examine_home

    findings = examine_home(corp_ca, utcnow())
    assert not [f for f in findings if f.code.startswith("leaf-")], findings


def test_a_new_server_name_supersedes_the_old_certificate(
    corp_ca: CertificateAuthority, pass_file: Path, running: list[Served]
) -> None:
    first = Served(corp_ca, pass_file, "--server-name", SERVER_NAME)
    running.append(first)
    old = first.certificate().serial_number
    first.stop()
    second = Served(corp_ca, pass_file, "--server-name", "pki.corp.internal")
    running.append(second)
    new = second.certificate("pki.corp.internal").serial_number
    second.stop()
    assert new != old
    assert corp_ca.inventory.get(old).superseded_by == new
    assert valid_by_profile(corp_ca)["privca-server"] == 1


def test_two_servers_starting_at_once_share_one_certificate(
    corp_ca: CertificateAuthority, pass_file: Path, running: list[Served]
) -> None:
    ports = [free_port(), free_port()]
    processes = [
        subprocess.Popen(
            serve_argv(corp_ca.home.root, port, pass_file, "--server-name", SERVER_NAME),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for port in ports
    ]
    try:
        serials = set()
        for port in ports:
            deadline = time.monotonic() + 30
            while True:
                try:
                    serials.add(served_certificate(port, corp_ca.home.root_cert).serial_number)
                    break
                except OSError:
                    assert time.monotonic() < deadline
                    time.sleep(0.1)
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=20)
    assert len(serials) == 1
    assert all_by_profile(corp_ca) == {"privca-server": 1, "ocsp-responder": 1, "audit-signer": 1}


def test_a_taken_port_is_one_line_exit_3_and_issues_nothing(
    corp_ca: CertificateAuthority, pass_file: Path
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            serve_argv(corp_ca.home.root, port, pass_file, "--server-name", SERVER_NAME),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 3, result.stderr
    assert result.stderr == (
        f"privca: error: 127.0.0.1:{port} is in use\n"
        "  hint: stop what listens there, or give --listen another port\n"
    )
    assert result.stdout == ""
    assert all_by_profile(corp_ca) == {}
    assert not (corp_ca.home.private / "serve").exists()


def test_a_port_in_use_on_the_wildcard_address_counts_as_taken(
    corp_ca: CertificateAuthority, pass_file: Path
) -> None:
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            serve_argv(corp_ca.home.root, port, pass_file, "--no-tls"),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 3, result.stderr
    assert result.stderr.startswith(f"privca: error: 127.0.0.1:{port} is in use\n"), result.stderr
    assert all_by_profile(corp_ca) == {}


# extra arguments -> (exit code, fragment of the one-line error)
FAILED_STARTS: dict[str, tuple[tuple[str, ...], int, str]] = {
    "no-server-name": ((), 2, "--server-name"),
    "name-outside-policy": (("--server-name", "ca.example.com"), 2, "outside the permitted"),
    "listen-address-only": (("--server-name", "127.0.0.1"), 2, "outside the permitted"),
    "malformed-name": (("--server-name", "bad..corp.internal"), 2, "empty label"),
    "bad-acme-setting": (
        ("--server-name", SERVER_NAME, "--dns-resolver", "nowhere"),
        2,
        "ACME settings",
    ),
    "bad-http-01-port": (
        ("--server-name", SERVER_NAME, "--http-01-port", "0"),
        2,
        "not a port",
    ),
}


@pytest.mark.parametrize(
    ("extra", "code", "fragment"), FAILED_STARTS.values(), ids=list(FAILED_STARTS)
)
def test_a_failed_start_issues_nothing(
    corp_ca: CertificateAuthority,
    pass_file: Path,
    run_cli,
    extra: tuple[str, ...],
    code: int,
    fragment: str,
) -> None:
    # In process: these fail before anything listens (the subprocess tests above and below
    # cover the real process).
    listen = ("--listen", f"127.0.0.1:{free_port()}", "--passphrase-file", str(pass_file))
    result = run_cli("serve", *listen, *extra, home=corp_ca.home.root)
    assert_user_error(result, fragment, code)
    assert all_by_profile(corp_ca) == {}


def test_a_wrong_passphrase_issues_nothing(corp_ca: CertificateAuthority, tmp_path: Path) -> None:
    wrong = write(tmp_path / "wrong", b"not the passphrase\n", 0o600)
    result = subprocess.run(
        serve_argv(corp_ca.home.root, free_port(), wrong, "--server-name", SERVER_NAME),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert all_by_profile(corp_ca) == {}


# In process, with the clock passed in: reuse and replacement over a certificate's life.

DAY = dt.timedelta(days=1)


def test_reused_while_more_than_a_third_of_life_remains(corp_ca: CertificateAuthority) -> None:
    start = utcnow()
    server = ServerCertificate(corp_ca, [SERVER_NAME], days=30)
    server.obtain(start)
    first = server.serial
    server.obtain(start + 19 * DAY)  # 11 of 30 days left: more than a third
    assert server.serial == first
    server.obtain(start + 21 * DAY)  # 9 days left: replaced
    assert server.serial != first
    assert corp_ca.inventory.get(first).superseded_by == server.serial
    later = start + 21 * DAY
    assert Counter(r.profile for r in corp_ca.inventory.find(status="valid", now=later)) == {
        "privca-server": 1
    }


def test_responder_certificates_are_reused_then_superseded(
    corp_ca: CertificateAuthority,
) -> None:
    credentials = ServeCredentials(corp_ca)
    (authority,) = corp_ca.publishing_authorities()
    start = utcnow()
    first = credentials.responder(authority, days=30, now=start)
    assert credentials.responder(authority, days=30, now=start + 19 * DAY).serial == first.serial
    second = credentials.responder(authority, days=30, now=start + 21 * DAY)
    assert second.serial != first.serial
    assert corp_ca.inventory.get(first.serial).superseded_by == second.serial


def test_a_rotated_issuing_ca_gets_a_new_server_certificate(
    corp_ca: CertificateAuthority,
) -> None:
    server = ServerCertificate(corp_ca, [SERVER_NAME])
    server.obtain()
    first = server.serial
    corp_ca.rotate_issuing()
    server.obtain()
    assert server.serial != first
    kept = read_credential(server.certfile)
    assert kept is not None
    kept.certificate.verify_directly_issued_by(corp_ca.issuing)
    assert corp_ca.inventory.get(first).superseded_by == server.serial


# What makes a kept certificate unusable -> it is replaced (and superseded if still valid).
def _revoke(ca: CertificateAuthority, path: Path) -> None:
    credential = read_credential(path)
    assert credential is not None
    ca.revoke(format(credential.serial, "x"), "keyCompromise")


def _loosen(_ca: CertificateAuthority, path: Path) -> None:
    path.chmod(0o644)


def _swap_key(_ca: CertificateAuthority, path: Path) -> None:
    from privca.keys.types import KeyType
    from privca.x509.encoding import pem_private_key_unencrypted

    text = path.read_bytes()
    start = text.index(b"-----BEGIN CERTIFICATE-----")
    other = pem_private_key_unencrypted(KeyType.EC_P256.generate())
    path.write_bytes(other + text[start:])


def _truncate(_ca: CertificateAuthority, path: Path) -> None:
    path.write_bytes(path.read_bytes()[:100])


def _symlink(_ca: CertificateAuthority, path: Path) -> None:
    target = path.with_name("elsewhere.pem")
    os.replace(path, target)
    path.symlink_to(target)


SPOILERS = {
    "revoked-by-the-operator": (_revoke, "revoked"),
    "file-readable-by-others": (_loosen, "superseded"),
    "key-of-another-certificate": (_swap_key, "superseded"),
    "truncated-file": (_truncate, "valid"),
    "symlink": (_symlink, "valid"),
}


@pytest.mark.parametrize(("spoil", "old_status"), SPOILERS.values(), ids=list(SPOILERS))
def test_an_unusable_kept_certificate_is_replaced(
    corp_ca: CertificateAuthority, spoil, old_status: str
) -> None:
    server = ServerCertificate(corp_ca, [SERVER_NAME])
    server.obtain()
    first = server.serial
    spoil(corp_ca, server.certfile)
    server.obtain()
    assert server.serial != first
    assert read_credential(server.certfile) is not None
    assert (server.certfile.stat().st_mode & 0o777) == 0o600
    # The old record is superseded whenever its certificate can still be read from the
    # file; a destroyed or replaced file cannot be traced (the record expires by itself).
    assert corp_ca.inventory.get(first).status_at(utcnow()) == old_status
