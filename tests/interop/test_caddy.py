"""Caddy 2.6 (Debian package, unmodified) obtains and renews a certificate from a real
`privca serve`, with the Caddyfile docs/acme.md shows.

The Caddyfile is read from docs/acme.md; the test replaces only what must differ on a
test machine: the directory URL's host (the server listens on a free loopback port), the
root file's path, and it tells Caddy which loopback ports to use instead of 80/443 and to
run without its admin endpoint (another Caddy may hold localhost:2019). Names resolve
through pebble-challtestsrv (every A query -> 127.0.0.1), so privca's validator reaches
Caddy's challenge listener for real.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from privca.authority import CertificateAuthority
from privca.x509.encoding import pem_certificate
from tests.acme.conftest import DnsServer
from tests.conftest import PASSPHRASE, openssl, require_tool, write
from tests.interop._processes import PrivcaServe, free_port, stop, wait_for_port

DOC = Path(__file__).parents[2] / "docs" / "acme.md"
DOC_DIRECTORY_HOST = "https://ca.corp.internal"
DOC_ROOT = "/etc/privca/root.pem"
SITE = "web.corp.internal"


def documented_caddyfile() -> str:
    """The first indented block under '### Caddy' in docs/acme.md."""
    section = DOC.read_text().split("### Caddy", 1)[1].split("\n### ", 1)[0]
    block = re.search(r"\n\n((?:    .*\n|\n)+)", section)
    assert block is not None, "docs/acme.md has no Caddyfile block under '### Caddy'"
    lines = block.group(1).rstrip("\n").splitlines()
    return "\n".join(line[4:] for line in lines) + "\n"


def test_the_documented_caddyfile_is_the_one_tested() -> None:
    text = documented_caddyfile()
    assert f"acme_ca {DOC_DIRECTORY_HOST}/acme/directory" in text
    assert f"acme_ca_root {DOC_ROOT}" in text
    assert f"{SITE} {{" in text


class Caddy:
    def __init__(self, workdir: Path, config: Path, adapter: str | None) -> None:
        self.workdir = workdir
        env = {
            **os.environ,
            "HOME": str(workdir / "home"),
            "XDG_DATA_HOME": str(workdir / "data"),
            "XDG_CONFIG_HOME": str(workdir / "config"),
        }
        argv = [require_tool("caddy"), "run", "--config", str(config)]
        if adapter:
            argv += ["--adapter", adapter]
        self.log = (workdir / "caddy.log").open("ab")
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=self.log, env=env)

    def stop(self) -> None:
        stop(self.process)
        self.log.close()


@pytest.fixture
def caddy_processes() -> Iterator[list[Caddy]]:
    started: list[Caddy] = []
    yield started
    for caddy in started:
        caddy.stop()


def served_leaf(port: int, root: Path) -> x509.Certificate:
    """What a client gets from Caddy for SITE, verified against the root by curl."""
    result = subprocess.run(
        [
            require_tool("curl"), "-sS", "--max-time", "5", "--cacert", str(root),
            "--resolve", f"{SITE}:{port}:127.0.0.1", "-w", "\n%{certs}",
            f"https://{SITE}:{port}/",
        ],
        capture_output=True,
        text=True,
        timeout=10,
    )  # fmt: skip
    if result.returncode != 0:
        raise OSError(result.stderr)
    body, _, certs = result.stdout.partition("\n")
    assert body == "hello"
    pem = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", certs, re.S)
    assert pem is not None, result.stdout
    return x509.load_pem_x509_certificate(pem.group(0).encode())


def wait_for_leaf(
    port: int, root: Path, caddy: Caddy, differs_from: int | None = None
) -> x509.Certificate:
    import time

    deadline = time.monotonic() + 60
    while True:
        try:
            leaf = served_leaf(port, root)
            if leaf.serial_number != differs_from:
                return leaf
        except OSError:
            pass
        if caddy.process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError((caddy.workdir / "caddy.log").read_text()[-4000:])
        time.sleep(0.25)


def test_caddy_obtains_and_renews_from_privca_serve(
    ca: CertificateAuthority,
    dns_server: DnsServer,
    tmp_path: Path,
    caddy_processes,
) -> None:
    require_tool("curl")
    passphrase = write(tmp_path / "pass", PASSPHRASE + b"\n", 0o600)
    http_port, https_port = free_port(), free_port()
    server = PrivcaServe(
        ca.home.root, passphrase,
        "--server-name", "127.0.0.1",
        "--http-01-port", str(http_port), "--tls-alpn-01-port", str(https_port),
        "--dns-resolver", dns_server.address,
        # Caddy answers the challenges on this machine: a single-host lab.
        "--allow-loopback-validation",
    )  # fmt: skip
    try:
        caddyfile = documented_caddyfile()
        caddyfile = caddyfile.replace(DOC_DIRECTORY_HOST, f"https://127.0.0.1:{server.port}")
        caddyfile = caddyfile.replace(DOC_ROOT, str(ca.home.root_cert))
        caddyfile = caddyfile.replace(
            "{\n",
            f"{{\n    admin off\n    http_port {http_port}\n    https_port {https_port}\n",
            1,
        )
        config = write(tmp_path / "Caddyfile", caddyfile)

        first = Caddy(tmp_path, config, "caddyfile")
        caddy_processes.append(first)
        wait_for_port(https_port, first.process, "caddy")
        leaf = wait_for_leaf(https_port, ca.home.root_cert, first)
        first.stop()
        caddy_processes.remove(first)

        record = ca.inventory.get(leaf.serial_number)
        assert record is not None and record.status == "issued" and record.profile == "server"
        assert record.names == (SITE,)
        chain = write(tmp_path / "served.pem", pem_certificate(leaf))
        verified = openssl(
            "verify", "-x509_strict", "-purpose", "sslserver", "-CAfile", str(ca.home.root_cert),
            "-untrusted", str(ca.home.issuing_cert), str(chain),
        )  # fmt: skip
        assert verified.returncode == 0, verified.stdout + verified.stderr

        # Renewal: Caddy renews when a third of the life is left. Nobody waits 60 days, so
        # its renewal window is widened to (nearly) the whole life, the one setting the
        # Caddyfile of Caddy 2.6 cannot express: the JSON Caddy itself made from the
        # Caddyfile, with renewal_window_ratio set. Caddy then renews at start, through
        # its renewal path (a new order with the account it registered).
        adapted = subprocess.run(
            [require_tool("caddy"), "adapt", "--config", str(config), "--adapter", "caddyfile"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert adapted.returncode == 0, adapted.stderr
        document = json.loads(adapted.stdout)
        (policy,) = document["apps"]["tls"]["automation"]["policies"]
        policy["renewal_window_ratio"] = 0.999999
        renew_config = write(tmp_path / "renew.json", json.dumps(document))
        second = Caddy(tmp_path, renew_config, None)
        caddy_processes.append(second)
        renewed = wait_for_leaf(https_port, ca.home.root_cert, second, leaf.serial_number)
        log = (tmp_path / "caddy.log").read_text()
        assert "certificate renewed successfully" in log
        assert ca.inventory.get(renewed.serial_number).names == (SITE,)
        accounts = {o.account_id for o in AcmeOrders(ca).for_serials(leaf, renewed)}
        assert len(accounts) == 1  # the same ACME account renewed
    finally:
        assert "Traceback" not in server.stop()


class AcmeOrders:
    """The ACME orders behind certificates, from privca's store."""

    def __init__(self, ca: CertificateAuthority) -> None:
        self.store = ca.acme_repository()

    def for_serials(self, *certificates: x509.Certificate) -> list:
        from privca.x509.encoding import serial_hex

        orders = [self.store.order_by_serial(serial_hex(c.serial_number)) for c in certificates]
        assert all(o is not None for o in orders)
        return orders
