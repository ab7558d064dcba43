"""Two real `privca serve` processes over one store (PostgreSQL, and one SQLite file): a
client that asks each replica in turn for the CRL never sees the CRLNumber go backwards,
and once the store holds a CRL both replicas serve that same one."""

from __future__ import annotations

import concurrent.futures
import contextlib
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from privca.authority import CertificateAuthority
from tests.acme.test_replica_processes import _wait_healthy
from tests.conftest import PASSPHRASE, write
from tests.pg import postgres_cluster, postgres_url  # noqa: F401  (fixtures)
from tests.server.conftest import free_port

REVOCATIONS = 4


@dataclass
class Pair:
    ca: CertificateAuthority  # the operator's own handle (a third process, as the CLI)
    ports: list[int]
    root: Path

    def crl(self, replica: int) -> x509.CertificateRevocationList:
        context = ssl.create_default_context(cafile=str(self.root))
        url = f"https://127.0.0.1:{self.ports[replica]}/crl/issuing.crl"
        with urllib.request.urlopen(url, context=context, timeout=10) as response:
            return x509.load_der_x509_crl(response.read())


def _number(crl: x509.CertificateRevocationList) -> int:
    return int(crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number)


@contextlib.contextmanager
def two_replicas(ca: CertificateAuthority, tmp_path: Path) -> Iterator[Pair]:
    passphrase = write(tmp_path / "pass", PASSPHRASE + b"\n", 0o600)
    ports, processes = [], []
    try:
        for _ in range(2):
            port = free_port()
            command = [
                sys.executable, "-m", "privca", "-q", "--home", str(ca.home.root), "serve",
                "--listen", f"127.0.0.1:{port}", "--server-name", "127.0.0.1", "--no-acme",
                "--passphrase-file", str(passphrase),
            ]  # fmt: skip
            processes.append(
                subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            )
            ports.append(port)
        for port, process in zip(ports, processes, strict=True):
            _wait_healthy(port, ca.home.root_cert, process)
        yield Pair(ca, ports, ca.home.root_cert)
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                _, stderr = process.communicate(timeout=30)
                assert process.returncode == 0, stderr.decode()[-2000:]


def _alternating_crls_never_go_back(pair: Pair) -> None:
    leaves = [pair.ca.issue([f"host{i}.example"]) for i in range(REVOCATIONS)]
    seen = [_number(pair.crl(0)), _number(pair.crl(1))]
    for index, leaf in enumerate(leaves):
        pair.ca.revoke(format(leaf.serial, "x"), "superseded")
        # Both replicas asked at once right after the revocation: each may build a CRL.
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            first = list(pool.map(pair.crl, (index % 2, 1 - index % 2)))
        seen.extend(_number(crl) for crl in first)
        deadline = time.monotonic() + 10
        listed: set[int] = set()
        for turn in range(400):
            replica = (index + turn) % 2
            crl = pair.crl(replica)
            seen.append(_number(crl))
            # What one client sees asking each replica in turn: never an older CRL.
            assert seen[-1] >= max(seen[:-1]), seen
            if crl.get_revoked_certificate_by_serial_number(leaf.serial) is not None:
                listed.add(replica)
            if listed == {0, 1} and turn >= 4:
                break
            assert time.monotonic() < deadline, f"both replicas never listed {leaf.serial:x}"
            time.sleep(0.05)
    # The store has the newest CRL: both replicas serve those very bytes.
    final = [pair.crl(0), pair.crl(1)]
    assert final[0].public_bytes(Encoding.DER) == final[1].public_bytes(Encoding.DER)
    assert _number(final[0]) == max(seen)


@pytest.mark.postgres
@pytest.mark.slow
def test_crl_numbers_never_go_backwards_across_postgresql_replicas(
    make_ca: Callable[..., CertificateAuthority],
    postgres_url: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    with two_replicas(make_ca(store_url=postgres_url), tmp_path) as pair:
        _alternating_crls_never_go_back(pair)


@pytest.mark.slow
def test_crl_numbers_never_go_backwards_across_sqlite_processes(
    make_ca: Callable[..., CertificateAuthority], tmp_path: Path
) -> None:
    with two_replicas(make_ca(), tmp_path) as pair:
        _alternating_crls_never_go_back(pair)


@pytest.mark.slow
def test_a_crl_made_by_the_cli_is_what_every_replica_serves_next(
    make_ca: Callable[..., CertificateAuthority], tmp_path: Path
) -> None:
    """`privca crl` run by the operator (a third process) while two replicas serve: the
    next CRL either replica hands out is that one or newer, never the older one it had."""
    with two_replicas(make_ca(), tmp_path) as pair:
        before = [_number(pair.crl(0)), _number(pair.crl(1))]
        made = pair.ca.crl()
        assert _number(made) > max(before)
        deadline = time.monotonic() + 10
        while True:
            served = [pair.crl(0), pair.crl(1)]
            numbers = [_number(crl) for crl in served]
            assert min(numbers) >= max(before)
            if min(numbers) >= _number(made):
                break
            assert time.monotonic() < deadline, (before, numbers, _number(made))
            time.sleep(0.1)
        assert served[0].public_bytes(Encoding.DER) == made.public_bytes(Encoding.DER)
