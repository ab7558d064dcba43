"""Renewal storm (by hand, not CI): N hosts renew their certificates through ACME at once.

Each host has its own ACME account and a certificate issued in an untimed setup phase.
Then all N renew at the same moment (a new order with ARI's `replaces`, http-01, finalize
with a new key, download), while a few probes keep asking OCSP about the old certificates.
The client is asynchronous (asyncio + h11 over TLS, keep-alive) and builds its requests
with certbot's `acme` messages and JWS; the benchmark answers http-01 itself.

Targets, one after the other:
    sqlite      one `privca serve` over the SQLite store in its home
    postgresql  two `privca serve` replicas over one PostgreSQL 15 (started here, durable
                defaults), every request sent to the next replica in turn (round robin:
                a nonce from one replica is spent at the other, as behind a load balancer)

It prints, per target: orders/s over the storm, order latency p50/p99/max (newNonce to
certificate downloaded), errors (must be 0), badNonce retries, and OCSP latency p50/p99
measured during the storm.

Where the probes ask OCSP (--ocsp-at): `publish`, the plain-HTTP listener each serve
opens with --publish-listen (a process of its own; the default when the serve under test
offers it), or `main`, the ACME/TLS listener (the default for an older tree, e.g. run
with PYTHONPATH pointing at it). Server CPU counts every serve's child processes, the
publication process included.

    python benchmarks/storm.py                    # N=500, both targets
    python benchmarks/storm.py --n 100 --targets sqlite
    python benchmarks/storm.py --targets postgresql --ocsp-at main   # before/after pair
    python benchmarks/storm.py --targets postgresql --ocsp-at publish

Needs pebble-challtestsrv (every name resolves to 127.0.0.1) and, for postgresql, the
PostgreSQL 15 server binaries.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import contextlib
import itertools
import json
import multiprocessing
import random
import re
import resource
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

# This directory holds acme.py: keep it off sys.path so `import acme` finds certbot's.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.append(str(_HERE))  # last: _bench only

import h11  # noqa: E402
import josepy as jose  # noqa: E402
from _bench import (  # noqa: E402
    BenchError,
    Postgres,
    challenge_responder_process,
    cpu_seconds,
    dns_server,
    free_port,
    loadavg,
    machine,
    process_tree,
)
from acme import jws as acme_jws  # noqa: E402
from acme import messages  # noqa: E402
from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509 import ocsp  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402

PASSPHRASE = b"benchmark passphrase"
QUIET_SECONDS = 5  # OCSP probed against the idle server before the storm
JOSE = "application/jose+json"


# HTTP: one keep-alive connection, h11 over asyncio streams --------------------------------


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Connection:
    def __init__(self, port: int, context: ssl.SSLContext | None) -> None:
        self.port = port
        self.context = context
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.h11 = h11.Connection(h11.CLIENT)

    async def _open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(
            "127.0.0.1",
            self.port,
            ssl=self.context,  # None: plain HTTP (the publication listener)
            server_hostname="localhost" if self.context is not None else None,
        )
        self.h11 = h11.Connection(h11.CLIENT)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await self.writer.wait_closed()
            self.writer = self.reader = None

    async def request(
        self, method: str, path: str, body: bytes = b"", content_type: str = ""
    ) -> Reply:
        """One exchange. A kept-alive connection the server closed meanwhile (uvicorn drops
        idle ones after 5 s) is reopened and the request sent again, as HTTP clients do
        when nothing of the response has arrived."""
        reused = self.writer is not None and self.h11.our_state is h11.IDLE
        if reused and self.reader is not None and self.reader.at_eof():
            reused = False
            await self.close()
        try:
            return await self._exchange(method, path, body, content_type)
        except (ConnectionError, OSError, h11.RemoteProtocolError) as exc:
            await self.close()
            if not reused or getattr(exc, "response_started", False):
                raise
        return await self._exchange(method, path, body, content_type)

    async def _exchange(self, method: str, path: str, body: bytes, content_type: str) -> Reply:
        if self.writer is None or self.h11.our_state is not h11.IDLE:
            await self.close()
            await self._open()
        assert self.reader is not None and self.writer is not None
        headers = [("Host", f"127.0.0.1:{self.port}"), ("Content-Length", str(len(body)))]
        if content_type:
            headers.append(("Content-Type", content_type))
        data = self.h11.send(h11.Request(method=method, target=path, headers=headers))
        data += self.h11.send(h11.Data(data=body)) if body else b""
        data += self.h11.send(h11.EndOfMessage())
        self.writer.write(data)
        await self.writer.drain()
        status, reply_headers, chunks = 0, {}, []
        while True:
            event = self.h11.next_event()
            if event is h11.NEED_DATA:
                received = await self.reader.read(65536)
                if not received:
                    error = ConnectionError("the server closed the connection")
                    error.response_started = status != 0  # type: ignore[attr-defined]
                    raise error
                self.h11.receive_data(received)
            elif isinstance(event, h11.Response):
                status = event.status_code
                reply_headers = {k.decode().lower(): v.decode() for k, v in event.headers}
            elif isinstance(event, h11.Data):
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                break
            elif isinstance(event, h11.ConnectionClosed):
                raise ConnectionError("the server closed the connection")
        if self.h11.our_state is h11.DONE and self.h11.their_state is h11.DONE:
            self.h11.start_next_cycle()
        else:
            await self.close()
        return Reply(status, reply_headers, b"".join(chunks))


# the ACME client ---------------------------------------------------------------------------


class AcmeError(Exception):
    pass


@dataclass
class Stats:
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    bad_nonces: int = 0


class Host:
    """One host: its account key, its connections (one per replica), its certificate."""

    def __init__(self, index: int, ports: list[int], context: ssl.SSLContext) -> None:
        self.name = f"host{index:05d}.storm.test"
        self.key = jose.JWKEC(key=ec.generate_private_key(ec.SECP256R1()))
        self.connections = {port: Connection(port, context) for port in ports}
        self.ports = ports
        self.turn = itertools.count(index)
        self.kid: str | None = None  # the account URL's path
        self.nonce: str | None = None
        self.certificate: x509.Certificate | None = None
        self.issuer: x509.Certificate | None = None

    def _port(self) -> int:
        return self.ports[next(self.turn) % len(self.ports)]

    async def close(self) -> None:
        for connection in self.connections.values():
            await connection.close()

    async def _new_nonce(self, port: int) -> str:
        reply = await self.connections[port].request("HEAD", "/acme/new-nonce")
        if "replay-nonce" not in reply.headers:
            raise AcmeError(f"HEAD new-nonce: {reply.status} without a nonce: {reply.body[:200]!r}")
        return reply.headers["replay-nonce"]

    async def post(self, path: str, payload: Any, stats: Stats, *, jwk: bool = False) -> Reply:
        """A signed POST to the next replica; retries badNonce as RFC 8555 §6.5 says."""
        body = b"" if payload is None else json.dumps(payload).encode()
        for _attempt in range(5):
            port = self._port()
            nonce = self.nonce or await self._new_nonce(port)
            self.nonce = None
            url = f"https://127.0.0.1:{port}{path}"
            kid = None if jwk else f"https://127.0.0.1:{port}{self.kid}"
            signed = acme_jws.JWS.sign(
                body, key=self.key, alg=jose.ES256, nonce=jose.b64decode(nonce), url=url, kid=kid
            )
            reply = await self.connections[port].request(
                "POST", path, signed.json_dumps().encode(), JOSE
            )
            self.nonce = reply.headers.get("replay-nonce")
            if reply.status == 400 and b"badNonce" in reply.body:
                stats.bad_nonces += 1
                continue
            if reply.status >= 400:
                raise AcmeError(f"POST {path.split('/')[2]}: {reply.status} {reply.body[:300]!r}")
            return reply
        raise AcmeError(f"POST {path}: badNonce five times")

    async def register(self, stats: Stats) -> None:
        payload = messages.NewRegistration.from_data(terms_of_service_agreed=True)
        reply = await self.post(
            "/acme/new-account", json.loads(payload.json_dumps()), stats, jwk=True
        )
        self.kid = urlsplit(reply.headers["location"]).path

    async def obtain(self, stats: Stats, responder: TokenFiles, replaces: str | None) -> None:
        order = messages.NewOrder(
            identifiers=(messages.Identifier(typ=messages.IDENTIFIER_FQDN, value=self.name),)
        )
        order_payload = json.loads(order.json_dumps())
        if replaces:
            order_payload["replaces"] = replaces
        reply = await self.post("/acme/new-order", order_payload, stats)
        order_path = urlsplit(reply.headers["location"]).path
        order = reply.json()
        for authz_url in order["authorizations"]:
            authz_path = urlsplit(authz_url).path
            authz = (await self.post(authz_path, None, stats)).json()
            if authz["status"] != "valid":
                challenge = next(c for c in authz["challenges"] if c["type"] == "http-01")
                thumbprint = jose.b64encode(self.key.thumbprint()).decode()
                responder[challenge["token"]] = f"{challenge['token']}.{thumbprint}"
                await self.post(urlsplit(challenge["url"]).path, {}, stats)
                authz = await self._poll(authz_path, ("pending",), stats)
                responder.pop(challenge["token"], None)
                if authz["status"] != "valid":
                    raise AcmeError(f"authorization {authz['status']}: {authz}")
        key = ec.generate_private_key(ec.SECP256R1())
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, self.name)]))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(self.name)]), False)
            .sign(key, hashes.SHA256())
        )
        der = csr.public_bytes(serialization.Encoding.DER)
        finalize = urlsplit(order["finalize"]).path
        order = (await self.post(finalize, {"csr": jose.b64encode(der).decode()}, stats)).json()
        if order["status"] != "valid":
            order = await self._poll(order_path, ("pending", "ready", "processing"), stats)
        if order["status"] != "valid":
            raise AcmeError(f"order {order['status']}")
        pem = (await self.post(urlsplit(order["certificate"]).path, None, stats)).body
        chain = x509.load_pem_x509_certificates(pem)
        self.certificate, self.issuer = chain[0], chain[1]

    async def _poll(self, path: str, waiting: tuple[str, ...], stats: Stats) -> Any:
        deadline = time.monotonic() + 120
        while True:
            document = (await self.post(path, None, stats)).json()
            if document["status"] not in waiting or time.monotonic() > deadline:
                return document
            await asyncio.sleep(0.2)


def ari_id(certificate: x509.Certificate) -> str:
    """RFC 9773: base64url(AKI keyIdentifier) "." base64url(serial number DER content)."""
    aki = certificate.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    serial = certificate.serial_number
    raw = serial.to_bytes(serial.bit_length() // 8 + 1, "big")

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    return f"{b64(aki.key_identifier or b'')}.{b64(raw)}"


# the hosts' http-01 answers -------------------------------------------------------------------


class TokenFiles:
    """The hosts' http-01 answers as files in a webroot, served by _bench's responder in a
    process of its own (as lego's webroot mode is served by a web server). Served from this
    event loop, busy with 500 hosts' keys and signatures, an answer waited seconds under
    load, and the server's validations ran into their deadline."""

    def __init__(self, webroot: Path) -> None:
        self.directory = webroot / ".well-known" / "acme-challenge"
        self.directory.mkdir(parents=True, exist_ok=True)

    def __setitem__(self, token: str, key_authorization: str) -> None:
        (self.directory / token).write_text(key_authorization)

    def pop(self, token: str, _default: None = None) -> None:
        (self.directory / token).unlink(missing_ok=True)


# OCSP probes --------------------------------------------------------------------------------


async def ocsp_probe(
    requests: list[bytes],
    ports: list[int],
    context: ssl.SSLContext | None,
    stop: asyncio.Event,
    seed: int,
) -> tuple[list[tuple[float, float]], int]:
    """Ask OCSP about random old certificates, one request at a time, until `stop`;
    returns (time.monotonic() at the start, latency) of the answered requests and the
    number of failed ones (CLOCK_MONOTONIC is system-wide: the storm splits them by time)."""
    connections = {port: Connection(port, context) for port in ports}
    latencies: list[tuple[float, float]] = []
    failures = 0
    # A seed per probe: with one seed the probes asked the same certificates in step, four
    # identical requests at once, each a cache miss on a replica that had not answered it.
    rng = random.Random(seed)
    try:
        for turn in itertools.count():
            if stop.is_set():
                break
            request = rng.choice(requests)
            at, started = time.monotonic(), time.perf_counter()
            try:
                reply = await connections[ports[turn % len(ports)]].request(
                    "POST", "/ocsp", request, "application/ocsp-request"
                )
            except (ConnectionError, OSError, h11.RemoteProtocolError):
                failures += 1
                continue
            if reply.status != 200:
                failures += 1
                continue
            latencies.append((at, time.perf_counter() - started))
            await asyncio.sleep(0.02)
    finally:
        for connection in connections.values():
            await connection.close()
    return latencies, failures


def probe_process(
    requests: list[bytes],
    ports: list[int],
    cafile: str | None,
    probes: int,
    stop: Any,
    results: Any,
) -> None:
    """The OCSP probes in a process of their own: in the storm client's event loop, busy
    with 500 hosts' keys, signatures and TLS, they measured the client's own queue."""

    async def main() -> list[tuple[list[tuple[float, float]], int]]:
        # No CA file: the publication listener, plain HTTP.
        context = ssl.create_default_context(cafile=cafile) if cafile else None
        done = asyncio.Event()

        async def follow_stop() -> None:
            while not stop.is_set():
                await asyncio.sleep(0.05)
            done.set()

        follower = asyncio.create_task(follow_stop())
        probed = await asyncio.gather(
            *(ocsp_probe(requests, ports, context, done, seed) for seed in range(probes))
        )
        follower.cancel()
        return list(probed)

    results.put(asyncio.run(main()))


def ocsp_request_der(host: Host) -> bytes:
    assert host.certificate is not None and host.issuer is not None
    return (
        ocsp.OCSPRequestBuilder()
        .add_certificate(host.certificate, host.issuer, hashes.SHA1())
        .build()
        .public_bytes(serialization.Encoding.DER)
    )


# servers --------------------------------------------------------------------------------------


@dataclass
class Target:
    name: str
    ports: list[int]
    root: Path
    webroot: Path  # the hosts' http-01 answers (TokenFiles)
    pids: list[int] = field(default_factory=list)  # the serve processes
    # Where the probes ask OCSP: the main listeners (TLS) or the publication ones (HTTP).
    ocsp_ports: list[int] = field(default_factory=list)
    ocsp_at: str = "main"


@contextlib.contextmanager
def serving(
    kind: str,
    work: Path,
    dns: str,
    http_port: int,
    stack: contextlib.ExitStack,
    access_log: bool = False,
    serve_args: tuple[str, ...] = (),
    ocsp_at: str | None = None,
) -> Iterator[Target]:
    from privca.authority import CertificateAuthority

    store_url = ""
    replicas = 1
    if kind == "postgresql":
        postgres = stack.enter_context(Postgres())
        store_url = postgres.create_database("privca_storm")
        replicas = 2
    home = work / f"home-{kind}"
    CertificateAuthority.init(home, "Storm CA", passphrase=PASSPHRASE, store_url=store_url).close()
    # Every host is its own account (all from 127.0.0.1 here): lift the per-account order
    # limit and the per-network account limit out of the way.
    with (home / "privca.toml").open("a") as settings:
        settings.write("\n[acme]\norders_per_window = 1000000\naccounts_per_window = 1000000\n")
    passphrase = work / "passphrase"
    passphrase.write_bytes(PASSPHRASE + b"\n")
    passphrase.chmod(0o600)
    quiet = [] if access_log else ["-q"]
    command = [sys.executable, "-m", "privca", *quiet, "--home", str(home), "serve"]
    flags = ["--http-01-port", str(http_port), "--dns-resolver", dns, *serve_args]
    help_text = subprocess.run([*command, "--help"], capture_output=True, text=True).stdout
    if "--allow-loopback-validation" in help_text:
        flags.append("--allow-loopback-validation")  # every name here is 127.0.0.1
    offered = "--publish-listen" in help_text
    if ocsp_at is None:
        ocsp_at = "publish" if offered else "main"
    if ocsp_at == "publish" and not offered:
        raise BenchError("--ocsp-at publish: this privca serve has no --publish-listen")
    ports, publish_ports, processes = [], [], []
    try:
        for replica in range(replicas):
            port = free_port()
            publish = []
            if ocsp_at == "publish":
                publish_ports.append(free_port())
                publish = ["--publish-listen", f"127.0.0.1:{publish_ports[-1]}"]
            log = (work / f"{kind}-{replica}.log").open("wb")
            stack.callback(log.close)
            processes.append(
                subprocess.Popen(
                    [
                        *command,
                        "--listen",
                        f"127.0.0.1:{port}",
                        "--server-name",
                        "localhost",
                        "--server-name",
                        "127.0.0.1",
                        *flags,
                        *publish,
                        "--passphrase-file",
                        str(passphrase),
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
            ports.append(port)
        for port, process in zip(ports, processes, strict=True):
            wait_healthy(port, process, home / "certs" / "root.crt")
        for port, process in zip(publish_ports, processes, strict=False):  # none: main
            wait_healthy(port, process, None)
        yield Target(
            kind,
            ports,
            home / "certs" / "root.crt",
            work / f"webroot-{kind}",
            [process.pid for process in processes],
            publish_ports or ports,
            ocsp_at,
        )
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(30)


def wait_healthy(port: int, process: subprocess.Popen[bytes], root: Path | None) -> None:
    """Until /health answers; root None: a plain-HTTP listener."""
    context = ssl.create_default_context(cafile=str(root)) if root is not None else None
    scheme = "https" if root is not None else "http"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(
                f"{scheme}://127.0.0.1:{port}/health", context=context, timeout=2
            ) as response:
                response.read()
                return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise BenchError(f"privca serve on port {port} did not start") from None
            time.sleep(0.2)


# the run ------------------------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def storm(target: Target, n: int, http_port: int, probes: int) -> dict[str, Any]:
    context = ssl.create_default_context(cafile=str(target.root))
    tokens = TokenFiles(target.webroot)
    hosts = [Host(i, target.ports, context) for i in range(n)]
    setup = Stats()
    limit = asyncio.Semaphore(32)

    async def first_certificate(host: Host) -> None:
        async with limit:
            await host.register(setup)
            await host.obtain(setup, tokens, None)

    try:
        started = time.perf_counter()
        await asyncio.gather(*(first_certificate(h) for h in hosts))
        setup_seconds = time.perf_counter() - started
        for host in hosts:  # fresh connections and nonces for the storm, as after a night
            await host.close()
            host.nonce = None
        stats = Stats()

        async def renew(host: Host) -> None:
            assert host.certificate is not None
            replaces = ari_id(host.certificate)
            began = time.perf_counter()
            try:
                await host.obtain(stats, tokens, replaces)
            except (AcmeError, OSError, ssl.SSLError, KeyError, h11.ProtocolError) as exc:
                stats.errors.append(f"{type(exc).__name__}: {exc}"[:300])
                return
            stats.latencies.append(time.perf_counter() - began)

        spawn = multiprocessing.get_context("spawn")
        stop, results = spawn.Event(), spawn.SimpleQueue()
        prober = spawn.Process(
            target=probe_process,
            args=([ocsp_request_der(h) for h in hosts], target.ocsp_ports,
                  str(target.root) if target.ocsp_at == "main" else None, probes, stop, results),
        )  # fmt: skip
        prober.start()
        # The probing process imports and connects first; then QUIET_SECONDS of OCSP on
        # an idle server: the same machine load without the storm, for comparison.
        await asyncio.sleep(3 + QUIET_SECONDS)
        quiet_from = time.monotonic() - QUIET_SECONDS
        began_at, started = time.monotonic(), time.perf_counter()
        cpu_before = sum(cpu_seconds(p) for pid in target.pids for p in process_tree(pid))
        await asyncio.gather(*(renew(h) for h in hosts))
        seconds = time.perf_counter() - started
        server_cpu = (
            sum(cpu_seconds(p) for pid in target.pids for p in process_tree(pid)) - cpu_before
        )
        ended_at = time.monotonic()
        stop.set()
        probed = await asyncio.get_running_loop().run_in_executor(None, results.get)
        prober.join(30)
        timed = [pair for latencies, _failed in probed for pair in latencies]
        ocsp_latencies = [x for at, x in timed if began_at <= at <= ended_at]
        quiet_latencies = [x for at, x in timed if quiet_from <= at < began_at]
        ocsp_failures = sum(failed for _latencies, failed in probed)
    finally:
        for host in hosts:
            await host.close()
    result: dict[str, Any] = {
        "target": f"{target.name} ({len(target.ports)} serve, OCSP at {target.ocsp_at})",
        "n": n,
        "setup_s": round(setup_seconds, 1),
        "storm_s": round(seconds, 2),
        "orders_per_s": round(len(stats.latencies) / seconds, 1),
        # CPU seconds of the serve process(es) during the storm (less load-sensitive).
        "server_cpu_s": round(server_cpu, 1),
        "errors": len(stats.errors),
        "bad_nonce_retries": stats.bad_nonces,
        "ocsp_requests": len(ocsp_latencies),
        "ocsp_errors": ocsp_failures,
    }
    if stats.latencies:
        result["p50_s"] = round(statistics.median(stats.latencies), 2)
        result["p99_s"] = round(percentile(stats.latencies, 99), 2)
        result["max_s"] = round(max(stats.latencies), 2)
    if ocsp_latencies:
        result["ocsp_p50_ms"] = round(statistics.median(ocsp_latencies) * 1000, 1)
        result["ocsp_p99_ms"] = round(percentile(ocsp_latencies, 99) * 1000, 1)
    if quiet_latencies:  # the same probes against the idle server just before the storm
        result["quiet_ocsp_p50_ms"] = round(statistics.median(quiet_latencies) * 1000, 1)
        result["quiet_ocsp_p99_ms"] = round(percentile(quiet_latencies, 99) * 1000, 1)
    result["load_after"] = loadavg()
    if stats.errors:
        result["first_error"] = stats.errors[0]
        # Errors by kind (digits blanked), so a mix of causes is visible at once.
        kinds = collections.Counter(re.sub(r"[0-9a-f]{6,}|\d+", "#", e)[:160] for e in stats.errors)
        result["error_kinds"] = dict(kinds.most_common(8))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=500, help="hosts renewing at once (500)")
    parser.add_argument("--targets", default="sqlite,postgresql", help="sqlite,postgresql")
    parser.add_argument("--ocsp-probes", type=int, default=4, help="concurrent OCSP askers (4)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    parser.add_argument(
        "--access-log", action="store_true", help="serve without -q: every request in its log"
    )
    parser.add_argument(
        "--serve-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="one more argument for every privca serve, e.g. --serve-arg=--workers "
        "--serve-arg=2 (server CPU counts the workers too)",
    )
    parser.add_argument(
        "--ocsp-at",
        choices=("main", "publish"),
        default=None,
        help="probe OCSP on the main (ACME/TLS) listener or on --publish-listen's (default: "
        "publish when serve offers it, else main)",
    )
    args = parser.parse_args()
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    if not targets or any(t not in ("sqlite", "postgresql") for t in targets):
        parser.error("--targets takes sqlite, postgresql or both")
    if args.n < 1:
        parser.error("--n must be at least 1")
    # N hosts x replicas keep-alive connections, in this process and in the server.
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if shutil.which("pebble-challtestsrv") is None:
        sys.exit("storm.py: pebble-challtestsrv is not installed (Debian package pebble)")
    print(machine(), f"load average {loadavg()}")
    results = []
    work = Path(tempfile.mkdtemp(prefix="privca-storm-"))
    try:
        with dns_server() as dns:
            for kind in targets:
                http_port = free_port()
                with contextlib.ExitStack() as stack:
                    target = stack.enter_context(
                        serving(
                            kind,
                            work,
                            dns,
                            http_port,
                            stack,
                            args.access_log,
                            tuple(args.serve_arg),
                            args.ocsp_at,
                        )
                    )
                    responder = challenge_responder_process(target.webroot, http_port)
                    stack.enter_context(responder)
                    result = asyncio.run(storm(target, args.n, http_port, args.ocsp_probes))
                results.append(result)
                print(json.dumps(result), flush=True)
    except BenchError as exc:
        sys.exit(f"storm.py: {exc}")
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print()
    print("| target | N | orders/s | p50 s | p99 s | max s | errors | badNonce retries | "
          "OCSP p50 ms | OCSP p99 ms | OCSP answered | OCSP failed | "
          "idle OCSP p50 / p99 ms | server CPU s |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['target']} | {r['n']} | {r['orders_per_s']} | {r.get('p50_s', '-')} | "
            f"{r.get('p99_s', '-')} | {r.get('max_s', '-')} | {r['errors']} | "
            f"{r['bad_nonce_retries']} | {r.get('ocsp_p50_ms', '-')} | "
            f"{r.get('ocsp_p99_ms', '-')} | {r['ocsp_requests']} | {r['ocsp_errors']} | "
            f"{r.get('quiet_ocsp_p50_ms', '-')} / {r.get('quiet_ocsp_p99_ms', '-')} | "
            f"{r['server_cpu_s']} |"
        )


if __name__ == "__main__":
    main()
