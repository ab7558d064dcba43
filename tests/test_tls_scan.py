"""privca scan speaks STARTTLS (PostgreSQL, SMTP, IMAP, LDAP, MySQL) as `openssl s_client
-starttls` does: each loopback test server is first proven right by openssl itself, then
privca scan must read the same chain from it; refusals, slow and chatty services end in
one clear line within the timeout."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from privca.authority import CertificateAuthority, IssuedCertificate
from privca.errors import InputError
from privca.tls_scan import STARTTLS_PROTOCOLS, fetch_chain, starttls_for
from privca.x509.encoding import pem_private_key_unencrypted, serial_hex
from tests.conftest import Cli, require_tool
from tests.starttls_servers import PROTOCOLS, serve_starttls
from tests.tls_server import serve_tls

NAME = "svc.corp.internal"


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[CertificateAuthority, IssuedCertificate]:
    from tests.conftest import PASSPHRASE

    home = tmp_path_factory.mktemp("scan") / "ca"
    ca = CertificateAuthority.init(home, "Scan Test CA", passphrase=PASSPHRASE)
    yield ca, ca.issue([NAME])
    ca.close()


def _serve(served, protocol: str, tmp: Path, behaviour: str = "ok"):
    _ca, issued = served
    key = pem_private_key_unencrypted(issued.private_key)
    return serve_starttls(protocol, issued.chain_pem(), key, tmp, behaviour)


def s_client(protocol: str, port: int, root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            require_tool("openssl"), "s_client", "-starttls", protocol,
            "-connect", f"127.0.0.1:{port}", "-servername", NAME,
            "-CAfile", str(root), "-verify_return_error", "-verify_hostname", NAME,
        ],
        input="",
        capture_output=True,
        text=True,
        timeout=30,
    )  # fmt: skip


def scan(run_cli: Cli, home: Path, port: int, *args: str) -> tuple[int, dict]:
    result = run_cli("scan", f"127.0.0.1:{port}", "--name", NAME, "--json", *args, home=home)
    (document,) = json.loads(result.output)
    return result.exit_code, document


def test_the_protocol_lists_agree() -> None:
    assert set(STARTTLS_PROTOCOLS) == set(PROTOCOLS)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_openssl_proves_the_test_server_then_scan_reads_the_same_chain(
    served, run_cli: Cli, tmp_path: Path, protocol: str
) -> None:
    ca, issued = served
    with _serve(served, protocol, tmp_path) as port:
        judge = s_client(protocol, port, ca.home.root_cert)
        assert judge.returncode == 0, judge.stdout + judge.stderr
        assert "Verify return code: 0 (ok)" in judge.stdout
        code, document = scan(run_cli, ca.home.root, port, "--starttls", protocol)
    assert code == 0, document
    assert document["ok"] and document["chain_complete"] and document["name_matches"]
    assert document["starttls"] == protocol
    assert document["serial"] == serial_hex(issued.serial)
    assert document["status"] == "valid"


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_refusal_is_no_tls_as_openssl_also_finds(
    served, run_cli: Cli, tmp_path: Path, protocol: str
) -> None:
    ca, _ = served
    with _serve(served, protocol, tmp_path, "refuse") as port:
        judge = s_client(protocol, port, ca.home.root_cert)
        assert judge.returncode != 0  # the refusing server really refuses
        result = run_cli(
            "scan", f"127.0.0.1:{port}", "--starttls", protocol, "--name", NAME, home=ca.home.root
        )
    assert result.exit_code == 1
    (line,) = result.output.splitlines()
    assert line.startswith(f"127.0.0.1:{port} ({protocol} STARTTLS): NO TLS ("), line


@pytest.mark.parametrize(
    ("protocol", "behaviour"),
    [("smtp", "drip"), ("imap", "drip"), ("mysql", "drip"), ("postgres", "drip"),
     ("smtp", "flood"), ("imap", "flood"), ("mysql", "flood")],
    ids=lambda value: value,
)  # fmt: skip
def test_slow_or_chatty_services_end_within_the_timeout(
    served, tmp_path: Path, protocol: str, behaviour: str
) -> None:
    with _serve(served, protocol, tmp_path, behaviour) as port:
        started = time.monotonic()
        result = fetch_chain(f"127.0.0.1:{port}", NAME, 1.0, protocol)
        elapsed = time.monotonic() - started
    assert result.error and not result.chain
    assert elapsed < 2.0, elapsed


@pytest.mark.parametrize("protocol", ["smtp", "imap", "postgres", "ldap", "mysql"])
def test_plaintext_after_the_go_ahead_is_refused(served, tmp_path: Path, protocol: str) -> None:
    # A byte sent between "go ahead" and the handshake would be read as TLS, or injected
    # into the session (CVE-2021-23214 for PostgreSQL): refuse it.
    with _serve(served, protocol, tmp_path, "inject") as port:
        result = fetch_chain(f"127.0.0.1:{port}", NAME, 5.0, protocol)
    assert not result.chain
    assert result.failure in ("no-tls", "tls"), result


def test_a_plain_tls_server_is_not_mistaken_for_postgres(served, tmp_path: Path) -> None:
    _ca, issued = served
    key = pem_private_key_unencrypted(issued.private_key)
    with serve_tls(issued.chain_pem(), key, tmp_path) as port:
        result = fetch_chain(f"127.0.0.1:{port}", NAME, 5.0, "postgres")
        direct = fetch_chain(f"127.0.0.1:{port}", NAME, 5.0, "none")
    # The TLS server takes the SSLRequest for a broken record and hangs up.
    assert result.failure == "no-tls" and "postgres" in result.error.lower()
    assert direct.chain and direct.starttls is None


# port, --starttls -> protocol spoken first
CHOICES = {
    "postgres-port": (5432, None, "postgres"),
    "smtp-port": (25, None, "smtp"),
    "submission-port": (587, None, "smtp"),
    "imap-port": (143, None, "imap"),
    "ldap-port": (389, None, "ldap"),
    "mysql-port": (3306, None, "mysql"),
    "https-port": (443, None, None),
    "other-port": (8443, None, None),
    "forced": (8443, "postgres", "postgres"),
    "forced-none": (5432, "none", None),
}


@pytest.mark.parametrize(("port", "forced", "expected"), CHOICES.values(), ids=list(CHOICES))
def test_protocol_from_the_port_unless_forced(port: int, forced, expected) -> None:
    assert starttls_for(port, forced) == expected


def test_an_unknown_protocol_is_an_input_error() -> None:
    with pytest.raises(InputError):
        starttls_for(25, "pop3")
