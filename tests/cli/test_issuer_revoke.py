"""`privca issuer revoke`: a compromised or withdrawn issuing CA goes on its root's CRL.

What it signed then fails a real `openssl verify -crl_check_all` (and `privca verify`)
while the new issuing CA's leaves pass; the revoked CA signs nothing more; the root's CRL
is published at once when the root key is here and, with the key offline, by the next
`privca crl` once it is back; roots, unknown CAs, a second revocation and reasons no CA
certificate may carry are refused with one line, nothing written."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import Result
from cryptography import x509

from tests.conftest import Cli, assert_user_error, openssl, tree_snapshot


def _ok(cli: Cli, *args: str) -> str:
    result = cli(*args)
    assert result.exit_code == 0, result.output + result.stderr
    return result.output


def _with_key(cli: Cli, *args: str) -> str:
    return _ok(cli, *args, "--passphrase-file", str(cli.passphrase_file))


def _revoke(cli: Cli, target: str, reason: str) -> Result:
    """`privca issuer revoke TARGET --reason REASON` with the CA's passphrase, as it ends."""
    return cli(
        "issuer", "revoke", target, "--reason", reason,
        "--passphrase-file", str(cli.passphrase_file),
    )  # fmt: skip


def _issue(cli: Cli, name: str, out: Path) -> Path:
    _with_key(cli, "issue", name, "--out", str(out))
    return out / f"{name}.crt"


def _serials(cli: Cli) -> list[str]:
    return json.loads(_ok(cli, "issuer", "show", "main", "--json"))["issuing_cas"]


def _root_serial(cli: Cli) -> str:
    root = x509.load_pem_x509_certificate((cli.home / "certs" / "root.crt").read_bytes())
    return f"{root.serial_number:x}"


def _crl_check_all(cli: Cli, leaf: Path) -> str:
    """openssl verify with every CRL of the chain (the root's and the issuing CA's)."""
    crls = [a for p in sorted((cli.home / "crl").glob("*.pem")) for a in ("-CRLfile", str(p))]
    done = openssl(
        "verify", "-crl_check_all", "-CAfile", str(cli.home / "certs" / "root.crt"),
        "-untrusted", str(leaf.with_name(leaf.stem + ".chain.pem")), *crls, str(leaf),
    )  # fmt: skip
    return done.stdout + done.stderr


@pytest.fixture
def rotated(home_cli: Cli, tmp_path: Path) -> tuple[Cli, Path, str]:
    """A leaf of the first issuing CA, then a rotation: (cli, old leaf, old CA serial)."""
    old_leaf = _issue(home_cli, "db.corp.internal", tmp_path / "old")
    _with_key(home_cli, "audit", "checkpoint")  # privca's own audit signer, under it too
    _with_key(home_cli, "rotate", "issuing")
    return home_cli, old_leaf, _serials(home_cli)[0]


def test_what_a_revoked_issuing_ca_signed_fails_openssl_and_verify(
    rotated: tuple[Cli, Path, str], tmp_path: Path
) -> None:
    cli, old_leaf, old_ca = rotated
    new_leaf = _issue(cli, "api.corp.internal", tmp_path / "new")
    _with_key(cli, "crl")  # every issuing CA's CRL, as an operator publishes them
    assert "OK" in _crl_check_all(cli, old_leaf)  # before: the old CA still stands

    document = json.loads(
        _with_key(cli, "issuer", "revoke", old_ca, "--reason", "caCompromise", "--json")
    )
    root_serial = _root_serial(cli)
    assert document["serial"] == old_ca and document["reason"] == "caCompromise"
    assert document["root_crls"] == [str(cli.home / "crl" / f"{root_serial}.crl")]
    assert document["roots_to_publish"] == []
    assert document["valid_certificates_signed"] == 1
    assert document["issuing_ca_now"] == _serials(cli)[1]

    for name in (f"{root_serial}.crl", "root.crl"):  # by serial, and the old URL
        crl = x509.load_der_x509_crl((cli.home / "crl" / name).read_bytes())
        entry = crl.get_revoked_certificate_by_serial_number(int(old_ca, 16))
        assert entry is not None
        reason = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
        assert reason == x509.ReasonFlags.ca_compromise
    assert "certificate revoked" in _crl_check_all(cli, old_leaf)
    assert "OK" in _crl_check_all(cli, new_leaf)

    verdict = cli("verify", str(old_leaf))
    assert verdict.exit_code == 1 and f"the issuing CA {old_ca} above it was revoked" in (
        verdict.output
    )
    assert cli("verify", str(new_leaf)).exit_code == 0
    shown = json.loads(cli("verify", str(old_leaf), "--json").output)
    assert shown["ok"] is False and shown["chain"] is True  # the chain alone cannot tell
    assert any("revoked CA" in problem for problem in shown["problems"])


