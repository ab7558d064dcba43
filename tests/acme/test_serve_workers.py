"""`privca serve --workers 2` as real processes on one SQLite home: requests land in both
workers, a nonce is accepted once however many race for it across them, concurrent ACME
orders get distinct serials, and SIGTERM stops the parent and every worker cleanly."""

from __future__ import annotations

import concurrent.futures
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import josepy as jose
import requests
from acme import challenges, client, messages, standalone
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from privca.authority import CertificateAuthority
from tests.acme.conftest import DnsServer, free_port
from tests.acme.jwsclient import RawClient
from tests.acme.test_client_lib import make_csr
from tests.acme.test_serve_process import _wait_healthy
from tests.conftest import PASSPHRASE, Cli, tree_snapshot, write

ACCOUNT = {"termsOfServiceAgreed": True}
ORDERS = 6


def _client(url: str, root: Path) -> client.ClientV2:
    key = jose.JWKEC(key=ec.generate_private_key(ec.SECP256R1()))
    net = client.ClientNetwork(key, alg=jose.ES256, verify_ssl=str(root))
    net.session.trust_env = False
    acme = client.ClientV2(client.ClientV2.get_directory(url, net), net)
    acme.new_account(messages.NewRegistration.from_data(terms_of_service_agreed=True))
    return acme


def _answering_workers(log: str) -> set[str]:
    """The workers that answered an ACME request, from serve's tagged access log."""
    return set(re.findall(r"worker (\d): 127\.0\.0\.1:\d+ - \"[A-Z]+ /acme/", log))


def _fresh_get(url: str, root: Path) -> int:
    """One GET on a connection of its own (a new accept for the kernel to hand out)."""
    with requests.Session() as session:
        session.trust_env = False
        return session.get(url, verify=str(root), timeout=30).status_code


def test_two_workers_share_the_socket_nonces_and_serials(
    ca: CertificateAuthority, dns_server: DnsServer, tmp_path: Path
) -> None:
    passphrase = write(tmp_path / "pass", PASSPHRASE + b"\n", 0o600)
    port, http_port = free_port(), free_port()
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "privca", "--home", str(ca.home.root), "serve",
             "--listen", f"127.0.0.1:{port}", "--server-name", "127.0.0.1",
             "--http-01-port", str(http_port), "--dns-resolver", dns_server.address,
             "--allow-loopback-validation", "--passphrase-file", str(passphrase),
             "--workers", "2"],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    directory = f"https://127.0.0.1:{port}/acme/directory"
    root = ca.home.root_cert
    try:
        _wait_healthy(f"https://127.0.0.1:{port}/health", root, server)
        started = re.search(r"2 workers \(pids (\d+), (\d+)\)", log_path.read_text())
        assert started, log_path.read_text()
        workers = [int(pid) for pid in started.groups()]
        # The parent keeps no store connection: none may cross a fork (SQLite's rule).
        parent_files = [os.readlink(fd) for fd in Path(f"/proc/{server.pid}/fd").iterdir()]
        assert not [f for f in parent_files if "privca.db" in f], parent_files

        # One nonce, eight requests at once on eight connections: accepted exactly once.
        racer = RawClient(directory, str(root))
        nonce = racer.nonce()
        barrier = threading.Barrier(8)

        def post(_index: int) -> int:
            session = requests.Session()
            session.trust_env = False
            session.verify = str(root)
            body = racer.sign(racer.directory["newAccount"], ACCOUNT, nonce=nonce)
            barrier.wait(10)
            reply = session.post(
                racer.directory["newAccount"],
                json=body,
                headers={"Content-Type": "application/jose+json"},
                timeout=30,
            )
            return reply.status_code

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(post, range(8)))
        assert sorted(statuses) == [201] + [400] * 7, statuses

        # Concurrent orders, each client on its own connection: distinct serials, all kept.
        resources: set[standalone.HTTP01RequestHandler.HTTP01Resource] = set()
        http = standalone.HTTP01DualNetworkedServers(("127.0.0.1", http_port), resources)
        http.serve_forever()
        try:

            def order(index: int) -> int:
                acme = _client(directory, root)
                csr_pem, _key = make_csr([f"w{index}.test"])
                placed = acme.new_order(csr_pem)
                for authz in placed.authorizations:
                    chall = next(
                        c for c in authz.body.challenges if isinstance(c.chall, challenges.HTTP01)
                    )
                    response, validation = chall.response_and_validation(acme.net.key)
                    resources.add(
                        standalone.HTTP01RequestHandler.HTTP01Resource(
                            chall=chall.chall, response=response, validation=validation
                        )
                    )
                    acme.answer_challenge(chall, response)
                done = acme.poll_and_finalize(placed)
                assert done.body.status == messages.STATUS_VALID
                return x509.load_pem_x509_certificate(done.fullchain_pem.encode()).serial_number

            with concurrent.futures.ThreadPoolExecutor(ORDERS) as pool:
                serials = list(pool.map(order, range(ORDERS)))
        finally:
            http.shutdown_and_server_close()
        assert len(set(serials)) == ORDERS
        for serial in serials:
            assert ca.inventory.get(serial).status == "issued"
        # Which worker accepts a connection is the kernel's choice: on a loaded machine
        # one may take all of the above. More connections at once until both answered.
        for _ in range(30):
            if _answering_workers(log_path.read_text()) == {"1", "2"}:
                break
            with concurrent.futures.ThreadPoolExecutor(8) as pool:
                list(pool.map(lambda _i: _fresh_get(directory, root), range(8)))
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(60)
    text = log_path.read_text()
    assert server.returncode == 0, text[-3000:]
    for pid in workers:
        assert not Path(f"/proc/{pid}").exists(), f"worker {pid} outlived serve"
    # The access log tags each line with the worker that answered: both did.
    assert _answering_workers(text) == {"1", "2"}, text[-3000:]
    assert "Traceback" not in text


