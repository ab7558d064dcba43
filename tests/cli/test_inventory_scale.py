"""privca list pages and streams (--limit, --after, --json, --jsonl); privca tidy keeps
tombstones of what expired long ago; bad input is exit 2 with a hint."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from privca._time import utcnow
from privca.authority import CertificateAuthority
from tests.conftest import PASSPHRASE, Cli, assert_user_error, tree_snapshot


@pytest.fixture
def inventory(run_cli: Cli) -> Cli:
    """Seven valid certificates, one revoked, one that expired 200 days ago (signed then:
    tidy believes a certificate's own notAfter, not an edited row)."""
    long_ago = utcnow() - dt.timedelta(days=300)
    ca = CertificateAuthority.init(
        run_cli.home, "Example Internal CA", passphrase=PASSPHRASE, now=long_ago
    )
    try:
        for i in range(7):
            ca.issue([f"h{i}.corp.internal"], days=10 + i)
        ca.issue(["revoked.corp.internal"], days=40)
        ca.revoke("revoked.corp.internal", "keyCompromise")
        ca.issue(["gone.corp.internal"], days=100, now=long_ago)
    finally:
        ca.close()
    return run_cli


def test_json_is_the_same_array_as_before(inventory: Cli) -> None:
    text = inventory("list", "--json").output
    documents = json.loads(text)
    assert len(documents) == 9
    assert text == json.dumps(documents, indent=2) + "\n"  # byte for byte the old output


def test_an_empty_json_list_is_an_empty_array(home_cli: Cli) -> None:
    assert json.loads(home_cli("list", "--json").output) == []


def test_jsonl_is_one_object_per_line(inventory: Cli) -> None:
    lines = inventory("list", "--jsonl").output.splitlines()
    assert [json.loads(line) for line in lines] == json.loads(inventory("list", "--json").output)


@pytest.mark.parametrize("size", [1, 2, 4, 20], ids=lambda n: f"page-{n}")
def test_pages_with_limit_and_after_cover_the_list(inventory: Cli, size: int) -> None:
    everything = json.loads(inventory("list", "--json").output)
    paged: list[dict[str, object]] = []
    page = json.loads(inventory("list", "--json", "--limit", str(size)).output)
    while page:
        assert len(page) <= size
        paged += page
        after = str(page[-1]["serial"])
        page = json.loads(
            inventory("list", "--json", "--limit", str(size), "--after", after).output
        )
    assert paged == everything


def test_after_takes_a_serial_with_colons(inventory: Cli) -> None:
    [first, second, *_] = json.loads(inventory("list", "--json").output)
    serial = str(first["serial"])
    colons = ":".join(serial[i : i + 2] for i in range(0, len(serial), 2))
    [page] = json.loads(inventory("list", "--json", "--limit", "1", "--after", colons).output)
    assert page == second


def test_piped_table_is_unchanged(inventory: Cli) -> None:
    lines = inventory("list").output.splitlines()
    assert lines[0] == "serial\tnames\tprofile\tnot after\tdays\tstatus"
    assert len(lines) == 10 and lines[2].split("\t")[1] == "h0.corp.internal"
    assert len(inventory("list", "--limit", "3").output.splitlines()) == 4


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        pytest.param(["list", "--limit", "-1"], "negative", id="negative-limit"),
        pytest.param(["list", "--limit", "ten"], "not a valid integer", id="limit-not-a-number"),
        pytest.param(["list", "--after", "xyz"], "is not a serial", id="after-not-hex"),
        pytest.param(["list", "--after", ""], "is not a serial", id="after-empty"),
        pytest.param(["list", "--after", "a" * 41], "is not a serial", id="after-too-long"),
        pytest.param(["list", "--after", "\x1b[31mred"], "is not a serial", id="after-escape"),
        pytest.param(
            ["list", "--after", "abcdef"], "no certificate with serial", id="after-unknown"
        ),
        pytest.param(["list", "--json", "--jsonl"], "exclusive", id="json-and-jsonl"),
        pytest.param(["tidy", "--expired-for", "soon"], "not understood", id="tidy-bad-duration"),
        pytest.param(["tidy", "--expired-for", "-5d"], "not understood", id="tidy-negative"),
        pytest.param(["tidy", "--expired-for", "9" * 30 + "w"], "too long", id="tidy-overflow"),
        pytest.param(["tidy", "--expired-for", "5\u00a0d"], "not understood", id="tidy-nbsp"),
        pytest.param(
            ["tidy", "--expired-for", "\u0663d"], "not understood", id="tidy-arabic-digit"
        ),
        pytest.param(
            ["tidy", "--expired-for", "1\x1b[31md"], "not understood", id="tidy-escape-echoed"
        ),
        pytest.param(
            ["tidy", "--expired-for", "9" * 5000], "not understood", id="tidy-5000-digits"
        ),
    ],
)
def test_bad_input_is_exit_2(inventory: Cli, args: list[str], fragment: str) -> None:
    before = tree_snapshot(inventory.home)
    result = inventory(*args)
    assert_user_error(result, fragment)
    assert "\x1b" not in result.stderr  # a hostile --after is never echoed raw
    assert tree_snapshot(inventory.home) == before


def test_tidy_dry_run_then_tidy(inventory: Cli) -> None:
    listed = {d["names"][0] for d in json.loads(inventory("list", "--json").output)}
    assert "gone.corp.internal" in listed
    before = tree_snapshot(inventory.home)
    dry = json.loads(inventory("tidy", "--dry-run", "--json").output)
    assert dry == {"tidied": 0, "would_tidy": 1}
    assert tree_snapshot(inventory.home) == before
    assert json.loads(inventory("tidy", "--expired-for", "300d", "--json").output)["tidied"] == 0
    # The longest duration taken (100 years; longer is exit 2): nothing is that old.
    huge = json.loads(inventory("tidy", "--expired-for", "36525d", "--json").output)
    assert huge == {"tidied": 0, "would_tidy": 0}
    result = inventory("tidy")
    assert result.exit_code == 0 and "tidied 1 certificate(s)" in result.output
    after = [d["names"][0] for d in json.loads(inventory("list", "--json").output)]
    assert "gone.corp.internal" not in after and len(after) == 8
    assert_user_error(inventory("show", "gone.corp.internal"), "no certificate")
    # The revoked certificate has not expired: it stays, revoked, on the CRL.
    shown = json.loads(inventory("show", "revoked.corp.internal", "--json").output)
    assert shown["status"] == "revoked"
