"""Root rollover with a new key (`rotate root --new-key`, `rotate status`, `--retire-old`,
`export roots|cross|chain --for`), driven through the CLI as an operator would.

The third-party judges (openssl verify, TLS handshakes, pkilint) are in
tests/interop/test_rollover.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from privca.authority import CertificateAuthority
from privca.errors import AlreadyExists
from privca.x509.encoding import pem_certificate
from tests.conftest import (
    PASSPHRASE,
    Cli,
    assert_user_error,
    openssl,
    require_tool,
    tree_snapshot,
    write,
)
from tests.pg import postgres_cluster, postgres_url  # noqa: F401  (fixtures)
from tests.tls_server import serve_tls


@pytest.fixture(autouse=True)
def _sandboxed_trust_stores(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--retire-old removes the old root from this machine's stores: point them at empty
    sandboxes (the removal itself is judged in tests/trust/test_rollover.py)."""
    sandbox = tmp_path / "trust-sandbox"
    monkeypatch.setenv("HOME", str(sandbox / "home"))
    monkeypatch.setenv("PRIVCA_TRUST_SYSTEM_ROOT", str(sandbox / "sysroot"))
    monkeypatch.setenv("PRIVCA_TRUST_NSS_DBS", str(sandbox / "nssdb"))
    monkeypatch.setenv("PRIVCA_TRUST_JAVA_KEYSTORES", str(sandbox / "java.p12"))


@dataclass(frozen=True)
class Rolled:
    """A CA with one leaf issued before the rollover (`old`) and one after (`new`)."""

    cli: Cli
    out: Path
    old_root: x509.Certificate
    new_root: x509.Certificate

    def run(self, *args: str, unlock: bool = True) -> dict[str, object] | list[object]:
        extra = ("--passphrase-file", str(self.cli.passphrase_file)) if unlock else ()
        result = self.cli(*args, *extra)
        assert result.exit_code == 0, result.output + result.stderr
        return json.loads(result.stdout) if "--json" in args else {}

    def pem(self, name: str) -> list[x509.Certificate]:
        return x509.load_pem_x509_certificates((self.out / name).read_bytes())


def ski(certificate: x509.Certificate) -> bytes:
    return certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest


def aki(certificate: x509.Certificate) -> bytes | None:
    ext = certificate.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)
    return ext.value.key_identifier


def issue(cli: Cli, out: Path, name: str) -> None:
    result = cli("issue", name, "--out", str(out), "--passphrase-file", str(cli.passphrase_file))
    assert result.exit_code == 0, result.output + result.stderr


@pytest.fixture
def rolled(run_cli: Cli, tmp_path: Path) -> Rolled:
    out = tmp_path / "out"
    init = run_cli(
        "init", "--name", "Rollover CA", "--passphrase-file", str(run_cli.passphrase_file)
    )
    assert init.exit_code == 0, init.stderr
    root_file = run_cli.home / "certs" / "root.crt"
    old_root = x509.load_pem_x509_certificate(root_file.read_bytes())
    issue(run_cli, out, "old.example")
    rotated = run_cli(
        "rotate", "root", "--new-key", "--passphrase-file", str(run_cli.passphrase_file)
    )
    assert rotated.exit_code == 0, rotated.stderr
    new_root = x509.load_pem_x509_certificate(root_file.read_bytes())
    issue(run_cli, out, "new.example")
    return Rolled(run_cli, out, old_root, new_root)