def test_show_and_list_say_a_certificates_ca_was_revoked(
    rotated: tuple[Cli, Path, str], tmp_path: Path
) -> None:
    """Its own status stays its own (its CA's CRL does not list it), but `show` said
    "valid" with nothing beside it about the CA the operator had revoked."""
    cli, _old_leaf, old_ca = rotated
    _issue(cli, "api.corp.internal", tmp_path / "new")
    _with_key(cli, "issuer", "revoke", old_ca, "--reason", "keyCompromise")

    old = json.loads(_ok(cli, "show", "db.corp.internal", "--json"))
    assert old["status"] == "valid" and old["revoked_at"] is None
    assert old["issuer_revocation_reason"] == "keyCompromise"
    assert old["issuer_revoked_at"] is not None
    text = _ok(cli, "show", "db.corp.internal")
    assert "CA revoked for    keyCompromise" in text, text
    assert "CA revoked at     " + old["issuer_revoked_at"] in text, text

    new = json.loads(_ok(cli, "show", "api.corp.internal", "--json"))
    assert new["issuer_revoked_at"] is None and new["issuer_revocation_reason"] is None
    assert "CA revoked" not in _ok(cli, "show", "api.corp.internal")
    listed = {r["names"][0]: r for r in json.loads(_ok(cli, "list", "--json"))}
    assert listed["db.corp.internal"]["issuer_revocation_reason"] == "keyCompromise"
    assert listed["api.corp.internal"]["issuer_revocation_reason"] is None


def test_a_revoked_current_issuing_ca_signs_nothing_until_a_rotation(
    home_cli: Cli, tmp_path: Path
) -> None:
    _with_key(home_cli, "issuer", "create", "team-b", "--permit", "b.corp.internal")
    first = json.loads(_ok(home_cli, "issuer", "show", "team-b", "--json"))["issuing_cas"][0]
    result = _revoke(home_cli, "team-b", "cessationOfOperation")
    assert result.exit_code == 0, result.stderr
    assert "has no issuing CA now: privca rotate issuing --issuer team-b" in result.stderr
    shown = json.loads(_ok(home_cli, "issuer", "show", "team-b", "--json"))
    assert shown["issuing_ca"] is None
    assert [(r["serial"], r["reason"]) for r in shown["revoked_cas"]] == [
        (first, "cessationOfOperation")
    ]
    assert f"revoked:     {first} (cessationOfOperation, " in _ok(
        home_cli, "issuer", "show", "team-b"
    )
    refused = home_cli(
        "issue", "x.b.corp.internal", "--issuer", "team-b", "--out", str(tmp_path / "x"),
        "--passphrase-file", str(home_cli.passphrase_file),
    )  # fmt: skip
    assert_user_error(refused, "no active issuing CA")
    assert not (tmp_path / "x" / "x.b.corp.internal.crt").exists()
    # Everything else goes on: the default issuer, every CRL, the root's.
    _with_key(home_cli, "crl")
    _with_key(home_cli, "crl", "--root")

    _with_key(home_cli, "rotate", "issuing", "--issuer", "team-b")
    leaf = _issue_from(home_cli, "x.b.corp.internal", "team-b", tmp_path / "x")
    assert _ok(home_cli, "verify", str(leaf)).startswith(f"{leaf}: OK")


def _issue_from(cli: Cli, name: str, issuer: str, out: Path) -> Path:
    _with_key(cli, "issue", name, "--issuer", issuer, "--out", str(out))
    return out / f"{name}.crt"


