"""`privca issuer` and --issuer on issue, sign, renew and rotate issuing, in process (plus
one real `python -m privca` run): text and --json, refusals with one clear line and exit
2, hostile names never echoed raw, nothing written when refused."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import Cli, assert_user_error, openssl, tree_snapshot


def _create(cli: Cli, name: str, *args: str) -> dict:
    result = cli(
        "issuer", "create", name, *args, "--passphrase-file", str(cli.passphrase_file), "--json"
    )
    assert result.exit_code == 0, result.output + result.stderr
    return json.loads(result.output)


@pytest.fixture
def teams(home_cli: Cli) -> Cli:
    _create(home_cli, "team-a", "--permit", "a.corp.internal")
    _create(home_cli, "team-b", "--permit", "b.corp.internal", "--profile", "server")
    return home_cli


def test_create_list_show_in_text_and_json(home_cli: Cli) -> None:
    created = _create(home_cli, "team-a", "--permit", "a.corp.internal", "--permit", "10.1.0.0/16")
    assert created["name"] == "team-a" and created["permitted"] == [
        "a.corp.internal",
        "10.1.0.0/16",
    ]
    assert created["issuing_ca"]["subject"].startswith("CN=Example Internal CA team-a Issuing CA")
    listed = json.loads(home_cli("issuer", "list", "--json").output)
    assert [(i["name"], i["default"]) for i in listed] == [("main", True), ("team-a", False)]
    text = home_cli("issuer", "list").output
    assert "main *" in text and "a.corp.internal" in text
    shown = home_cli("issuer", "show", "team-a")
    assert shown.exit_code == 0 and "permitted:   a.corp.internal, 10.1.0.0/16" in shown.output
    assert json.loads(home_cli("issuer", "show", "team-a", "--json").output) == listed[1]


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        pytest.param(["team-c", "--permit", "example.com"], "not inside the root", id="outside"),
        pytest.param(["team-c", "--permit", "11.0.0.0/8"], "not inside the root", id="network"),
        pytest.param(["team-c", "--permit", "bad..name"], "empty label", id="bad-subtree"),
        pytest.param(["directory"], "reserved", id="reserved"),
        pytest.param(["server-client"], "reserved", id="profile-name"),
        pytest.param(["Team\x1b[2J"], "\\x1b", id="hostile"),
        pytest.param(["team-a"], "exists", id="taken"),
    ],
)
def test_bad_issuers_are_refused_and_nothing_is_written(
    teams: Cli, args: list[str], fragment: str
) -> None:
    before = tree_snapshot(teams.home)
    result = teams("issuer", "create", *args, "--passphrase-file", str(teams.passphrase_file))
    assert_user_error(result, fragment)
    assert "\x1b" not in result.stderr
    assert tree_snapshot(teams.home) == before  # not even the database changed


def test_unknown_issuers_are_refused(teams: Cli, tmp_path: Path) -> None:
    for command in (["issuer", "show", "x\x07y"], ["issuer", "disable", "nope"]):
        result = teams(*command)
        assert_user_error(result, "no issuer named")
        assert "\x07" not in result.stderr
    out = tmp_path / "out"
    result = teams(
        "issue", "x.a.corp.internal", "--issuer", "nope", "--out", str(out),
        "--passphrase-file", str(teams.passphrase_file),
    )  # fmt: skip
    assert_user_error(result, "no issuer named 'nope'")
    assert not out.exists()


def test_issue_sign_and_renew_take_an_issuer(teams: Cli, tmp_path: Path) -> None:
    secret = ["--passphrase-file", str(teams.passphrase_file)]
    out = tmp_path / "out"
    issued = teams(
        "issue", "web.a.corp.internal", "--issuer", "team-a", "--out", str(out), *secret, "--json"
    )
    assert issued.exit_code == 0, issued.stderr
    serial = json.loads(issued.output)["serial"]
    shown = json.loads(teams("show", serial, "--json").output)
    assert shown["issuer_name"] == "team-a"
    refused = teams(
        "issue", "web.b.corp.internal", "--issuer", "team-a", "--out", str(tmp_path / "no"), *secret
    )
    assert_user_error(refused, "outside the permitted DNS subtrees: a.corp.internal")
    assert not (tmp_path / "no").exists()
    # sign: a CSR for team-b's name, signed by team-b with its only profile.
    key, csr = tmp_path / "b.key", tmp_path / "b.csr"
    made = openssl(
        "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", str(key), "-out", str(csr), "-subj", "/CN=api.b.corp.internal",
        "-addext", "subjectAltName=DNS:api.b.corp.internal",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    wrong = teams("sign", str(csr), "--issuer", "team-b", "--out", str(tmp_path / "s"), *secret)
    assert_user_error(wrong, "does not issue profile 'server-client'")
    signed = teams(
        "sign", str(csr), "--issuer", "team-b", "--profile", "server", "--out",
        str(tmp_path / "s"), *secret, "--json",
    )  # fmt: skip
    assert signed.exit_code == 0, signed.stderr
    assert (
        json.loads(teams("show", json.loads(signed.output)[0]["serial"], "--json").output)[
            "issuer_name"
        ]
        == "team-b"
    )
    # renew keeps the issuer
    renewed = teams("renew", serial, "--out", str(out), *secret, "--json")
    assert renewed.exit_code == 0, renewed.stderr
    assert (
        json.loads(teams("show", json.loads(renewed.output)["serial"], "--json").output)[
            "issuer_name"
        ]
        == "team-a"
    )
    listing = teams("list")
    assert listing.output.splitlines()[0].split("\t")[-1] == "issuer"
    assert any(line.endswith("\tteam-a") for line in listing.output.splitlines())
    # Just issued, the leaves need no attention (a third of their lifetime is far off):
    # check names them in the textfile, which lists everything within --warn.
    exposition = teams("check", "--format", "prometheus", "--warn", "800d").output
    for name, issuer in (("web.a.corp.internal", "team-a"), ("api.b.corp.internal", "team-b")):
        assert re.search(
            f'name="{re.escape(name)}",issuer="[^"]*",issuer_name="{issuer}"', exposition
        )
    checked = json.loads(teams("check", "--format", "json", "--warn", "800d").output)
    cas = {i["issuer_name"] for i in checked["items"] if i["kind"] == "ca"}
    assert {"main", "team-a", "team-b"} <= cas


def test_show_refuses_a_name_two_issuers_hold_as_revoke_does(teams: Cli, tmp_path: Path) -> None:
    """show picked one of two valid certificates silently, while revoke and renew refuse
    the name as ambiguous: an operator read the wrong one."""
    secret = ["--passphrase-file", str(teams.passphrase_file)]
    serials = []
    for issuer in ("team-a", "main"):
        issued = teams("issue", "both.a.corp.internal", "--issuer", issuer, "--force",
                       "--out", str(tmp_path / issuer), *secret, "--json")  # fmt: skip
        assert issued.exit_code == 0, issued.stderr
        serials.append(json.loads(issued.output)["serial"])
    shown = teams("show", "both.a.corp.internal")
    assert_user_error(shown, "matches 2 valid certificates")
    assert all(serial in shown.stderr for serial in serials)
    assert_user_error(teams("revoke", "both.a.corp.internal"), "matches 2 valid certificates")
    assert teams("show", serials[0], "--json").exit_code == 0


def test_the_openssl_index_holds_one_cas_certificates(teams: Cli, tmp_path: Path) -> None:
    """One index held every CA's certificates: `openssl ocsp -index` over it, run for
    team-a's CA, answered "good" for serials only main had issued."""
    secret = ["--passphrase-file", str(teams.passphrase_file)]
    serials = {}
    for issuer, name in (("team-a", "x.a.corp.internal"), ("main", "x.corp.internal")):
        issued = teams("issue", name, "--issuer", issuer, "--out", str(tmp_path / issuer),
                       *secret, "--json")  # fmt: skip
        assert issued.exit_code == 0, issued.stderr
        serials[issuer] = json.loads(issued.output)["serial"].upper()

    def listed(*extra: str) -> str:
        result = teams("export", "openssl-index", *extra)
        assert result.exit_code == 0, result.stderr
        return result.stdout

    team_a = listed("--ca", "team-a")
    assert serials["team-a"] in team_a and serials["main"] not in team_a
    main = listed()  # the default issuer's CA
    assert serials["main"] in main and serials["team-a"] not in main
    assert_user_error(teams("export", "openssl-index", "--ca", "nope"), "no CA 'nope'")
    assert_user_error(teams("export", "root", "--ca", "team-a"), "--ca goes with")