def test_cross_certificate_is_the_new_root_signed_by_the_old(rolled: Rolled) -> None:
    certs = rolled.cli.home / "certs"
    (cross,) = x509.load_pem_x509_certificates((certs / "cross.pem").read_bytes())
    old, new = rolled.old_root, rolled.new_root
    assert new.public_key() != old.public_key() and new.subject != old.subject
    assert cross.subject == new.subject and cross.issuer == old.subject
    assert cross.public_key() == new.public_key()
    assert ski(cross) == ski(new) and aki(cross) == ski(old)
    assert old.not_valid_before_utc <= cross.not_valid_before_utc
    assert cross.not_valid_after_utc <= old.not_valid_after_utc
    basic = cross.extensions.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical and basic.value.ca
    usage = cross.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage == new.extensions.get_extension_for_class(x509.KeyUsage)
    cross.verify_directly_issued_by(old)
    roots = x509.load_pem_x509_certificates((certs / "roots.pem").read_bytes())
    assert roots == [old, new]
    # The new root key is kept like the old: an encrypted file, 0400.
    keys = sorted(p.name for p in (rolled.cli.home / "private").glob("root*.key"))
    assert len(keys) == 2
    for key in keys:
        text = (rolled.cli.home / "private" / key).read_text()
        assert "ENCRYPTED" in text


def test_new_leaf_chain_carries_the_cross_certificate(rolled: Rolled) -> None:
    (cross,) = x509.load_pem_x509_certificates(
        (rolled.cli.home / "certs" / "cross.pem").read_bytes()
    )
    leaf, issuing, carried = rolled.pem("new.example.chain.pem")
    assert carried == cross
    issuing.verify_directly_issued_by(rolled.new_root)
    leaf.verify_directly_issued_by(issuing)
    assert rolled.pem("new.example.chain-new.pem") == [leaf, issuing]
    # Leaves from before the rollover keep their two-certificate chain, under the old root.
    _old_leaf, old_issuing = rolled.pem("old.example.chain.pem")
    old_issuing.verify_directly_issued_by(rolled.old_root)
    assert not (rolled.out / "old.example.chain-new.pem").exists()


def test_exports_during_the_transition(rolled: Rolled) -> None:
    def export(*args: str) -> list[x509.Certificate]:
        result = rolled.cli("export", *args)
        assert result.exit_code == 0, result.stderr
        return x509.load_pem_x509_certificates(result.stdout_bytes) if result.stdout else []

    (cross,) = export("cross")
    assert export("roots") == [rolled.old_root, rolled.new_root]
    assert export("root") == [rolled.new_root]
    issuing = rolled.pem("new.example.chain-new.pem")[1]
    assert export("chain") == export("chain", "--for", "new") == [issuing, rolled.new_root]
    assert export("chain", "--for", "old") == [issuing, cross, rolled.old_root]


def test_verify_accepts_leaves_under_either_root(rolled: Rolled) -> None:
    for name in ("old.example", "new.example"):
        result = rolled.cli("verify", str(rolled.out / f"{name}.chain.pem"))
        assert result.exit_code == 0, (name, result.output, result.stderr)


def test_verify_names_the_root_an_old_leaf_chains_to(rolled: Rolled, tmp_path: Path) -> None:
    """A leaf of the old hierarchy is not a forgery: without the old root among the roots
    given during the transition, and once the rollover has ended, verify says which root
    it chains to and why that one is not trusted; a damaged copy is still called one.
    openssl agrees: the roots trusted now refuse both, the old root accepts the genuine
    leaf and refuses the damaged one on its signature."""
    require_tool("openssl")
    chain = rolled.out / "old.example.chain.pem"
    leaf, _old_issuing = rolled.pem("old.example.chain.pem")
    der = bytearray(leaf.public_bytes(Encoding.DER))
    der[-1] ^= 0x01  # the last byte of the signature value
    damaged = write(
        tmp_path / "damaged.pem", pem_certificate(x509.load_der_x509_certificate(bytes(der)))
    )
    genuine = write(tmp_path / "genuine.pem", pem_certificate(leaf))
    old_root = write(tmp_path / "old-root.pem", pem_certificate(rolled.old_root))
    new_root = write(tmp_path / "new-root.pem", pem_certificate(rolled.new_root))

    def problems(path: Path, *args: str) -> list[str]:
        result = rolled.cli("verify", str(path), "--json", *args)
        assert result.exit_code == 1, result.output + result.stderr
        return json.loads(result.stdout)["problems"]  # type: ignore[no-any-return]

    def openssl_verify(trusted: Path, path: Path) -> subprocess.CompletedProcess[str]:
        return openssl(
            "verify", "-x509_strict", "-CAfile", str(trusted), "-untrusted", str(chain), str(path)
        )

    assert problems(chain, "--ca-file", str(new_root)) == [
        "issued by CN=Rollover CA Issuing CA under the old root CN=Rollover CA Root of the "
        "root rollover under way: trusted until the rollover ends, but not by the roots given"
    ]
    rolled.run("rotate", "root", "--retire-old", "--force")
    retired = (
        "issued by CN=Rollover CA Issuing CA under the retired root CN=Rollover CA Root: "
        "not trusted since the root rollover ended; renew it (privca renew; privca issue if "
        "the inventory does not hold it)"
    )
    assert problems(chain) == [retired]
    text = rolled.cli("verify", str(chain))
    assert text.exit_code == 1 and f"  {retired}" in text.stdout.splitlines()
    assert "forged" not in text.stdout
    forged = problems(damaged, "--ca-file", str(old_root))
    assert len(forged) == 1 and forged[0].endswith("a forged or damaged certificate"), forged
    assert problems(damaged) == forged

    now_trusted = rolled.cli.home / "certs" / "roots.pem"
    assert x509.load_pem_x509_certificates(now_trusted.read_bytes()) == [rolled.new_root]
    for path in (genuine, damaged):
        assert openssl_verify(now_trusted, path).returncode != 0
    assert openssl_verify(old_root, genuine).returncode == 0
    refused = openssl_verify(old_root, damaged)
    assert refused.returncode != 0 and "signature failure" in refused.stdout + refused.stderr