def test_the_default_issuers_current_ca_is_replaced_before_it_is_revoked(
    home_cli: Cli, tmp_path: Path
) -> None:
    """Every command and `privca serve` sign with it by default (CRLs and OCSP too)."""
    before = tree_snapshot(home_cli.home)
    for target in ("main", _serials(home_cli)[0]):
        refused = _revoke(home_cli, target, "caCompromise")
        assert_user_error(refused, "replace it first (privca rotate issuing)")
    assert tree_snapshot(home_cli.home) == before


def test_with_the_root_key_offline_the_next_crl_publishes_the_revocation(
    rotated: tuple[Cli, Path, str], tmp_path: Path
) -> None:
    cli, old_leaf, old_ca = rotated
    root_key = cli.home / "private" / "root.key"
    shutil.move(root_key, tmp_path / "root.key")  # to the safe, as the README advises
    result = _revoke(cli, old_ca, "keyCompromise")
    assert result.exit_code == 0, result.stderr
    root_serial = _root_serial(cli)
    assert f"the key of root {root_serial} is not here" in result.stderr
    published = cli.home / "crl" / f"{root_serial}.crl"
    crl = x509.load_der_x509_crl(published.read_bytes())
    assert crl.get_revoked_certificate_by_serial_number(int(old_ca, 16)) is None

    _with_key(cli, "crl")  # root key away: the issuing CAs' CRLs only
    crl = x509.load_der_x509_crl(published.read_bytes())
    assert crl.get_revoked_certificate_by_serial_number(int(old_ca, 16)) is None
    shutil.move(tmp_path / "root.key", root_key)  # back for the root's business
    # Its CRL is not half-way through its life: the revocation alone makes it due.
    _with_key(cli, "crl")
    crl = x509.load_der_x509_crl(published.read_bytes())
    assert crl.get_revoked_certificate_by_serial_number(int(old_ca, 16)) is not None
    assert "certificate revoked" in _crl_check_all(cli, old_leaf)


@pytest.mark.parametrize(
    ("target", "reason", "fragment"),
    [
        pytest.param("root", "caCompromise", "only issuing CAs are revoked", id="root"),
        pytest.param("ffff", "caCompromise", "no CA with serial", id="unknown"),
        pytest.param("x\x1b[2Jy", "caCompromise", "no CA with serial", id="hostile"),
        pytest.param("f" * 100_000, "caCompromise", "no CA with serial", id="huge"),
        pytest.param("main", "unspecified", "Invalid value for '--reason'", id="unspecified"),
        pytest.param("main", "removeFromCRL", "Invalid value for '--reason'", id="bad-reason"),
    ],
)
def test_refusals_write_nothing(home_cli: Cli, target: str, reason: str, fragment: str) -> None:
    before = tree_snapshot(home_cli.home)
    result = _revoke(home_cli, target, reason)
    assert_user_error(result, fragment)
    assert "\x1b" not in result.stderr
    assert len(result.stderr) < 1000  # a huge argument is shown cut, not whole
    assert tree_snapshot(home_cli.home) == before


def test_a_second_revocation_is_refused_and_the_first_stays(
    rotated: tuple[Cli, Path, str],
) -> None:
    cli, _leaf, old_ca = rotated
    _with_key(cli, "issuer", "revoke", old_ca, "--reason", "superseded")
    before = tree_snapshot(cli.home)
    again = _revoke(cli, old_ca, "caCompromise")
    assert_user_error(again, "was revoked on")
    assert tree_snapshot(cli.home) == before
    audit = _ok(cli, "audit", "log", "--json")
    entries = [e for e in json.loads(audit) if e["action"] == "issuing-ca-revoked"]
    assert [(e["serial"], e["detail"]["reason"]) for e in entries] == [(old_ca, "superseded")]
    assert _ok(cli, "audit", "verify")


def test_a_wrong_passphrase_records_nothing(rotated: tuple[Cli, Path, str], tmp_path: Path) -> None:
    cli, _leaf, old_ca = rotated
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-passphrase-at-all\n")
    wrong.chmod(0o600)
    before = tree_snapshot(cli.home)
    result = cli(
        "issuer", "revoke", old_ca, "--reason", "caCompromise", "--passphrase-file", str(wrong)
    )
    assert result.exit_code == 2, result.stderr
    assert tree_snapshot(cli.home) == before  # the database too: nothing recorded