def test_disable_enable_default(teams: Cli, tmp_path: Path) -> None:
    secret = ["--passphrase-file", str(teams.passphrase_file)]
    assert teams("issuer", "disable", "team-a").exit_code == 0
    refused = teams(
        "issue", "w.a.corp.internal", "--issuer", "team-a", "--out", str(tmp_path), *secret
    )
    assert_user_error(refused, "issuer 'team-a' is disabled")
    assert "privca issuer enable team-a" in refused.stderr
    assert_user_error(teams("issuer", "default", "team-a"), "is disabled")
    assert_user_error(teams("issuer", "disable", "main"), "default issuer")
    assert teams("issuer", "enable", "team-a").exit_code == 0
    assert teams("issuer", "default", "team-a").exit_code == 0
    issued = teams("issue", "d.a.corp.internal", "--out", str(tmp_path), *secret, "--json")
    assert issued.exit_code == 0, issued.stderr
    serial = json.loads(issued.output)["serial"]
    assert json.loads(teams("show", serial, "--json").output)["issuer_name"] == "team-a"


def test_rotate_issuing_of_one_issuer_keeps_the_others(teams: Cli) -> None:
    before = {
        i["name"]: i["issuing_ca"]["serial"]
        for i in json.loads(teams("issuer", "list", "--json").output)
    }
    chain = (teams.home / "certs" / "chain.pem").read_bytes()
    rotated = teams(
        "rotate", "issuing", "--issuer", "team-b", "--passphrase-file", str(teams.passphrase_file),
        "--json",
    )  # fmt: skip
    assert rotated.exit_code == 0, rotated.stderr
    assert json.loads(rotated.output)["issuer"] == "team-b"
    after = {
        i["name"]: i["issuing_ca"]["serial"]
        for i in json.loads(teams("issuer", "list", "--json").output)
    }
    assert after["team-b"] != before["team-b"]
    assert (after["main"], after["team-a"]) == (before["main"], before["team-a"])
    assert (teams.home / "certs" / "chain.pem").read_bytes() == chain  # the default's files
    shown = json.loads(teams("issuer", "show", "team-b", "--json").output)
    assert shown["permitted"] == ["b.corp.internal"] and len(shown["issuing_cas"]) == 2


def test_eab_key_bound_to_an_issuer(teams: Cli) -> None:
    made = teams("acme", "eab", "create", "--issuer", "team-a", "--json")
    assert made.exit_code == 0, made.stderr
    assert json.loads(made.output)["issuer"] == "team-a"
    assert json.loads(teams("acme", "eab", "list", "--json").output)[0]["issuer"] == "team-a"
    assert_user_error(teams("acme", "eab", "create", "--issuer", "nope"), "no issuer named")


def test_python_m_privca_issuer_list(teams: Cli) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "privca", "--home", str(teams.home), "issuer", "list", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert [i["name"] for i in json.loads(done.stdout)] == ["main", "team-a", "team-b"]