def test_renewing_an_old_leaf_gives_a_new_hierarchy_leaf(rolled: Rolled) -> None:
    rolled.run("renew", "old.example", "--out", str(rolled.out))
    leaf, issuing, cross = rolled.pem("old.example.chain.pem")
    issuing.verify_directly_issued_by(rolled.new_root)
    cross.verify_directly_issued_by(rolled.old_root)
    assert rolled.pem("old.example.chain-new.pem") == [leaf, issuing]


def test_status_then_retire_old(rolled: Rolled) -> None:
    status = rolled.run("rotate", "status", "--json", unlock=False)
    assert isinstance(status, dict)
    assert status["in_transition"] is True and status["old_root_retirable"] is False
    assert status["old_hierarchy_valid_certificates"] == 1
    assert str(status["last_old_certificate_expires"]).startswith("20")
    refused = rolled.cli("rotate", "root", "--retire-old")
    assert_user_error(refused, "1 valid certificate(s) still chain only to the old root")
    assert "--force" in refused.stderr

    rolled.run("revoke", "old.example", "--reason", "superseded", unlock=False)
    status = rolled.run("rotate", "status", "--json", unlock=False)
    assert isinstance(status, dict)
    assert status["old_hierarchy_valid_certificates"] == 0 and status["old_root_retirable"]
    retired = rolled.run("rotate", "root", "--retire-old", "--json")
    assert isinstance(retired, dict)
    assert retired["retired"]["serial"] == f"{rolled.old_root.serial_number:x}"  # type: ignore[index]
    assert retired["trust_stores"] == [] and retired["trust_error"] is None

    status = rolled.run("rotate", "status", "--json", unlock=False)
    assert isinstance(status, dict) and status["in_transition"] is False
    assert len(status["roots"]) == 1  # type: ignore[arg-type]
    certs = rolled.cli.home / "certs"
    assert x509.load_pem_x509_certificates((certs / "roots.pem").read_bytes()) == [rolled.new_root]
    assert (certs / "cross.pem").read_bytes() == b""
    assert rolled.cli("export", "cross").stdout == ""
    issue(rolled.cli, rolled.out, "after.example")
    assert len(rolled.pem("after.example.chain.pem")) == 2
    assert not (rolled.out / "after.example.chain-new.pem").exists()
    # The transition is over: a second retirement has nothing to end.
    assert_user_error(rolled.cli("rotate", "root", "--retire-old"), "no root rollover")


def test_retire_old_with_force_while_old_leaves_are_valid(rolled: Rolled) -> None:
    rolled.run("rotate", "root", "--retire-old", "--force")
    result = rolled.cli("export", "roots")
    assert x509.load_pem_x509_certificates(result.stdout_bytes) == [rolled.new_root]