@pytest.mark.parametrize(
    ("tamper", "fragment"),
    [
        pytest.param(
            "UPDATE authorities SET revoked_at = NULL, revocation_reason = NULL, active = 1 "
            "WHERE revoked_at IS NOT NULL",
            "the revocation was undone",
            id="undone",
        ),
        pytest.param(
            "UPDATE authorities SET revocation_reason = 'superseded' WHERE revoked_at IS NOT NULL",
            "the row was altered",
            id="milder",
        ),
        pytest.param(
            "UPDATE authorities SET revoked_at = '2036-01-01 00:00:00.000000' "
            "WHERE revoked_at IS NOT NULL",
            "the row was altered",
            id="moved",
        ),
        pytest.param(
            "UPDATE authorities SET active = 1 WHERE revoked_at IS NOT NULL",
            "makes it active again",
            id="reactivated",
        ),
        pytest.param(
            "UPDATE authorities SET revoked_at = '2026-01-01 00:00:00', "
            "revocation_reason = 'caCompromise' WHERE role = 'root'",
            "no entry revoked it",
            id="by-hand",
        ),
    ],
)
def test_audit_verify_finds_a_ca_revocation_altered_in_the_store(
    rotated: tuple[Cli, Path, str], tamper: str, fragment: str
) -> None:
    cli, _leaf, old_ca = rotated
    _with_key(cli, "issuer", "revoke", old_ca, "--reason", "caCompromise")
    assert cli("audit", "verify").exit_code == 0
    with sqlite3.connect(cli.home / "privca.db") as connection:
        connection.execute(tamper)
    verdict = cli("audit", "verify")
    assert verdict.exit_code == 1, verdict.output + verdict.stderr
    assert fragment in verdict.output + verdict.stderr


def test_a_reactivated_revoked_ca_still_signs_nothing(
    rotated: tuple[Cli, Path, str], tmp_path: Path
) -> None:
    cli, _leaf, old_ca = rotated
    _with_key(cli, "issuer", "revoke", old_ca, "--reason", "caCompromise")
    with sqlite3.connect(cli.home / "privca.db") as connection:  # by hand, behind privca
        connection.execute(
            "UPDATE authorities SET active = (revoked_at IS NOT NULL) WHERE role = 'issuing'"
        )
    refused = cli(
        "issue", "y.corp.internal", "--out", str(tmp_path / "y"),
        "--passphrase-file", str(cli.passphrase_file),
    )  # fmt: skip
    assert_user_error(refused, "no active issuing CA")
    assert not (tmp_path / "y").exists()


def test_a_reason_edited_in_the_store_is_one_line_not_a_crash(
    rotated: tuple[Cli, Path, str],
) -> None:
    cli, _leaf, old_ca = rotated
    _with_key(cli, "issuer", "revoke", old_ca, "--reason", "caCompromise")
    with sqlite3.connect(cli.home / "privca.db") as connection:
        connection.execute(
            "UPDATE authorities SET revocation_reason = 'x\x1b[31m' WHERE revoked_at IS NOT NULL"
        )
    result = cli("crl", "--root", "--passphrase-file", str(cli.passphrase_file))
    assert result.exit_code == 3, result.output + result.stderr
    assert "privca audit verify" in result.stderr and "Traceback" not in result.stderr
    assert "\x1b" not in result.stderr


def test_crl_files_that_cannot_be_written_say_the_revocation_is_recorded(
    rotated: tuple[Cli, Path, str],
) -> None:
    cli, old_leaf, old_ca = rotated
    blocker = cli.home / "crl" / "root.pem"
    blocker.unlink()
    blocker.mkdir()  # a file the CRL must replace cannot be
    result = _revoke(cli, old_ca, "caCompromise")
    assert result.exit_code == 3, result.stderr
    assert f"the revocation of {old_ca} is recorded" in result.stderr
    assert "privca crl --root" in result.stderr
    blocker.rmdir()
    _with_key(cli, "crl", "--root")
    _with_key(cli, "crl")
    assert "certificate revoked" in _crl_check_all(cli, old_leaf)


