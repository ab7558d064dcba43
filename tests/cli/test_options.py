"""Options do what their help says: --days, --key-type, --fraction."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import Cli, assert_user_error


def test_days_help_says_what_happens(run_cli: Cli) -> None:
    for command in ("issue", "sign", "renew"):
        text = " ".join(run_cli(command, "--help").stdout.split())
        assert "max_days (825 unless privca.toml says otherwise) is refused" in text, command
        assert "capped" not in text


def test_key_types_offered_for_services_are_the_policys(run_cli: Cli) -> None:
    from privca.policy import DEFAULT_LEAF_KEY_TYPES

    offered = {k.value for k in DEFAULT_LEAF_KEY_TYPES}
    for command in ("issue", "csr", "renew"):
        text = run_cli(command, "--help").stdout
        assert "ed25519" not in text, command
        assert all(k in text for k in offered), command
    assert "ed25519" in run_cli("init", "--help").stdout  # CA keys may be Ed25519


def test_csr_refuses_ed25519_as_usage(run_cli: Cli, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run_cli("csr", "a.corp.internal", "--key-type", "ed25519", "--out", str(out))
    assert_user_error(result, "is not one of")
    assert not out.exists()


@pytest.fixture
def issued_cert(home_cli: Cli, tmp_path: Path) -> Path:
    out = tmp_path / "certs"
    result = home_cli(
        "issue", "db.corp.internal", "--out", str(out),
        "--passphrase-file", str(home_cli.passphrase_file),
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    return out / "db.corp.internal.crt"


@pytest.mark.parametrize(
    ("fraction", "code"),
    [("1/1", 0), ("1", 0), ("1/3", 1), ("0.999", 1), ("1/1000", 1)],
    ids=lambda v: str(v),
)
def test_fraction_up_to_one_is_accepted(
    home_cli: Cli, issued_cert: Path, fraction: str, code: int
) -> None:
    result = home_cli("needs-renewal", str(issued_cert), "--fraction", fraction, "--json")
    assert result.exit_code == code, result.stdout + result.stderr
    assert json.loads(result.stdout)["due"] is (code == 0)


@pytest.mark.parametrize(
    ("fraction", "fragment"),
    [
        ("0", "more than 0 and at most 1"),
        ("0/1", "more than 0 and at most 1"),
        ("3/2", "more than 0 and at most 1"),
        ("-1/3", "more than 0 and at most 1"),
        ("1/0", "not a fraction"),
        ("half", "not a fraction"),
    ],
    ids=lambda v: str(v),
)
def test_fraction_out_of_range_says_the_range(
    home_cli: Cli, issued_cert: Path, fraction: str, fragment: str
) -> None:
    result = home_cli("needs-renewal", str(issued_cert), "--fraction", fraction)
    assert_user_error(result, fragment)