def test_retiring_publishes_the_old_roots_last_crl_until_it_expires(rolled: Rolled) -> None:
    crl_dir = rolled.cli.home / "crl"
    old, new = rolled.old_root, rolled.new_root
    # The rollover published the new root's first CRL, under its serial; root.crl stays
    # the old root's (the CDP of the issuing CAs made before) while the rollover lasts.
    first = x509.load_der_x509_crl((crl_dir / f"{new.serial_number:x}.crl").read_bytes())
    assert first.issuer == new.subject and first.is_signature_valid(new.public_key())
    assert x509.load_der_x509_crl((crl_dir / "root.crl").read_bytes()).issuer == old.subject
    rolled.run("crl", "--root")  # a CRL for every trusted root during the transition
    for root in (old, new):
        crl = x509.load_der_x509_crl((crl_dir / f"{root.serial_number:x}.crl").read_bytes())
        assert crl.is_signature_valid(root.public_key())

    rolled.run("rotate", "root", "--retire-old", "--force")
    last = x509.load_der_x509_crl((crl_dir / f"{old.serial_number:x}.crl").read_bytes())
    assert last.is_signature_valid(old.public_key())  # type: ignore[arg-type]
    assert last.next_update_utc == old.not_valid_after_utc
    assert x509.load_pem_x509_crl((crl_dir / f"{old.serial_number:x}.pem").read_bytes()) == last
    # /crl/root.crl means the new root now.
    assert x509.load_der_x509_crl((crl_dir / "root.crl").read_bytes()).issuer == new.subject
    rolled.run("crl", "--root")  # only the new root is trusted: only its CRL is renewed
    again = x509.load_der_x509_crl((crl_dir / f"{old.serial_number:x}.crl").read_bytes())
    assert again == last