def test_two_revocations_at_once_are_both_on_the_root_crl(home_cli: Cli) -> None:
    for name in ("team-a", "team-b"):
        _with_key(home_cli, "issuer", "create", name, "--permit", f"{name[-1]}.corp.internal")
    serials = [
        json.loads(_ok(home_cli, "issuer", "show", name, "--json"))["issuing_ca"]["serial"]
        for name in ("team-a", "team-b")
    ]
    env = {**os.environ, "PRIVCA_HOME": str(home_cli.home)}
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "privca",
                "issuer",
                "revoke",
                serial,
                "--reason",
                "caCompromise",
                "--passphrase-file",
                str(home_cli.passphrase_file),
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for serial in serials
    ]
    for process in processes:
        _out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
    crl = x509.load_der_x509_crl((home_cli.home / "crl" / "root.crl").read_bytes())
    for serial in serials:
        assert crl.get_revoked_certificate_by_serial_number(int(serial, 16)) is not None


def test_check_flags_a_revocation_not_yet_published_and_certificates_left_under_it(
    rotated: tuple[Cli, Path, str], tmp_path: Path
) -> None:
    cli, _leaf, old_ca = rotated
    _with_key(cli, "crl")
    assert cli("check", "--format", "nagios").exit_code == 0
    root_key = cli.home / "private" / "root.key"
    shutil.move(root_key, tmp_path / "root.key")
    _with_key(cli, "issuer", "revoke", old_ca, "--reason", "caCompromise")

    nagios = cli("check", "--format", "nagios")
    assert nagios.exit_code == 2 and "does not list it yet" in nagios.output, nagios.output
    items = json.loads(cli("check", "--json").output)["items"]
    revocation = [(i["severity"], i["serial"]) for i in items if i["kind"] == "revocation"]
    assert revocation == [("critical", old_ca), ("warning", old_ca)]

    shutil.move(tmp_path / "root.key", root_key)
    _with_key(cli, "crl", "--root")
    items = json.loads(cli("check", "--json").output)["items"]
    revocation = [(i["severity"], i["detail"]) for i in items if i["kind"] == "revocation"]
    assert [s for s, _ in revocation] == ["warning"] and "1 valid certificate(s)" in revocation[0][
        1
    ]


def test_during_a_rollover_the_old_root_lists_it_and_after_it_nothing_is_revoked(
    home_cli: Cli,
) -> None:
    _with_key(home_cli, "issuer", "create", "team-a", "--permit", "a.corp.internal")
    old_root = _root_serial(home_cli)
    old_main = _serials(home_cli)[0]
    old_team_a = json.loads(_ok(home_cli, "issuer", "show", "team-a", "--json"))["issuing_cas"][0]
    _with_key(home_cli, "rotate", "root", "--new-key")
    # The old hierarchy is still trusted: the old root's CRL lists its revoked CA.
    _with_key(home_cli, "issuer", "revoke", old_main, "--reason", "caCompromise")
    crl = x509.load_der_x509_crl((home_cli.home / "crl" / f"{old_root}.crl").read_bytes())
    assert crl.get_revoked_certificate_by_serial_number(int(old_main, 16)) is not None
    assert crl.is_signature_valid(
        x509.load_pem_x509_certificate(
            (home_cli.home / "certs" / "previous-root.crt").read_bytes()
        ).public_key()
    )

    _with_key(home_cli, "rotate", "root", "--retire-old", "--force")
    last = (home_cli.home / "crl" / f"{old_root}.crl").read_bytes()
    refused = _revoke(home_cli, old_team_a, "caCompromise")
    assert_user_error(refused, "is no longer trusted")
    # The old root's last CRL (valid until the old root expires) is left as it was.
    assert (home_cli.home / "crl" / f"{old_root}.crl").read_bytes() == last
    # An issuer whose current CA is gone is named as such, not as an unknown CA.
    _with_key(home_cli, "issuer", "create", "team-c", "--permit", "c.corp.internal")
    _with_key(home_cli, "issuer", "revoke", "team-c", "--reason", "cessationOfOperation")
    again = _revoke(home_cli, "team-c", "caCompromise")
    assert_user_error(again, "issuer 'team-c' has no current issuing CA")


