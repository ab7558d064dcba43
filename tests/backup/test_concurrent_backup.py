"""A backup taken while 4 processes issue certificates restores to a store whose every
certificate verifies (with openssl) and whose count matches the manifest."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from privca.store.schema import certificates
from tests.backup.conftest import manifest_of
from tests.conftest import PASSPHRASE, Cli, openssl

WORKERS = 4
MAX_PER_WORKER = 400

# Issues until the stop file appears: both backups are taken while all four still issue.
WORKER = """
import os, sys
from privca.authority import CertificateAuthority
ca = CertificateAuthority.open(sys.argv[1], sys.argv[2].encode())
for i in range(int(sys.argv[3])):
    if os.path.exists(sys.argv[5]) and i >= 5:
        break
    issued = ca.issue([f"w{sys.argv[4]}-{i}.corp.internal"])
    print(format(issued.serial, "x"), flush=True)
ca.close()
"""


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("PRIVCA_")}


def _signed_count(database: Path) -> int:
    with sqlite3.connect(database, timeout=60) as connection:
        return int(
            connection.execute(
                "SELECT count(*) FROM certificates WHERE der IS NOT NULL"
            ).fetchone()[0]
        )


def test_backup_during_issuance_restores_consistently(
    run_cli: Cli, home: Path, tmp_path: Path
) -> None:
    stop = tmp_path / "stop"
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                WORKER,
                str(home),
                PASSPHRASE.decode(),
                str(MAX_PER_WORKER),
                str(n),
                str(stop),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(),
        )
        for n in range(WORKERS)
    ]
    try:
        deadline = time.monotonic() + 120
        while _signed_count(home / "privca.db") < 2 + 8 and time.monotonic() < deadline:
            time.sleep(0.05)
        archives = []
        for n in range(2):  # two backups while the workers run, as separate processes
            out = tmp_path / f"during{n}.tar.gz"
            backup = subprocess.run(
                [sys.executable, "-m", "privca", "--home", str(home), "backup", "--out", str(out)],
                capture_output=True,
                text=True,
                timeout=120,
                env=_env(),
            )
            assert backup.returncode == 0, backup.stderr
            archives.append(out)
        stop.touch()
        outputs = [worker.communicate(timeout=300) for worker in workers]
    finally:
        for worker in workers:
            worker.kill()
    assert all(worker.returncode == 0 for worker in workers), outputs
    issued = {line for out, _ in outputs for line in out.split()}
    assert all(len(out.split()) < MAX_PER_WORKER for out, _ in outputs), "stopped early"
    final = _signed_count(home / "privca.db")
    assert final == 2 + len(issued)

    for n, archive in enumerate(archives):
        expected = manifest_of(archive)["summary"]["certificates"]  # type: ignore[index]
        assert 2 + 8 <= expected < final, "the backup was not taken during issuance"
        target = tmp_path / f"restored{n}"
        result = run_cli("restore", str(archive), "--home", str(target), "--json")
        assert result.exit_code == 0, result.stderr
        assert json.loads(result.stdout)["summary"]["certificates"] == expected
        assert _signed_count(target / "privca.db") == expected
        _verify_all_with_openssl(target, tmp_path / f"certs{n}", expected)
        verify = run_cli("backup", "verify", str(archive))
        assert verify.exit_code == 0, verify.stderr


def _verify_all_with_openssl(home: Path, directory: Path, expected: int) -> None:
    directory.mkdir()
    # Through the table's column types: the store keeps DER deflated (store/columns.py).
    engine = sa.create_engine(f"sqlite:///{home / 'privca.db'}")
    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(certificates.c.serial, certificates.c.der).where(
                certificates.c.der.is_not(None)
            )
        ).all()
    engine.dispose()
    files = []
    for serial, der in rows:
        path = directory / f"{serial}.pem"
        path.write_bytes(x509.load_der_x509_certificate(der).public_bytes(Encoding.PEM))
        files.append(str(path))
    assert len(files) == expected
    result = openssl(
        "verify",
        "-CAfile",
        str(home / "certs" / "root.crt"),
        "-untrusted",
        str(home / "certs" / "issuing.crt"),
        *files,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count(": OK") == expected