def test_reverse_cross_is_made_exported_and_dropped_on_retirement(
    run_cli: Cli, tmp_path: Path
) -> None:
    init = run_cli("init", "--name", "Reverse", "--passphrase-file", str(run_cli.passphrase_file))
    assert init.exit_code == 0, init.stderr
    old_root = x509.load_pem_x509_certificate((run_cli.home / "certs/root.crt").read_bytes())
    result = run_cli(
        "rotate", "root", "--new-key", "--reverse-cross", "--json",
        "--passphrase-file", str(run_cli.passphrase_file),
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    made = json.loads(result.stdout)
    cross, reverse = x509.load_pem_x509_certificates(run_cli("export", "cross").stdout_bytes)
    assert made["reverse_cross"]["serial"] == f"{reverse.serial_number:x}"
    assert reverse.subject == old_root.subject and reverse.public_key() == old_root.public_key()
    assert cross.issuer == old_root.subject
    held = x509.load_pem_x509_certificates((run_cli.home / "certs/cross.pem").read_bytes())
    assert held == [cross, reverse]
    # New chains carry the cross-certificate only: the reverse one is for old chains.
    issue(run_cli, tmp_path / "out", "new.example")
    chain = x509.load_pem_x509_certificates((tmp_path / "out/new.example.chain.pem").read_bytes())
    assert chain[-1] == cross and reverse not in chain
    retired = run_cli(
        "rotate", "root", "--retire-old", "--passphrase-file", str(run_cli.passphrase_file)
    )
    assert retired.exit_code == 0, retired.stderr
    assert run_cli("export", "cross").stdout == ""


def test_an_ended_reverse_cross_makes_no_old_leaf_valid(run_cli: Cli, tmp_path: Path) -> None:
    """While the rollover lasts, the reverse cross (the old root signed by the new) lets a
    client that trusts only the new root accept a leaf of the old hierarchy; verify says
    so too. Once the old root is retired the reverse cross has ended and clients are no
    longer given it: verify and scan name the retired root, as openssl refuses the leaf,
    instead of judging it valid through the ended certificate."""
    require_tool("openssl")
    out = tmp_path / "out"
    init = run_cli("init", "--name", "Reverse", "--passphrase-file", str(run_cli.passphrase_file))
    assert init.exit_code == 0, init.stderr
    issue(run_cli, out, "old.example")
    rotated = run_cli(
        "rotate", "root", "--new-key", "--reverse-cross",
        "--passphrase-file", str(run_cli.passphrase_file),
    )  # fmt: skip
    assert rotated.exit_code == 0, rotated.stderr
    certs = run_cli.home / "certs"
    new_root = write(tmp_path / "new-root.pem", (certs / "root.crt").read_bytes())
    chain = out / "old.example.chain.pem"
    with_reverse = write(
        tmp_path / "with-reverse.pem", chain.read_bytes() + run_cli("export", "cross").stdout_bytes
    )

    def openssl_verify(trusted: Path, untrusted: Path) -> int:
        return openssl(
            "verify", "-x509_strict", "-CAfile", str(trusted), "-untrusted", str(untrusted),
            str(chain),
        ).returncode  # fmt: skip

    assert openssl_verify(new_root, with_reverse) == 0
    through_reverse = run_cli("verify", str(chain), "--ca-file", str(new_root))
    assert through_reverse.exit_code == 0, through_reverse.output + through_reverse.stderr

    retired = run_cli(
        "rotate", "root", "--retire-old", "--force",
        "--passphrase-file", str(run_cli.passphrase_file),
    )  # fmt: skip
    assert retired.exit_code == 0, retired.stderr
    assert openssl_verify(certs / "roots.pem", chain) != 0
    message = (
        "issued by CN=Reverse Issuing CA under the retired root CN=Reverse Root: not trusted "
        "since the root rollover ended; renew it (privca renew; privca issue if the "
        "inventory does not hold it)"
    )
    for extra in ((), ("--ca-file", str(new_root))):
        verdict = run_cli("verify", str(chain), "--json", *extra)
        assert verdict.exit_code == 1, verdict.output + verdict.stderr
        assert json.loads(verdict.stdout)["problems"] == [message]
    served = (chain.read_bytes(), (out / "old.example.key").read_bytes())
    with serve_tls(*served, tmp_path / "old") as port:
        scanned = run_cli("scan", f"127.0.0.1:{port}", "--name", "old.example", "--json")
    assert scanned.exit_code == 1, scanned.stdout + scanned.stderr
    assert json.loads(scanned.stdout)[0]["findings"] == [message]


def test_an_issuer_the_rollover_passed_by_signs_nothing_under_the_retired_root(
    run_cli: Cli, tmp_path: Path
) -> None:
    """An issuer disabled during the rollover keeps its old CA. Enabled again after the
    old root was retired, it used to go on issuing (exit 0) certificates no client trusts
    and verify called FAILED: refused now, with the command that gives it a new CA."""
    secret = ("--passphrase-file", str(run_cli.passphrase_file))

    def ok(*args: str, unlock: bool = True) -> None:
        result = run_cli(*args, *(secret if unlock else ()))
        assert result.exit_code == 0, result.output + result.stderr

    ok("init", "--name", "Passed By")
    run_cli("issuer", "create", "team-b", "--permit", "b.corp.internal", *secret)
    ok("issuer", "disable", "team-b", unlock=False)
    ok("rotate", "root", "--new-key")
    ok("issuer", "enable", "team-b", unlock=False)
    out = tmp_path / "out"
    # During the transition too (review, 2026-12-03): its certificates chained to the old
    # root only, and chain-new.pem failed against the new root.
    during = run_cli(
        "issue", "during.b.corp.internal", "--issuer", "team-b", "--out", str(out), *secret
    )
    assert_user_error(during, "under the old root of the rollover under way")
    assert "privca rotate issuing --issuer team-b" in during.stderr
    ok("rotate", "root", "--retire-old", "--force")
    refused = run_cli(
        "issue", "after.b.corp.internal", "--issuer", "team-b", "--out", str(out), *secret
    )
    assert_user_error(refused, "under a retired root")
    assert "privca rotate issuing --issuer team-b" in refused.stderr
    assert not (out / "after.b.corp.internal.crt").exists()
    ok("rotate", "issuing", "--issuer", "team-b")
    ok("issue", "after.b.corp.internal", "--issuer", "team-b", "--out", str(out))
    verified = run_cli("verify", str(out / "after.b.corp.internal.chain.pem"))
    assert verified.exit_code == 0, verified.output


def test_rollover_of_a_single_tier_ca(run_cli: Cli, tmp_path: Path) -> None:
    init = run_cli(
        "init", "--name", "Flat", "--single-tier", "--passphrase-file", str(run_cli.passphrase_file)
    )
    assert init.exit_code == 0, init.stderr
    out = tmp_path / "out"
    issue(run_cli, out, "before.example")
    result = run_cli(
        "rotate", "root", "--new-key", "--json", "--passphrase-file", str(run_cli.passphrase_file)
    )
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["issuing"] is None
    issue(run_cli, out, "flat.example")
    _leaf, cross = x509.load_pem_x509_certificates((out / "flat.example.chain.pem").read_bytes())
    assert cross.issuer != cross.subject
    assert (
        len(x509.load_pem_x509_certificates((out / "flat.example.chain-new.pem").read_bytes())) == 1
    )
    # The old root signed the leaf itself: once retired, verify names it.
    retired = run_cli(
        "rotate", "root", "--retire-old", "--force", "--passphrase-file",
        str(run_cli.passphrase_file),
    )  # fmt: skip
    assert retired.exit_code == 0, retired.stderr
    verdict = run_cli("verify", str(out / "before.example.chain.pem"), "--json")
    assert verdict.exit_code == 1, verdict.output
    assert json.loads(verdict.stdout)["problems"] == [
        "issued by the retired root CN=Flat: not trusted since the root rollover ended; "
        "renew it (privca renew; privca issue if the inventory does not hold it)"
    ]


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        pytest.param(("rotate", "root"), "exactly one of", id="no-mode"),
        pytest.param(
            ("rotate", "root", "--same-key", "--new-key"), "exactly one of", id="two-modes"
        ),
        pytest.param(("rotate", "root", "--new-key", "--days", "0"), "out of range", id="days-0"),
        pytest.param(
            ("rotate", "root", "--new-key", "--days", "99999999"), "out of range", id="days-huge"
        ),
        pytest.param(  # was exit 70: the date overflowed before the range was checked
            ("rotate", "root", "--same-key", "--days", "99999999"),
            "out of range",
            id="same-key-days-huge",
        ),
        pytest.param(
            ("rotate", "root", "--new-key", "--name", "evil\x1b[31mname"),
            "printable",
            id="name-control-chars",
        ),
        pytest.param(("rotate", "root", "--new-key", "--name", " "), "printable", id="name-blank"),
        pytest.param(("rotate", "root", "--new-key", "--force"), "--force goes", id="force-alone"),
        pytest.param(("rotate", "root", "--retire-old"), "no root rollover", id="retire-nothing"),
        pytest.param(("rotate", "root", "--same-key", "--name", "x"), "--new-key", id="name-same"),
        pytest.param(
            ("rotate", "root", "--retire-old", "--reverse-cross"), "--new-key", id="reverse-retire"
        ),
        pytest.param(("export", "root", "--for", "old"), "--for goes", id="export-for-root"),
    ],
)
def test_bad_rollover_input_exits_2_and_writes_nothing(
    run_cli: Cli, args: tuple[str, ...], fragment: str
) -> None:
    init = run_cli("init", "--name", "Bad", "--passphrase-file", str(run_cli.passphrase_file))
    assert init.exit_code == 0, init.stderr
    before = tree_snapshot(run_cli.home)
    result = (
        run_cli(*args, "--passphrase-file", str(run_cli.passphrase_file))
        if args[0] == "rotate"
        else run_cli(*args)
    )
    assert_user_error(result, fragment)
    assert "\x1b" not in result.stderr
    assert tree_snapshot(run_cli.home) == before


