"""`privca backup`, `backup verify` and `restore` at 10k and 100k certificates, against
`tar czf` of the same home (what a hand-made backup of a stopped CA costs) as baseline.

    python benchmarks/backup.py                  # 10000,100000 rows
    python benchmarks/backup.py --rows 10000 --rounds 5

The store is filled with real certificates signed by the CA (issued once, then copied
under new serials with SQL: the rows are what the backup copies, not how they were made).
`backup verify` checks every certificate's signature, so it is timed only on the real ones.
max RSS is the largest of any privca process so far (backup and restore stream the store).
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PASSPHRASE = b"benchmark passphrase"


def _privca(*args: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "privca", *args], check=True, capture_output=True)
    return time.perf_counter() - start


def _fill(home: Path, rows: int) -> None:
    with sqlite3.connect(home / "privca.db") as connection:
        template = connection.execute(
            "SELECT * FROM certificates WHERE der IS NOT NULL LIMIT 1"
        ).fetchone()
        columns = [c[1] for c in connection.execute("PRAGMA table_info(certificates)")]
        have = connection.execute("SELECT count(*) FROM certificates").fetchone()[0]
        serial = columns.index("serial")
        batch = []
        for n in range(have, rows):
            row = list(template)
            row[serial] = f"{0xB000000000000000 + n:x}"
            batch.append(row)
        marks = ",".join("?" * len(columns))
        connection.executemany(f"INSERT INTO certificates VALUES ({marks})", batch)
    connection.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", default="10000,100000")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--real", type=int, default=200, help="certificates really issued")
    options = parser.parse_args()
    from privca.authority import CertificateAuthority

    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        home = root / "ca"
        ca = CertificateAuthority.init(home, "Benchmark CA", passphrase=PASSPHRASE)
        start = time.perf_counter()
        for n in range(options.real):
            ca.issue([f"host{n}.corp.internal"])
        issued = time.perf_counter() - start
        ca.close()
        print(f"issued {options.real} certificates in {issued:.1f} s")
        archive = root / "real.tar.gz"
        verify = _privca("--home", str(home), "backup", "--out", str(archive))
        verify = _privca("backup", "verify", str(archive))
        print(f"backup verify, {options.real} real certificates: {verify:.2f} s")
        print("rows     db MB  archive MB  backup s (median)  tar czf s  ratio  restore s  RSS MB")
        for rows in [int(r) for r in options.rows.split(",")]:
            _fill(home, rows)
            size = (home / "privca.db").stat().st_size / 1e6
            ours, theirs, restores = [], [], []
            for n in range(options.rounds):
                out = root / f"b{rows}-{n}.tar.gz"
                ours.append(_privca("--home", str(home), "backup", "--out", str(out)))
                start = time.perf_counter()
                subprocess.run(
                    ["tar", "czf", str(root / f"t{n}.tar.gz"), "-C", str(home), "."], check=True
                )
                theirs.append(time.perf_counter() - start)
                target = root / f"r{rows}-{n}"
                restores.append(_privca("restore", str(out), "--home", str(target)))
                shutil.rmtree(target)
            archive_mb = out.stat().st_size / 1e6
            mine, base = statistics.median(ours), statistics.median(theirs)
            print(
                f"{rows:<8} {size:6.1f} {archive_mb:10.1f} {mine:18.2f} {base:10.2f} "
                f"{mine / base:6.2f} {statistics.median(restores):10.2f} "
                f"{resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024:7.0f}"
            )


if __name__ == "__main__":
    main()
