"""PostgreSQL 15 with privca certificates, following docs/postgresql.md: `psql
"sslmode=verify-full"` verifies the server, client certificates log in under
`clientcert=verify-full` (and `cert`), what the docs say fails does fail, a CRL made by
`privca crl` bars a revoked client, and `privca scan ADDRESS:5432` reports the chain
the server sends (PostgreSQL's SSLRequest, chosen from the port).

One server for the module (initdb costs a second or two); the CA is the README's.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509

from tests.conftest import PASSPHRASE, Cli, openssl, require_tool, write
from tests.interop._postgres_tls import PORT, TlsPostgres, find_bindir

SERVER_NAME = "db.corp.internal"
PASSWORDS = {
    "alice": "alice-password",
    "bob": "bob-password",
    "dave": "dave-password",
    "app": "app-password",
}


@dataclass
class Setup:
    cli: Cli
    server: TlsPostgres
    client_dir: Path  # the docs' ~/.postgresql
    root: Path
    psql: Path
    home: Path  # HOME for psql, with nothing of the developer's

    def connect(
        self,
        user: str,
        *,
        cert: str | None = None,
        host: str = SERVER_NAME,
        sslmode: str = "verify-full",
        password: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        params = [
            f"host={host}",
            f"hostaddr={self.server.address}",
            f"port={PORT}",
            "dbname=postgres",
            f"user={user}",
            f"sslmode={sslmode}",
            f"sslrootcert={self.root}",
        ]
        if cert is not None:
            params += [
                f"sslcert={self.client_dir / cert}",
                f"sslkey={self.client_dir / key_for(cert)}",
            ]
        query = "SELECT current_user || ' ' || ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
        return subprocess.run(
            [str(self.psql), " ".join(params), "-tAc", query],
            capture_output=True,
            text=True,
            timeout=30,
            env={
                **os.environ,
                "HOME": str(self.home),
                "PGPASSWORD": password if password is not None else PASSWORDS.get(user, ""),
                "PGCONNECT_TIMEOUT": "10",
            },
        )


def key_for(certificate: str) -> str:
    """alice@corp.internal.chain.pem or .crt -> alice@corp.internal.key"""
    return certificate.removesuffix(".chain.pem").removesuffix(".crt") + ".key"


def _issue(cli: Cli, *args: str) -> None:
    result = cli(*args, "--passphrase-file", str(cli.passphrase_file))
    assert result.exit_code == 0, result.output + result.stderr


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    bindir = find_bindir()
    if bindir is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL server binaries are missing in CI (.ci/run installs them)")
        pytest.skip("PostgreSQL server binaries are not installed")
    base = tmp_path_factory.mktemp("pg")
    pass_file = write(base / "pass", PASSPHRASE + b"\n", 0o600)
    cli = Cli(base / "ca", pass_file)
    init = cli(
        "init", "--name", "Example Internal CA", "--permit", "corp.internal",
        "--permit", "10.0.0.0/8", "--passphrase-file", str(pass_file),
    )  # fmt: skip
    assert init.exit_code == 0, init.stderr

    server = TlsPostgres(bindir)
    # docs/postgresql.md, "The server": privca writes straight into the server's directory
    _issue(cli, "issue", SERVER_NAME, "--profile", "server", "--out", str(server.tls))
    root = server.tls / "root.crt"
    assert cli("export", "root", "--out", str(root)).exit_code == 0
    assert server.tls.stat().st_mode & 0o777 == 0o700

    # docs/postgresql.md, "Client certificates" (~/.postgresql in the docs)
    client_dir = base / "client"
    for user in ("alice", "bob", "carol", "dave"):
        _issue(
            cli, "issue", f"email:{user}@corp.internal", "--profile", "client", "--cn", user,
            "--out", str(client_dir),
        )  # fmt: skip

    try:
        server.initdb()
        server.hand_tls_to_server()  # the docs' chown -R postgres:
        server.configure(
            "ssl = on\n"
            f"ssl_cert_file = '{server.tls / f'{SERVER_NAME}.chain.pem'}'\n"
            f"ssl_key_file = '{server.tls / f'{SERVER_NAME}.key'}'\n"
            f"ssl_ca_file = '{root}'\n"
        )
        # The docs' pg_hba.conf lines, on loopback instead of 10.0.0.0/8.
        server.write_hba(
            "hostssl all app 127.0.0.0/8 scram-sha-256\n"
            "hostssl all alice,bob,dave 127.0.0.0/8 scram-sha-256 clientcert=verify-full\n"
            "hostssl all carol     127.0.0.0/8 cert\n"
        )
        server.start()
        for user, password in PASSWORDS.items():
            server.sql(f"CREATE ROLE {user} LOGIN PASSWORD '{password}'")
        server.sql("CREATE ROLE carol LOGIN")
        home = base / "home"
        home.mkdir()
        yield Setup(cli, server, client_dir, root, bindir / "psql", home)
    finally:
        server.stop()


def test_verify_full_checks_the_server_and_its_name(setup: Setup, make_ca) -> None:
    result = setup.connect("app")
    assert result.returncode == 0, result.stderr + setup.server.log_tail()
    assert result.stdout.strip() == "app true"
    # A client that trusts another root refuses the server.
    other = make_ca(name="Other CA")
    untrusting = dataclasses.replace(setup, root=other.home.root_cert).connect("app")
    assert untrusting.returncode != 0
    assert "certificate verify failed" in untrusting.stderr, untrusting.stderr


def test_verify_full_with_a_client_certificate_and_password(setup: Setup) -> None:
    result = setup.connect("alice", cert="alice@corp.internal.chain.pem")
    assert result.returncode == 0, result.stderr + setup.server.log_tail()
    assert result.stdout.strip() == "alice true"


def test_cert_method_needs_no_password(setup: Setup) -> None:
    result = setup.connect("carol", cert="carol@corp.internal.chain.pem", password="")
    assert result.returncode == 0, result.stderr + setup.server.log_tail()
    assert result.stdout.strip() == "carol true"


# What docs/postgresql.md says fails, fails: (user, certificate, host, what the client
# is told, what the server logs)
REFUSED = {
    "leaf-without-the-issuing-ca": (
        "alice", "alice@corp.internal.crt", SERVER_NAME,
        "tlsv1 alert unknown ca", "could not accept SSL connection: certificate verify failed",
    ),
    "another-users-certificate-scram": (
        "alice", "bob@corp.internal.chain.pem", SERVER_NAME,
        'password authentication failed for user "alice"',
        'certificate validation (clientcert=verify-full) failed for user "alice": CN mismatch',
    ),
    "another-users-certificate-cert": (
        "carol", "alice@corp.internal.chain.pem", SERVER_NAME,
        'certificate authentication failed for user "carol"',
        "provided user name (carol) and authenticated user name (alice) do not match",
    ),
    "no-client-certificate": (
        "alice", None, SERVER_NAME,
        "connection requires a valid client certificate", "",
    ),
    "wrong-server-name": (
        "alice", "alice@corp.internal.chain.pem", "other.corp.internal",
        'server certificate for "db.corp.internal" does not match host name', "",
    ),
}  # fmt: skip


@pytest.mark.parametrize(
    ("user", "cert", "host", "told", "logged"), REFUSED.values(), ids=list(REFUSED)
)
def test_what_the_docs_say_fails_fails(
    setup: Setup, user: str, cert: str | None, host: str, told: str, logged: str
) -> None:
    result = setup.connect(user, cert=cert, host=host)
    assert result.returncode != 0, result.stdout
    assert told in result.stderr, result.stderr + "\n" + setup.server.log_tail()
    assert logged in setup.server.wait_for_log(logged)


def test_a_client_certificate_from_another_ca_is_refused(
    setup: Setup, make_ca, tmp_path: Path
) -> None:
    from privca.x509.encoding import pem_private_key_unencrypted

    other = make_ca(name="Other CA").issue(["email:alice@corp.internal"], profile="client",
                                           common_name="alice")  # fmt: skip
    write(setup.client_dir / "mallory.chain.pem", other.chain_pem())
    write(setup.client_dir / "mallory.key", pem_private_key_unencrypted(other.private_key), 0o600)
    result = setup.connect("alice", cert="mallory.chain.pem")
    assert result.returncode != 0
    assert "certificate verify failed" in result.stderr or "unknown ca" in result.stderr


def test_scan_reports_the_chain_the_server_sends(setup: Setup) -> None:
    # The README's `privca scan db.corp.internal:5432`: the port says PostgreSQL.
    result = setup.cli("scan", f"{setup.server.address}:{PORT}", "--name", SERVER_NAME, "--json")
    assert result.exit_code == 0, result.output
    (document,) = json.loads(result.output)
    assert document["starttls"] == "postgres"
    assert document["ok"] and document["chain_complete"] and document["status"] == "valid"
    served = (setup.server.tls / f"{SERVER_NAME}.chain.pem").read_bytes()
    leaf = x509.load_pem_x509_certificates(served)[0]
    assert document["serial"] == format(leaf.serial_number, "x")
    assert document["names"] == [SERVER_NAME]
    # openssl agrees on what is served.
    judge = openssl(
        "s_client", "-starttls", "postgres", "-connect", f"{setup.server.address}:{PORT}",
        "-CAfile", str(setup.root), "-verify_return_error", "-verify_hostname", SERVER_NAME,
    )  # fmt: skip
    assert judge.returncode == 0 and "Verify return code: 0 (ok)" in judge.stdout


def test_a_crl_from_privca_bars_a_revoked_client(setup: Setup, tmp_path: Path) -> None:
    # docs/postgresql.md, "Revocation": dave is revoked (no other test uses him)
    require_tool("openssl")
    pass_file = str(setup.cli.passphrase_file)
    revoked = setup.cli("revoke", "email:dave@corp.internal", "--reason", "keyCompromise")
    assert revoked.exit_code == 0, revoked.stderr
    issuing_crl, root_crl = tmp_path / "issuing-crl.pem", tmp_path / "root-crl.pem"
    for args in (["--out", str(issuing_crl)], ["--root", "--out", str(root_crl)]):
        result = setup.cli("crl", *args, "--passphrase-file", pass_file)
        assert result.exit_code == 0, result.stderr
    dave = setup.connect("dave", cert="dave@corp.internal.chain.pem")
    assert dave.returncode == 0, dave.stderr  # until the CRL reaches the server
    combined = write(tmp_path / "crl.pem", issuing_crl.read_bytes() + root_crl.read_bytes())
    crl_file = setup.server.install_tls_file(combined, "crl.pem")
    setup.server.sql(f"ALTER SYSTEM SET ssl_crl_file = '{crl_file}'")
    setup.server.reload()

    after = setup.connect("dave", cert="dave@corp.internal.chain.pem")
    assert after.returncode != 0, after.stdout
    # The server's TLS alert names the reason (its log says only "verify failed").
    assert "certificate revoked" in after.stderr, after.stderr
    alice = setup.connect("alice", cert="alice@corp.internal.chain.pem")
    assert alice.returncode == 0, alice.stderr + setup.server.log_tail()