def test_a_second_rollover_waits_for_the_first_to_end(rolled: Rolled) -> None:
    before = tree_snapshot(rolled.cli.home / "certs")
    result = rolled.cli(
        "rotate", "root", "--new-key", "--passphrase-file", str(rolled.cli.passphrase_file)
    )
    assert_user_error(result, "already under way")
    assert tree_snapshot(rolled.cli.home / "certs") == before


def test_wrong_passphrase_makes_no_new_root(run_cli: Cli, tmp_path: Path) -> None:
    init = run_cli("init", "--name", "Locked", "--passphrase-file", str(run_cli.passphrase_file))
    assert init.exit_code == 0, init.stderr
    wrong = tmp_path / "wrong.txt"
    wrong.write_text("not the passphrase at all\n")
    wrong.chmod(0o600)
    before = tree_snapshot(run_cli.home / "certs")
    keys = sorted((run_cli.home / "private").iterdir())
    result = run_cli("rotate", "root", "--new-key", "--passphrase-file", str(wrong))
    assert result.exit_code != 0 and "Traceback" not in result.stderr
    assert result.stderr.startswith("privca: error: ")
    assert tree_snapshot(run_cli.home / "certs") == before
    assert sorted((run_cli.home / "private").iterdir()) == keys


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_two_rollovers_at_once_record_exactly_one(
    make_ca: Callable[..., CertificateAuthority], backend: str, request: pytest.FixtureRequest
) -> None:
    """Two processes that both saw no rollover under way: one records its rollover, the
    other is refused in the same transaction, so there is one cross-certificate and its
    root is the active one."""
    store_url = request.getfixturevalue("postgres_url") if backend == "postgresql" else ""
    home = make_ca(store_url=store_url).home.root
    first, second = (CertificateAuthority.open(home, PASSPHRASE) for _ in range(2))
    try:
        for ca in (first, second):
            assert ca.registry.cross is None  # both decided before either recorded
        barrier = threading.Barrier(2)

        def roll(ca: CertificateAuthority) -> str:
            barrier.wait()
            try:
                ca.rollover_root()
            except AlreadyExists:
                return "refused"
            return "rolled"

        with ThreadPoolExecutor(2) as pool:
            outcomes = sorted(pool.map(roll, (first, second)))
        assert outcomes == ["refused", "rolled"]
        with CertificateAuthority.open(home, PASSPHRASE) as fresh:
            registry = fresh.registry
        crosses = [a for a in registry.authorities if a.role == "cross"]
        assert len(crosses) == 1 and registry.cross == crosses[0]
        assert crosses[0].key_identifier == registry.root.key_identifier
        assert len(registry.roots) == 2
    finally:
        first.close()
        second.close()


