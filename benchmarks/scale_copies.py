"""A 1M-row SQLite inventory from a real 100k one, when building 1M is out of reach.

scale.py builds every certificate through the library (its own key, signed, recorded):
at 150-750 certificates per second, 1M takes 25 minutes to 2 hours depending on the
machine's load. This script takes a home scale.py kept (`--keep`) and copies its rows
N times inside SQLite, each copy with fresh random serials and key hashes, its names
renamed (`...c3.corp.example`), the same DER (so the same compressed size), the same
statuses and dates, and the same events, through the store's own tables (the tally
triggers count the copies). The DER of a copy does not carry the copy's serial: good for
measuring the store (size, lookups, counts, listings), not for verifying certificates.

It then measures what scale.py measures that does not need the library's fleet: bytes per
certificate, `show NAME --json` and `revoke` of a copied name (by process), `check`,
`list --json`, one /metrics scrape, and the counts alone in this process (CPU and wall).

    python benchmarks/scale.py --sizes 100k --stores sqlite --keep      # prints "kept DIR"
    python benchmarks/scale_copies.py DIR/home-sqlite --copies 10
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.append(str(_HERE))  # last: _bench and scale only

from _bench import loadavg, machine  # noqa: E402
from scale import privca, scrape, serving, startup  # noqa: E402


def _serial() -> bytes:
    """A random positive serial of 16 octets, its first octet never zero (canonical)."""
    raw = bytearray(os.urandom(16))
    raw[0] = (raw[0] & 0x7F) or 0x01
    return bytes(raw)


def copy_rows(database: Path, copies: int) -> int:
    with contextlib.closing(sqlite3.connect(database)) as connection:
        connection.create_function("bench_serial", 0, _serial)
        connection.execute("PRAGMA foreign_keys=ON")
        (last,) = connection.execute("SELECT max(rowid) FROM certificates").fetchone()
        (last_event,) = connection.execute("SELECT max(id) FROM events").fetchone()
        for n in range(1, copies):
            print(f"  copy {n} of {copies - 1} ...", flush=True)
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
                    "WHERE rowid <= ? AND status IN ('issued', 'revoked')",
                    (f"c{n}.corp.example", last),
                )
                connection.execute(
                    "INSERT INTO certificate_names (name, serial) SELECT DISTINCT j.value, "
                    "c.serial FROM certificates c, json_each(c.names) j WHERE c.rowid > ? "
                    "AND j.type = 'text'",
                    (before,),
                )
                connection.execute(
                    "INSERT INTO events (at, action, serial, detail) SELECT at, action, "
                    "serial, detail FROM events WHERE id <= ?",
                    (last_event,),
                )
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        (count,) = connection.execute("SELECT count(*) FROM certificates").fetchone()
    return int(count)


def counts_in_process(home: Path, runs: int = 5) -> tuple[float, float]:
    from privca.authority import CertificateAuthority

    ca = CertificateAuthority.open(home)
    now = dt.datetime.now(dt.UTC)
    walls, cpus = [], []
    for _ in range(runs):
        wall, cpu = time.perf_counter(), time.process_time()
        ca.inventory.certificate_counts(now)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    ca.close()
    return statistics.median(walls), statistics.median(cpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("home", type=Path, help="a home kept by scale.py (home-sqlite)")
    parser.add_argument("--copies", type=int, default=10, help="the inventory N times over")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args()
    print(machine(), f"load average {loadavg()}")
    work = Path(tempfile.mkdtemp(prefix="privca-scale-copies-"))
    home = work / "home"
    shutil.copytree(args.home, home)
    passphrase = args.home.parent / "passphrase"
    started = time.perf_counter()
    with contextlib.closing(sqlite3.connect(home / "privca.db")) as connection:
        names = [
            json.loads(row[0])[0].replace("corp.example", "c1.corp.example")
            for row in connection.execute(
                "SELECT names FROM certificates WHERE status = 'issued' AND names != '[]' "
                "AND not_after > ? AND superseded_by IS NULL ORDER BY random() LIMIT 8",
                ((dt.datetime.now(dt.UTC) - dt.datetime(1970, 1, 1, tzinfo=dt.UTC))
                 // dt.timedelta(microseconds=1) + 40 * 86_400_000_000,),
            )
        ]  # fmt: skip
    count = copy_rows(home / "privca.db", args.copies)
    result: dict[str, object] = {"certificates": count}
    result["copy_s"] = round(time.perf_counter() - started, 1)
    size = sum(p.stat().st_size for p in home.glob("privca.db*"))
    result["bytes_per_cert"] = round(size / count)
    print(f"  {count} certificates, {size / 1e6:.0f} MB (load average {loadavg()})", flush=True)
    wall, cpu = counts_in_process(home)
    result["counts_ms"] = round(wall * 1000, 1)
    result["counts_cpu_ms"] = round(cpu * 1000, 1)
    result["show_s"] = round(
        statistics.median(privca(home, "show", n, "--json").seconds for n in names[:3]), 3
    )
    result["revoke_s"] = round(
        statistics.median(privca(home, "revoke", n).seconds for n in names[3:6]),
        3,
    )
    result["nagios_s"] = round(
        privca(home, "check", "--format", "nagios", exits=(0, 1, 2)).seconds, 2
    )
    listed = privca(home, "list", "--json", out=work / "list.json")
    result["list_s"] = round(listed.seconds, 2)
    result["list_rss_mib"] = round(listed.rss_mib)
    result["list_mb"] = round(listed.output_bytes / 1e6, 1)
    with serving(home, passphrase) as url:
        scrape(url)
        scrapes = [scrape(url) for _ in range(3)]
    result["metrics_s"] = round(statistics.median(s for s, _ in scrapes), 3)
    result["metrics_mb"] = round(scrapes[0][1] / 1e6, 1)
    result["startup_s"] = round(startup(3), 3)
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "result": result}, indent=2))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