def test_an_issuer_whose_ca_was_revoked_cannot_become_the_default(home_cli: Cli) -> None:
    _with_key(home_cli, "issuer", "create", "team-b", "--permit", "b.corp.internal")
    _with_key(home_cli, "issuer", "revoke", "team-b", "--reason", "cessationOfOperation")
    before = tree_snapshot(home_cli.home)
    refused = home_cli("issuer", "default", "team-b")
    assert_user_error(refused, "has no active issuing CA")
    assert tree_snapshot(home_cli.home) == before
    assert _with_key(home_cli, "crl")  # the default issuer still signs its CRL


def _destroy_key(cli: Cli, serial: str) -> Path:
    """Delete the key file of CA `serial`, as an operator does once it is revoked."""
    from privca.authority import CertificateAuthority
    from tests.conftest import PASSPHRASE

    with CertificateAuthority.open(cli.home, PASSPHRASE) as ca:
        path = ca.key_file(ca.authority_by_serial(serial))
    assert path is not None and path.exists()
    path.unlink()
    return path


def test_a_revoked_cas_key_destroyed_stops_no_other_crl_nor_check(
    rotated: tuple[Cli, Path, str],
) -> None:
    """Destroying the key of a revoked CA is what an operator should do: `privca crl`
    skips that CA's CRL with a warning and signs the others; `check` and /metrics stop
    watching the CRL nobody can renew (else it turned critical at its nextUpdate), while
    the other CAs' CRLs stay watched; doctor and backup verify find nothing wrong."""
    import datetime as dt

    from privca.authority import CertificateAuthority
    from privca.monitoring import collect, render_prometheus
    from tests.conftest import PASSPHRASE

    cli, _leaf, old_ca = rotated
    _with_key(cli, "crl")
    assert _revoke(cli, old_ca, "keyCompromise").exit_code == 0
    key = _destroy_key(cli, old_ca)
    current = _serials(cli)[-1]
    crl_dir = cli.home / "crl"
    old_crl = (crl_dir / f"{old_ca}.crl").read_bytes()
    before = x509.load_der_x509_crl((crl_dir / f"{current}.crl").read_bytes())

    done = cli("crl", "--passphrase-file", str(cli.passphrase_file))
    assert done.exit_code == 0, done.stderr
    assert f"privca: warning: no CRL of the revoked CA {old_ca}" in done.stderr
    assert str(key) not in done.stderr
    after = x509.load_der_x509_crl((crl_dir / f"{current}.crl").read_bytes())
    assert after.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number > (
        before.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    )
    assert (crl_dir / f"{old_ca}.crl").read_bytes() == old_crl  # left as it was signed
    _with_key(cli, "crl", "--root")  # the CRL that lists the revoked CA

    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=60)  # past every issuing CRL
    day = dt.timedelta(days=1)
    with CertificateAuthority.open(cli.home, PASSPHRASE) as ca:
        crls = [i for i in collect(ca, later, 30 * day, 7 * day).items if i.kind == "crl"]
        metrics = render_prometheus(ca, later)
    assert [(i.serial, i.severity) for i in crls if i.severity == "critical"] == [
        (current, "critical")
    ]
    assert old_ca not in {i.serial for i in crls}
    watched = [m for m in metrics.splitlines() if m.startswith("privca_crl_next_update")]
    assert any(current in m for m in watched) and not any(old_ca in m for m in watched)
    doctor = cli("doctor")
    assert doctor.exit_code == 0 and "critical" not in doctor.output, doctor.output
    assert _ok(cli, "backup", "--out", str(cli.home.parent / "b.tar.gz"))
    assert cli("backup", "verify", str(cli.home.parent / "b.tar.gz")).exit_code == 0


def test_an_active_cas_missing_key_still_stops_crl(rotated: tuple[Cli, Path, str]) -> None:
    cli, _leaf, _old_ca = rotated
    _destroy_key(cli, _serials(cli)[-1])
    before = tree_snapshot(cli.home / "crl")
    refused = cli("crl", "--passphrase-file", str(cli.passphrase_file))
    assert_user_error(refused, "does not exist", 3)
    assert tree_snapshot(cli.home / "crl") == before