def test_status_names_the_scanned_endpoints_that_serve_the_old_hierarchy(
    rolled: Rolled, tmp_path: Path
) -> None:
    """`privca scan` records what each endpoint served; `rotate status` says which of them
    still serve a leaf of the old hierarchy (judged again against today's registry)."""

    def served(name: str) -> tuple[bytes, bytes]:
        return (
            (rolled.out / f"{name}.chain.pem").read_bytes(),
            (rolled.out / f"{name}.key").read_bytes(),
        )

    with (
        serve_tls(*served("old.example"), tmp_path / "old") as old_port,
        serve_tls(*served("new.example"), tmp_path / "new") as new_port,
    ):
        for port, name in ((old_port, "old.example"), (new_port, "new.example")):
            scanned = rolled.cli("scan", f"127.0.0.1:{port}", "--name", name, "--json")
            assert scanned.exit_code == 0, scanned.stdout + scanned.stderr  # both are ours
    status = rolled.run("rotate", "status", "--json", unlock=False)
    assert isinstance(status, dict)
    endpoints = status["old_hierarchy_endpoints"]
    assert [e["target"] for e in endpoints] == [f"127.0.0.1:{old_port}"]  # type: ignore[union-attr,index]
    assert (rolled.cli.home / "scans.json").stat().st_mode & 0o077 == 0
    text = rolled.cli("rotate", "status")
    assert f"endpoint 127.0.0.1:{old_port} serves" in text.stdout

    # Once retired there is no old hierarchy to report; a damaged record is refused.
    rolled.run("rotate", "root", "--retire-old", "--force")
    status = rolled.run("rotate", "status", "--json", unlock=False)
    assert isinstance(status, dict) and status["old_hierarchy_endpoints"] == []
    # scan names the retired root of a genuine leaf, not "not issued by this CA".
    with serve_tls(*served("old.example"), tmp_path / "old-again") as old_port:
        scanned = rolled.cli("scan", f"127.0.0.1:{old_port}", "--name", "old.example", "--json")
    assert scanned.exit_code == 1, scanned.stdout + scanned.stderr
    assert json.loads(scanned.stdout)[0]["findings"] == [
        "issued by CN=Rollover CA Issuing CA under the retired root CN=Rollover CA Root: "
        "not trusted since the root rollover ended; renew it (privca renew; privca issue if "
        "the inventory does not hold it)"
    ]
    (rolled.cli.home / "scans.json").write_text("{not json")
    assert_user_error(rolled.cli("rotate", "status"), "is not a record of privca scan")


