"""Tombstones (rows whose DER `tidy` dropped) are checked against the log too.

A tombstone keeps its issuer, profile and dates; lookups, CRLs and OCSP read them. Its
`issued` entry recorded the issuer and profile, and the `tidied` entry the cutoff it
tombstoned rows below: a row edited with sqlite3 behind privca's back must make the real
`privca audit verify` process fail (exit 1) naming its serial, and pass untouched.
"""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from privca._time import utcnow
from privca.authority import CertificateAuthority
from tests.audit.conftest import copy_home, query

# Past the three leaves of audited_home (730 days): tidy tombstones them.
TIDIED_AT = dt.timedelta(days=800)


def _privca(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRIVCA_")}
    return subprocess.run(
        [sys.executable, "-m", "privca", "--home", str(home), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


@pytest.fixture
def tidied_home(audited_home: Path, tmp_path: Path) -> Path:
    home = copy_home(audited_home, tmp_path / "tidied")
    with CertificateAuthority.open(home) as ca:
        assert ca.tidy(dt.timedelta(0), now=utcnow() + TIDIED_AT) >= 3
    return home


def _tombstone(database: Path) -> tuple[bytes, str]:
    """A tidied leaf's stored serial and its hex, as `audit verify` names it."""
    rows = query(
        database,
        "SELECT serial FROM certificates WHERE der IS NULL AND tidied_at IS NOT NULL "
        "AND profile != 'audit-signer' ORDER BY serial",
    )
    stored = rows[0][0]
    assert isinstance(stored, bytes), stored
    return stored, stored.hex().lstrip("0") or "0"


def _root_id(database: Path) -> int:
    [(found,)] = query(database, "SELECT id FROM authorities WHERE role = 'root'")
    assert isinstance(found, int)
    return found


def _far_future(_database: Path) -> int:
    """2099-01-01 in the store's microseconds: after the tidy's cutoff."""
    return int(dt.datetime(2099, 1, 1, tzinfo=dt.UTC).timestamp()) * 1_000_000


TAMPERINGS = [
    pytest.param("issuer_id", _root_id, "no longer has the issuer or profile", id="issuer"),
    pytest.param("profile", lambda _db: "client", "no longer has the issuer", id="profile"),
    pytest.param("not_after", _far_future, "but the tidy that dropped it", id="not-after"),
]


def test_an_untouched_tidied_store_passes(tidied_home: Path) -> None:
    database = tidied_home / "privca.db"
    assert query(database, "SELECT count(*) FROM certificates WHERE der IS NULL")[0][0] >= 3
    result = _privca(tidied_home, "audit", "verify")
    assert result.returncode == 0, result.stderr
    assert "audit log intact" in result.stderr


@pytest.mark.parametrize(("column", "value", "fragment"), TAMPERINGS)
def test_a_tombstone_edited_with_sqlite3_is_named(
    tidied_home: Path, column: str, value: object, fragment: str
) -> None:
    database = tidied_home / "privca.db"
    stored, serial = _tombstone(database)
    new = value(database)  # type: ignore[operator]
    with sqlite3.connect(database) as connection:
        changed = connection.execute(
            f"UPDATE certificates SET {column} = ? WHERE serial = ?", (new, stored)
        ).rowcount
    assert changed == 1
    result = _privca(tidied_home, "audit", "verify")
    assert result.returncode == 1, (result.stdout, result.stderr)
    [line] = result.stderr.splitlines()
    assert line.startswith("privca: audit log TAMPERED: "), line
    assert f"certificate {serial} (tidied)" in line and fragment in line, line
    assert "Traceback" not in result.stderr
