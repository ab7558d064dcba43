"""`privca trust` during a root rollover: install, status and bundle hold both roots until
`rotate root --retire-old`; then only the new one. Stores are sandboxed (a Debian-like
system root, a throwaway NSS database)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from cryptography import x509

from privca.authority import CertificateAuthority
from privca.cli.main import cli
from privca.x509.encoding import pem_certificate
from tests.conftest import assert_user_error, require_tool, write


def trust(home: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--home", str(home), "trust", *args])


@pytest.fixture
def rolled(make_ca: Callable[..., CertificateAuthority]) -> tuple[CertificateAuthority, bytes]:
    ca = make_ca()
    old = pem_certificate(ca.root)
    ca.rollover_root()
    return ca, old


def test_install_and_status_cover_both_roots(
    rolled: tuple[CertificateAuthority, bytes], debian_root: Path, nss_db: Path
) -> None:
    ca, old = rolled
    stores = ["--stores", "system,nss", "--system-root", str(debian_root), "--nss-db", str(nss_db)]
    result = trust(ca.home.root, "install", *stores, "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert [r["subject"] for r in document["roots"]] == [
        x509.load_pem_x509_certificate(old).subject.rfc4514_string(),
        ca.root.subject.rfc4514_string(),
    ]
    assert [o["result"] for o in document["outcomes"]].count("installed") == 4
    status = trust(ca.home.root, "status", *stores, "--json", "--check")
    assert status.exit_code == 0, status.output
    states = [s["state"] for r in json.loads(status.stdout)["roots"] for s in r["stores"]]
    assert states == ["present"] * 4
    # The system bundle, as OpenSSL reads it, now holds both roots.
    bundle = (debian_root / "etc/ssl/certs/ca-certificates.crt").read_bytes()
    held = x509.load_pem_x509_certificates(bundle)
    assert x509.load_pem_x509_certificate(old) in held and ca.root in held


def test_bundle_holds_both_roots_then_only_the_new(
    rolled: tuple[CertificateAuthority, bytes],
) -> None:
    ca, old = rolled
    result = trust(ca.home.root, "bundle", "--format", "pem")
    assert result.exit_code == 0, result.output
    assert x509.load_pem_x509_certificates(result.stdout_bytes) == [
        x509.load_pem_x509_certificate(old),
        ca.root,
    ]
    assert_user_error(trust(ca.home.root, "bundle", "--format", "der"), "rollover is under way")
    ca.retire_old_root(force=True)
    assert not ca.home.previous_root_cert.exists()
    result = trust(ca.home.root, "bundle", "--format", "pem")
    assert x509.load_pem_x509_certificates(result.stdout_bytes) == [ca.root]
    assert trust(ca.home.root, "bundle", "--format", "der").exit_code == 0


def test_retire_old_removes_the_old_root_from_the_stores_privca_put_it_in(
    rolled: tuple[CertificateAuthority, bytes],
    debian_root: Path,
    nss_db: Path,
    passphrase_file: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`trust install` during the transition put both roots into this machine's stores
    (sandboxed through $PRIVCA_TRUST_*); `--retire-old` takes the old one out of each and
    leaves the new one, as the real update-ca-certificates and certutil then report."""
    ca, old = rolled
    monkeypatch.setenv("PRIVCA_TRUST_SYSTEM_ROOT", str(debian_root))
    monkeypatch.setenv("PRIVCA_TRUST_NSS_DBS", str(nss_db))
    monkeypatch.setenv("PRIVCA_TRUST_JAVA_KEYSTORES", str(debian_root / "java.p12"))
    require_tool("keytool")
    stores = ("--stores", "system,nss,java")

    def status_here() -> dict[str, object]:
        result = CliRunner().invoke(
            cli, ["--home", str(ca.home.root), "rotate", "status", "--json"]
        )
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    before = status_here()
    assert before["new_root_trusted_here"] is False
    assert {r["store"]: r["state"] for r in before["trust_stores"]} == {  # type: ignore[union-attr]
        "system": "absent",
        "nss": "absent",
        "java": "absent",
    }
    assert trust(ca.home.root, "install", *stores).exit_code == 0
    assert status_here()["new_root_trusted_here"] is True
    old_file = write(debian_root.parent / "old-root.pem", old)

    def states(root: Path | None) -> list[str]:
        named = [str(root)] if root is not None else []
        args = ["status", *named, *stores, "--json"]
        result = trust(ca.home.root, *args)
        assert result.exit_code == 0, result.output
        return [s["state"] for s in json.loads(result.stdout)["stores"]]

    assert states(old_file) == ["present"] * 3
    result = CliRunner().invoke(
        cli,
        ["--home", str(ca.home.root), "rotate", "root", "--retire-old", "--force", "--json",
         "--passphrase-file", str(passphrase_file)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert sorted(o["store"] for o in document["trust_stores"]) == ["java", "nss", "system"]
    assert {o["result"] for o in document["trust_stores"]} == {"removed"}
    assert states(old_file) == ["absent"] * 3
    assert states(None) == ["present"] * 3  # the new root stays
    bundle = (debian_root / "etc/ssl/certs/ca-certificates.crt").read_bytes()
    assert x509.load_pem_x509_certificate(old) not in x509.load_pem_x509_certificates(bundle)


def test_install_leaves_out_an_old_root_that_expired_during_the_transition(
    make_ca: Callable[..., CertificateAuthority], debian_root: Path
) -> None:
    """The transition lasts until --retire-old, which may come after the old root expired:
    install refused the expired root and so installed neither (review, 2026-12-03)."""
    start = dt.datetime.now(dt.UTC) - dt.timedelta(days=40)
    ca = make_ca(now=start, root_days=30, issuing_days=20)
    ca.rollover_root(now=start + dt.timedelta(days=5))
    result = trust(ca.home.root, "install", "--stores", "system",
                   "--system-root", str(debian_root), "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "expired" in result.stderr and "left out" in result.stderr
    installed = [o for o in json.loads(result.stdout)["outcomes"] if o["result"] == "installed"]
    assert len(installed) == 1
    bundle = (debian_root / "etc/ssl/certs/ca-certificates.crt").read_bytes()
    assert ca.root in x509.load_pem_x509_certificates(bundle)