def test_two_processes_roll_over_one_postgresql_store_at_once(
    tmp_path: Path,
    passphrase_file: Path,
    postgres_url: str,  # noqa: F811
) -> None:
    """Two `privca rotate root --new-key` processes against one CA on PostgreSQL (two
    hosts sharing the store): exactly one records its rollover, the other is refused with
    one clear line (before or in the recording transaction), and the store holds one new
    root and one cross-certificate."""
    home = tmp_path / "ca"
    CertificateAuthority.init(
        home, "Shared Store CA", passphrase=PASSPHRASE, store_url=postgres_url
    ).close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRIVCA_")}
    command = [
        sys.executable, "-m", "privca", "--home", str(home), "rotate", "root", "--new-key",
        "--json", "--passphrase-file", str(passphrase_file),
    ]  # fmt: skip
    processes = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        for _ in range(2)
    ]
    results = [(p.returncode, out, err) for p in processes for out, err in [p.communicate(120)]]
    results.sort(key=lambda r: r[0])
    (won, won_out, _), (lost, _, lost_err) = results
    assert (won, lost) == (0, 2), results
    refusal = lost_err.decode()
    assert refusal.startswith("privca: error: ") and "Traceback" not in refusal, refusal
    assert "already under way" in refusal or "recorded meanwhile" in refusal, refusal
    new_root = json.loads(won_out)["root"]["serial"]

    with CertificateAuthority.open(home, PASSPHRASE) as ca:
        registry = ca.registry
        assert len(registry.roots) == 2
        assert [a.role for a in registry.authorities].count("cross") == 1
        assert f"{registry.root.serial:x}" == new_root
        assert registry.cross is not None
        assert registry.cross.key_identifier == registry.root.key_identifier
    on_disk = x509.load_pem_x509_certificate((home / "certs" / "root.crt").read_bytes())
    assert f"{on_disk.serial_number:x}" == new_root


def test_a_hostile_scan_record_is_never_echoed_raw(rolled: Rolled) -> None:
    """scans.json sits in the home, but its targets came from the command line and the
    network: a control sequence in one is shown escaped by `rotate status`."""
    chain = rolled.pem("old.example.chain.pem")
    old_issuing_ski = ski(chain[1]).hex()
    record = {
        "version": 1,
        "endpoints": [
            {
                "target": "evil\x1b[31m.example:443",
                "scanned_at": "2026-01-01T00:00:00Z",
                "serial": "01",
                "authority_key_identifier": old_issuing_ski,
            }
        ],
    }
    (rolled.cli.home / "scans.json").write_text(json.dumps(record))
    text = rolled.cli("rotate", "status")
    assert text.exit_code == 0, text.stderr
    assert "\x1b" not in text.stdout and "endpoint evil" in text.stdout
    document = rolled.run("rotate", "status", "--json", unlock=False)
    assert isinstance(document, dict)
    (endpoint,) = document["old_hierarchy_endpoints"]  # type: ignore[misc]
    assert endpoint["target"] == "evil\x1b[31m.example:443"  # JSON escapes it itself
