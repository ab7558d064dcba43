"""/metrics: aggregates for every CA, per-certificate series only inside the window, every
query answered from an index; and on a listener of its own with --metrics-listen."""

from __future__ import annotations

import datetime as dt
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import event

from privca._time import utcnow
from privca.authority import CertificateAuthority
from privca.monitoring import render_prometheus
from privca.server.settings import ServerSettings
from tests.server.conftest import free_port


@pytest.fixture
def inventory(make_ca) -> CertificateAuthority:
    now = utcnow()
    ca = make_ca(now=now - dt.timedelta(days=60))
    ca.issue(["soon.example"], days=10)
    ca.issue(["later.example"], days=300)
    gone = ca.issue(["gone.example"], days=200)
    ca.revoke(format(gone.serial, "x"), "keyCompromise")
    ca.issue(["old.example"], days=5, now=now - dt.timedelta(days=30))  # expired
    ca.issue(["client.example"], profile="client", days=20)
    return ca


def series(text: str, name: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(name + "{")]


def value(line: str) -> int:
    return int(line.rsplit(" ", 1)[1])


def test_aggregates_for_all_and_names_only_inside_the_window(
    inventory: CertificateAuthority, live_server
) -> None:
    server = live_server(inventory, ServerSettings(metrics_window=dt.timedelta(days=30)))
    reply = server.get("/metrics")
    assert reply.status == 200
    assert reply.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = reply.body.decode()
    for line in text.splitlines():
        assert line.startswith("#") or re.fullmatch(r"[a-z_]+\{[^}]*\} \d+", line), line

    counts = {
        (re.search(r'profile="([^"]+)"', line)[1], re.search(r'status="([^"]+)"', line)[1]): value(
            line
        )
        for line in series(text, "privca_certificates")
    }
    assert counts[("server-client", "valid")] == 2
    assert counts[("server-client", "revoked")] == 1
    assert counts[("server-client", "expired")] == 1
    assert counts[("client", "valid")] == 1

    per_certificate = series(text, "privca_certificate_not_after_timestamp_seconds")
    names = sorted(re.search(r'name="([^"]+)"', line)[1] for line in per_certificate)
    assert names == ["client.example", "soon.example"]  # later.example is outside 30 days
    assert "later.example" not in text and "gone.example" not in text

    soon = next(line for line in per_certificate if "soon.example" in line)
    (soonest,) = series(text, "privca_issuer_soonest_expiry_timestamp_seconds")
    assert value(soonest) == value(soon)
    assert len(series(text, "privca_ca_not_after_timestamp_seconds")) == 2
    issued = series(text, "privca_certificates_issued_total")
    assert sum(value(line) for line in issued) >= 5


def test_every_metrics_query_uses_an_index(inventory: CertificateAuthority) -> None:
    statements: list[tuple[str, object]] = []

    def capture(_conn, _cursor, statement, parameters, _context, _executemany) -> None:
        statements.append((statement, parameters))

    event.listen(inventory.inventory.database.engine, "before_cursor_execute", capture)
    try:
        render_prometheus(inventory, utcnow(), dt.timedelta(days=30))
    finally:
        event.remove(inventory.inventory.database.engine, "before_cursor_execute", capture)
    on_certificates = [(s, p) for s, p in statements if "FROM certificates" in s]
    assert len(on_certificates) >= 3
    with inventory.inventory.database.engine.connect() as connection:
        raw = connection.connection.dbapi_connection
        for statement, parameters in on_certificates:
            plan = [row[3] for row in raw.execute("EXPLAIN QUERY PLAN " + statement, parameters)]
            scans = [step for step in plan if step.startswith("SCAN certificates")]
            # A walk of a covering index is fine (counting needs every entry); reading
            # the table row by row is not.
            assert all("USING COVERING INDEX" in step for step in scans), (statement, plan)


def test_metrics_on_a_listener_of_their_own(
    inventory: CertificateAuthority, passphrase_file: Path
) -> None:
    port, metrics_port = free_port(), free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "privca", "--home", str(inventory.home.root), "-q", "serve",
         "--no-tls", "--no-acme", "--listen", f"127.0.0.1:{port}",
         "--metrics-listen", f"127.0.0.1:{metrics_port}", "--metrics-window", "400d",
         "--passphrase-file", str(passphrase_file)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).read()
                break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline
                time.sleep(0.1)
        with pytest.raises(urllib.error.HTTPError) as main:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5)
        assert main.value.code == 404
        text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5)
        body = text.read().decode()
        assert "later.example" in body  # the window flag reached the metrics listener
        with pytest.raises(urllib.error.HTTPError) as other:
            urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/health", timeout=5)
        assert other.value.code == 404  # that listener serves /metrics alone
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=15)
    assert process.returncode == 0, stderr.decode()


def test_a_taken_metrics_port_is_a_one_line_error(inventory: CertificateAuthority, run_cli) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        result = run_cli(
            "serve", "--no-tls", "--listen", f"127.0.0.1:{free_port()}",
            "--metrics-listen", f"127.0.0.1:{taken.getsockname()[1]}",
            "--passphrase-file", str(run_cli.passphrase_file),
            home=inventory.home.root,
        )  # fmt: skip
    from tests.conftest import assert_user_error

    assert_user_error(result, "is in use", code=3)
