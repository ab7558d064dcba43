"""Four processes issuing at once keep the audit chain linear: no fork, no gap, one issue
entry per certificate, on SQLite and on PostgreSQL."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from privca.audit.verify import verify_audit
from privca.authority import CertificateAuthority
from tests.conftest import PASSPHRASE
from tests.pg import postgres_cluster, postgres_url  # noqa: F401  (fixtures)

PROCESSES = 4
PER_PROCESS = 12

WORKER = """
import sys
from privca.authority import CertificateAuthority
home, tag, count, secret = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
with CertificateAuthority.open(home, open(secret, "rb").read()) as ca:
    for i in range(count):
        ca.issue([f"w{tag}-{i}.corp.internal"])
"""


def _issue_from_processes(home: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRIVCA_")}
    secret = home.parent / f"{home.name}.passphrase"
    secret.write_bytes(PASSPHRASE)
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(home), str(index), str(PER_PROCESS), str(secret)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        for index in range(PROCESSES)
    ]
    for process in processes:
        _out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err.decode()


def _check_linear(ca: CertificateAuthority) -> None:
    with ca.inventory.audit_snapshot() as snapshot:
        entries = list(snapshot.entries())
    assert [e.seq for e in entries] == list(range(1, len(entries) + 1))  # no gap
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(entries))
    # Each hash covers the entry before (its prev is that row's hash, migration 0012): an
    # entry chained to another predecessor (a fork) would not recompute.
    assert all(e.computed_hash() == e.hash for e in entries)
    assert len({e.hash for e in entries}) == len(entries)
    issued = [e for e in entries if e.action == "issued" and e.serial]
    names = {n for e in issued for n in e.details.get("names", [])}
    expected = {f"w{p}-{i}.corp.internal" for p in range(PROCESSES) for i in range(PER_PROCESS)}
    assert expected <= names
    verdict = verify_audit(ca)
    assert verdict.intact, verdict.problem


def test_four_processes_on_sqlite(make_ca: Callable[..., CertificateAuthority]) -> None:
    ca = make_ca()
    _issue_from_processes(ca.home.root)
    _check_linear(ca)


@pytest.mark.postgres
def test_four_processes_on_postgresql(
    make_ca: Callable[..., CertificateAuthority],
    postgres_url: str,  # noqa: F811
) -> None:
    ca = make_ca(store_url=postgres_url)
    _issue_from_processes(ca.home.root)
    _check_linear(ca)