def test_workers_refuses_a_bad_count_and_writes_nothing(run_cli: Cli) -> None:
    result = run_cli(
        "init", "--name", "Workers CA", "--passphrase-file", str(run_cli.passphrase_file)
    )
    assert result.exit_code == 0, result.output
    before = tree_snapshot(run_cli.home)
    # '²' and '٣' pass str.isdigit(); int() refuses the first and reads the second as 3.
    for value in ("0", "-1", "two", "65", "\x1b[31m", "\u00b2", "\u0663", "0" * 400 + "2"):
        result = run_cli("serve", "--no-tls", "--listen", f"127.0.0.1:{free_port()}",
                         "--passphrase-file", str(run_cli.passphrase_file),
                         "--workers", value)  # fmt: skip
        assert result.exit_code == 2, (value, result.output)
        lines = result.stderr.splitlines()
        assert lines[0] == "privca: error: --workers takes a number of processes or 'auto'"
        assert lines[1].startswith("  hint: ") and len(lines) == 2
        assert "\x1b" not in result.stderr
    assert tree_snapshot(run_cli.home) == before


def _start_plain(
    ca: CertificateAuthority, tmp_path: Path, port: int | None = None
) -> tuple[subprocess.Popen[bytes], Path, list[int]]:
    """serve --workers 2 over plain HTTP without ACME; (process, its log, worker pids)."""
    tmp_path.mkdir(exist_ok=True)
    passphrase = write(tmp_path / "pass", PASSPHRASE + b"\n", 0o600)
    port = port or free_port()
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "privca", "--home", str(ca.home.root), "serve",
             "--listen", f"127.0.0.1:{port}", "--no-tls", "--no-acme",
             "--passphrase-file", str(passphrase), "--workers", "2"],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    deadline = time.monotonic() + 60
    while len(re.findall("Application startup complete", log_path.read_text())) < 2:
        assert server.poll() is None and time.monotonic() < deadline, log_path.read_text()
        time.sleep(0.2)
    started = re.search(r"2 workers \(pids (\d+), (\d+)\)", log_path.read_text())
    assert started, log_path.read_text()
    return server, log_path, [int(pid) for pid in started.groups()]


def test_sighup_to_serve_stops_every_worker(ca: CertificateAuthority, tmp_path: Path) -> None:
    server, log_path, workers = _start_plain(ca, tmp_path)
    server.send_signal(signal.SIGHUP)
    assert server.wait(60) == 0, log_path.read_text()[-3000:]
    for pid in workers:
        assert not Path(f"/proc/{pid}").exists(), f"worker {pid} outlived serve"


def test_a_worker_that_dies_stops_the_others_and_serve_exits_3(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    server, log_path, workers = _start_plain(ca, tmp_path)
    os.kill(workers[0], signal.SIGKILL)
    try:
        assert server.wait(60) == 3
    finally:
        if server.poll() is None:
            server.kill()
    text = log_path.read_text()
    assert "privca: error: worker 1 stopped (exit code -9); the others were stopped" in text
    assert not Path(f"/proc/{workers[1]}").exists(), "the other worker outlived serve"


def test_workers_stop_when_serve_itself_is_killed(ca: CertificateAuthority, tmp_path: Path) -> None:
    """kill -9 of serve's parent (the OOM killer, KillMode=process): its workers must not
    stay behind holding the port, or the supervisor's restart cannot bind it."""
    server, log_path, workers = _start_plain(ca, tmp_path)
    port = int(re.findall(r"127\.0\.0\.1:(\d+)", log_path.read_text())[0])
    try:
        server.send_signal(signal.SIGKILL)
        server.wait(10)
        deadline = time.monotonic() + 30
        while any(_running(pid) for pid in workers):
            assert time.monotonic() < deadline, "workers outlived serve's parent"
            time.sleep(0.2)
        # The port is free again: a new serve binds it.
        again, again_log, _ = _start_plain(ca, tmp_path / "again", port=port)
        again.send_signal(signal.SIGTERM)
        assert again.wait(60) == 0, again_log.read_text()[-2000:]
    finally:
        for pid in workers:
            if _running(pid):
                os.kill(pid, signal.SIGKILL)


def _running(pid: int) -> bool:
    """Alive and not a zombie waiting for a parent that is gone."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"
