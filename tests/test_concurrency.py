"""Concurrent `privca issue` from 8 processes yields unique serials and no lost record and no
'database is locked' error.

Eight worker threads each run `python -m privca issue` several times in sequence, so eight
real OS processes issue against one CA home at any moment. Then the inventory must hold
exactly one issued record per certificate written, with identical DER, and no intent left
pending. Once on the default SQLite store, once on PostgreSQL.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509

from privca._time import utcnow
from privca.authority import CertificateAuthority
from privca.x509.encoding import der_certificate
from tests.conftest import PASSPHRASE
from tests.pg import postgres_cluster, postgres_url  # noqa: F401  (fixtures)

WORKERS = 8


@dataclass
class Run:
    worker: int
    names: list[str]
    returncode: int
    stdout: str
    stderr: str


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRIVCA_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def issue_concurrently(
    home: Path, out_root: Path, passphrase_file: Path, per_worker: int
) -> list[Run]:
    """WORKERS threads, each running `per_worker` `privca issue` processes one after another."""
    barrier = threading.Barrier(WORKERS)
    runs: list[Run] = []
    lock = threading.Lock()
    env = _env()

    def worker(index: int) -> None:
        out = out_root / f"worker{index}"
        barrier.wait()  # the first eight processes start together
        for round_ in range(per_worker):
            name = f"svc{index}-{round_}.corp.internal"
            command = [
                sys.executable, "-m", "privca", "--home", str(home),
                "issue", name, "--out", str(out),
                "--passphrase-file", str(passphrase_file), "--json",
            ]  # fmt: skip
            process = subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
            )
            try:
                stdout, stderr = process.communicate(timeout=120)
            except subprocess.TimeoutExpired:
                process.kill()
                stdout, stderr = process.communicate()
            with lock:
                runs.append(Run(index, [name], process.returncode, stdout, stderr))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(WORKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    assert not any(thread.is_alive() for thread in threads), "a worker hung"
    return runs


def check_inventory(home: Path, out_root: Path, runs: list[Run], expected: int) -> None:
    failures = [r for r in runs if r.returncode != 0]
    assert not failures, "\n".join(
        f"worker {r.worker} {r.names} exit {r.returncode}: {r.stderr}" for r in failures
    )
    for run in runs:
        assert "locked" not in run.stderr.lower(), run.stderr
        assert "Traceback" not in run.stderr, run.stderr
    assert len(runs) == expected

    reported = [int(json.loads(r.stdout)["serial"], 16) for r in runs]
    assert len(set(reported)) == expected, "a serial was handed out twice"

    with CertificateAuthority.open(home, PASSPHRASE) as ca:
        records = ca.inventory.find(now=utcnow(), include_unsigned=True)
        by_serial = {record.serial: record for record in records}
        assert len(records) == expected, "lost or extra records"
        assert len(by_serial) == expected, "duplicate serials in the inventory"
        statuses = {record.status for record in records}
        assert statuses == {"issued"}, f"records left unfinished: {statuses}"
        assert set(reported) == set(by_serial)

        written = sorted(out_root.glob("worker*/*.crt"))
        assert len(written) == expected
        for path in written:
            certificate = x509.load_pem_x509_certificate(path.read_bytes())
            record = by_serial.get(certificate.serial_number)
            assert record is not None, f"{path} is not in the inventory"
            assert record.der == der_certificate(certificate), f"{path} differs from its record"
            assert path.name.removesuffix(".crt") in record.names


@pytest.mark.slow
def test_concurrent_issue_on_sqlite(
    make_ca: Callable[..., CertificateAuthority], passphrase_file: Path, tmp_path: Path
) -> None:
    per_worker = 5
    ca = make_ca()
    home = ca.home.root
    ca.close()
    runs = issue_concurrently(home, tmp_path / "out", passphrase_file, per_worker)
    check_inventory(home, tmp_path / "out", runs, WORKERS * per_worker)


@pytest.mark.slow
@pytest.mark.postgres
def test_concurrent_issue_on_postgresql(
    make_ca: Callable[..., CertificateAuthority],
    passphrase_file: Path,
    tmp_path: Path,
    postgres_url: str,  # noqa: F811
) -> None:
    per_worker = 2
    ca = make_ca(store_url=postgres_url)
    home = ca.home.root
    ca.close()
    assert not (home / "privca.db").exists()
    runs = issue_concurrently(home, tmp_path / "out", passphrase_file, per_worker)
    check_inventory(home, tmp_path / "out", runs, WORKERS * per_worker)


@pytest.mark.postgres
def test_key_compromise_reported_through_every_certificate_at_once_on_postgresql(
    make_ca: Callable[..., CertificateAuthority],
    postgres_url: str,  # noqa: F811
) -> None:
    """keyCompromise revokes every certificate of the key. Reported through each of them
    at once, each transaction held its own row and waited for the others': PostgreSQL
    broke the deadlock by failing all but one ("database is unavailable", exit 3)."""
    from privca.audit.verify import verify_audit
    from privca.keys.types import KeyType
    from privca.x509.build import build_csr
    from privca.x509.csr import inspect_csr
    from privca.x509.names import parse_names

    ca = make_ca(store_url=postgres_url)
    key = KeyType.EC_P256.generate()
    serials = [
        ca.sign_requests([inspect_csr(build_csr(key, parse_names([f"h{n}.corp.internal"])))])[
            0
        ].serial
        for n in range(8)
    ]
    home = ca.home.root
    barrier = threading.Barrier(len(serials))
    failures: list[BaseException] = []

    def report(serial: int) -> None:
        with CertificateAuthority.open(home, PASSPHRASE) as mine:
            barrier.wait(timeout=30)
            try:
                mine.revoke(format(serial, "x"), "keyCompromise")
            except BaseException as exc:
                failures.append(exc)

    threads = [threading.Thread(target=report, args=(s,)) for s in serials]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert failures == []
    for serial in serials:
        record = ca.inventory.get(serial)
        assert record is not None and record.revocation_reason == "keyCompromise"
    assert verify_audit(ca).intact, verify_audit(ca).problem
