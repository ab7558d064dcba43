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
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.append(str(_HERE))  # last: _bench and scale only

from _bench import BenchError, cpu_seconds, loadavg, machine  # noqa: E402

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


# measuring ----------------------------------------------------------------------------------


@dataclass
class Run:
    wall: float
    cpu: float
    output_bytes: int


def _environment(source: Path | None) -> dict[str, str]:
    env = dict(os.environ)
    if source is not None:
        env["PYTHONPATH"] = str(source) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def timed(source: Path | None, args: list[str], exits: tuple[int, ...] = (0,)) -> Run:
    """One Python process: wall time, its own CPU (from wait4), its output's size."""
    started = time.perf_counter()
    with open(os.devnull, "wb") as sink, tempfile.TemporaryFile() as out:
        child = subprocess.Popen(
            [sys.executable, *args], stdout=out, stderr=sink, env=_environment(source)
        )
        _pid, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)
        size = out.seek(0, os.SEEK_END)
    if child.returncode not in exits:
        raise BenchError(f"{' '.join(args)} exited {child.returncode}")
    return Run(wall, usage.ru_utime + usage.ru_stime, size)


STARTUP = "import privca.cli.main, privca.cli.lifecycle, privca.authority, privca.monitoring"


def scrape(url: str, pid: int) -> Run:
    """One GET /metrics: wall time at the client, CPU of the server process."""
    cpu = cpu_seconds(pid)
    started = time.perf_counter()
    with urllib.request.urlopen(f"{url}/metrics", timeout=600) as response:
        body = response.read()
    return Run(time.perf_counter() - started, cpu_seconds(pid) - cpu, len(body))


def _next_minute() -> None:
    """Sleep into the next minute (a cached page is kept within one minute)."""
    time.sleep(60.5 - time.time() % 60)


def measure_once(source: Path | None, home: Path, passphrase: Path) -> dict[str, Run]:
    runs = {"start-up": timed(source, ["-c", STARTUP])}
    check = ["-m", "privca", "--home", str(home), "check", "--format"]
    runs["nagios"] = timed(source, [*check, "nagios"], exits=(0, 1, 2))
    runs["prometheus"] = timed(source, [*check, "prometheus"])
    from scale import serving

    with serving(home, passphrase, _environment(source)) as (url, pid):
        runs["/metrics first"] = scrape(url, pid)
        _next_minute()
        runs["/metrics cold"] = scrape(url, pid)
        warm = sorted((scrape(url, pid) for _ in range(3)), key=lambda r: r.wall)
        runs["/metrics warm"] = warm[1]
    return runs


def measure(directory: Path, sources: list[tuple[str, Path | None]], rounds: int) -> None:
    home, passphrase = directory / "home", directory / "passphrase"
    results: dict[str, dict[str, list[Run]]] = {label: {} for label, _ in sources}
    for n in range(rounds):
        order = sources if n % 2 == 0 else sources[::-1]
        for label, source in order:
            print(f"  round {n + 1}: {label} (load average {loadavg()})", flush=True)
            for what, run in measure_once(source, home, passphrase).items():
                results[label].setdefault(what, []).append(run)
    print(f"load average at the end {loadavg()}")
    print("| code | what | wall s (median; min-max) | CPU s (median; min-max) | output |")
    print("|---|---|---|---|---|")
    for label, by_what in results.items():
        for what, runs in by_what.items():
            walls, cpus = [r.wall for r in runs], [r.cpu for r in runs]
            print(
                f"| {label} | {what} | {statistics.median(walls):.3f} ({min(walls):.3f}-"
                f"{max(walls):.3f}) | {statistics.median(cpus):.3f} ({min(cpus):.3f}-"
                f"{max(cpus):.3f}) | {runs[0].output_bytes / 1e6:.2f} MB |",
                flush=True,
            )
    (directory / "results.json").write_text(
        json.dumps(
            {
                label: {w: [r.__dict__ for r in runs] for w, runs in by_what.items()}
                for label, by_what in results.items()
            },
            indent=2,
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    steps = parser.add_subparsers(dest="step", required=True)
    make = steps.add_parser("build", help="make DIR/home with --size certificates")
    make.add_argument("directory", type=Path)
    make.add_argument("--base", type=int, default=20_000, help="built through the library")
    make.add_argument("--size", type=int, default=1_000_000, help="after copying")
    make.add_argument("--seed", type=int, default=13)
    run = steps.add_parser("measure", help="time check and /metrics on DIR/home")
    run.add_argument("directory", type=Path)
    run.add_argument("--rounds", type=int, default=3)
    run.add_argument(
        "--before",
        action="append",
        default=[],
        metavar="LABEL=SRC",
        help="also time the privca in SRC (a src/ directory), interleaved",
    )
    args = parser.parse_args()
    print(machine(), f"load average {loadavg()}", flush=True)
    if args.step == "build":
        build(args.directory, args.base, args.size, args.seed)
    else:
        sources: list[tuple[str, Path | None]] = [("this checkout", None)]
        for text in args.before:
            label, _, source = text.partition("=")
            sources.append((label, Path(source)))
        measure(args.directory, sources, args.rounds)


if __name__ == "__main__":
    main()
