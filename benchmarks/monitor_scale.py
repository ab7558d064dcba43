"""`privca check` and one `/metrics` scrape at 1M certificates (by hand, not CI).

Two steps, so that one store serves many runs and the code under test can change:

    python benchmarks/monitor_scale.py build DIR [--base 20000] [--size 1000000]
    python benchmarks/monitor_scale.py measure DIR [--rounds 3] [--before SRC ...]

`build` makes a home in DIR/home through the library, the way scale.py builds its fleet
(`scale.grow`: real certificates, each with its own key, 5 % expiring inside the 30-day
window, 42 % expired long ago, 3 % revoked), `--base` certificates of them; then it copies
those rows inside SQLite until the inventory holds `--size` (fresh random serials and key
hashes per copy, names renamed `...cN.corp.example`, the same dates, statuses and DER; the
tally triggers count the copies). The copies write no audit entries: `check` and
`/metrics` never read the audit log.

`measure` times, for the code of this checkout and for each `--before` source tree (a
`src/` directory of another privca, e.g. a `git archive` of main, put first on
PYTHONPATH), in interleaved rounds:

    start-up     a process importing what `privca check` imports, doing nothing
    nagios       `privca check --format nagios`
    prometheus   `privca check --format prometheus` (and its size)
    /metrics     a `privca serve --no-tls --no-acme`: the first scrape (cold) and the
                 median of the next three (warm), wall from the client, CPU from the
                 server's /proc entry

Process wall times and CPU (user + system of the process, from wait4) both: the machine is
shared, and CPU seconds are much less sensitive to the load than wall time.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.append(str(_HERE))  # last: _bench and scale only

from _bench import BenchError, cpu_seconds, free_port, loadavg, machine  # noqa: E402

PASSPHRASE = b"benchmark passphrase"
CA_AGE = dt.timedelta(days=600)


# building -----------------------------------------------------------------------------------


def _serial() -> bytes:
    """A random positive serial of 16 octets, its first octet never zero (canonical)."""
    raw = bytearray(os.urandom(16))
    raw[0] = (raw[0] & 0x7F) or 0x01
    return bytes(raw)


def copy_rows(database: Path, target: int) -> int:
    """Copy the signed rows that are there until the table holds about `target`."""
    with contextlib.closing(sqlite3.connect(database)) as connection:
        connection.create_function("bench_serial", 0, _serial)
        connection.execute("PRAGMA cache_size = -1000000")
        (last,) = connection.execute("SELECT max(rowid) FROM certificates").fetchone()
        (signed,) = connection.execute(
            "SELECT count(*) FROM certificates WHERE status IN ('issued', 'revoked')"
        ).fetchone()
        (count,) = connection.execute("SELECT count(*) FROM certificates").fetchone()
        n = 0
        while count < target:
            n += 1
            (before,) = connection.execute("SELECT max(rowid) FROM certificates").fetchone()
            with connection:
                connection.execute(
                    "INSERT INTO certificates (serial, issuer_id, status, profile, names, "
                    "subject, not_before, not_after, public_key_sha256, der, created_at, "
                    "issued_at, revoked_at, revocation_reason, superseded_by, revoke_after, "
                    "tidied_at) SELECT bench_serial(), issuer_id, status, profile, "
                    "replace(names, 'corp.example', ?), subject, not_before, not_after, "
                    "randomblob(32), der, created_at, issued_at, revoked_at, "
                    "revocation_reason, NULL, revoke_after, tidied_at FROM certificates "
                    "WHERE rowid <= ? AND status IN ('issued', 'revoked') LIMIT ?",
                    (f"c{n}.corp.example", last, target - count),
                )
                connection.execute(
                    "INSERT INTO certificate_names (name, serial) SELECT DISTINCT j.value, "
                    "c.serial FROM certificates c, json_each(c.names) j WHERE c.rowid > ? "
                    "AND j.type = 'text'",
                    (before,),
                )
            count += min(signed, target - count)
            if n % 5 == 0:
                print(f"  {count} certificates (load average {loadavg()})", flush=True)
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        (count,) = connection.execute("SELECT count(*) FROM certificates").fetchone()
    return int(count)


def build(directory: Path, base: int, size: int, seed: int) -> None:
    from scale import Fleet, grow

    from privca.authority import CertificateAuthority

    directory.mkdir(parents=True, exist_ok=False)
    passphrase = directory / "passphrase"
    passphrase.write_bytes(PASSPHRASE + b"\n")
    passphrase.chmod(0o600)
    home = directory / "home"
    now = dt.datetime.now(dt.UTC)
    started = time.perf_counter()
    ca = CertificateAuthority.init(home, "Monitor CA", passphrase=PASSPHRASE, now=now - CA_AGE)
    try:
        grow(ca, Fleet(random.Random(seed)), base, 1000, now)
    finally:
        ca.close()
    print(f"  {base} certificates through the library in {time.perf_counter() - started:.0f} s")
    started = time.perf_counter()
    count = copy_rows(home / "privca.db", size)
    print(f"  {count} certificates after copying in {time.perf_counter() - started:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    steps = parser.add_subparsers(dest="step", required=True)
    make = steps.add_parser("build", help="make DIR/home with --size certificates")
    make.add_argument("directory", type=Path)
    make.add_argument("--base", type=int, default=20_000, help="built through the library")
    make.add_argument("--size", type=int, default=1_000_000, help="after copying")
    make.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()
    print(machine(), f"load average {loadavg()}", flush=True)
    if args.step == "build":
        build(args.directory, args.base, args.size, args.seed)


if __name__ == "__main__":
    main()
