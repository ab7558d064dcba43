"""Revocation benchmarks, run by hand (not in CI): python benchmarks/revocation.py

1. CRL build time for 10k and 100k revoked entries: privca's x509/crl.build_crl against
   raw cryptography (entries passed to the builder's constructor in one call), and for
   10k the fluent add_revoked_certificate() loop FACTS.md warns about.
2. OCSP responses per second over HTTP on 127.0.0.1: `privca serve --no-tls` (cached
   path) against `openssl ocsp -port` (one process each), with the same thread pool of
   keep-alive clients, the same request, in the same run. Prints the ratio.
"""

from __future__ import annotations

import datetime as dt
import http.client
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from cryptography.x509 import ocsp

from privca.authority import CertificateAuthority
from privca.x509.build import ca_subject, self_issuer
from privca.x509.crl import Revocation, build_crl

PASSPHRASE = b"benchmark passphrase"
CLIENT_THREADS = 8
SECONDS = 3.0
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


def timed(function: Callable[[], object]) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


# 1. CRLs ----------------------------------------------------------------------------------


def crl_benchmark() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    issuer = self_issuer(ca_subject("Benchmark CA"), key)
    print("CRL build (P-256 signature)")
    for count in (10_000, 100_000):
        entries = [
            Revocation(secrets.randbits(126) | 1 << 126, NOW, "keyCompromise") for _ in range(count)
        ]

        def privca_build(entries: list[Revocation] = entries) -> object:
            return build_crl(issuer, entries, 1, NOW, NOW + dt.timedelta(days=7))

        def raw_build(entries: list[Revocation] = entries) -> object:
            revoked = [
                x509.RevokedCertificateBuilder()
                .serial_number(e.serial)
                .revocation_date(e.revoked_at)
                .add_extension(x509.CRLReason(x509.ReasonFlags.key_compromise), False)
                .build()
                for e in entries
            ]
            builder = x509.CertificateRevocationListBuilder(
                issuer_name=issuer.name,
                last_update=NOW,
                next_update=NOW + dt.timedelta(days=7),
                revoked_certificates=revoked,
            )
            return builder.sign(key, hashes.SHA256())

        ours, raw = timed(privca_build), timed(raw_build)
        print(
            f"  {count:>7} entries: privca build_crl {ours:6.2f} s, raw cryptography "
            f"{raw:6.2f} s, ratio {ours / raw:4.2f}"
        )
        if count == 10_000:
            revoked = [
                x509.RevokedCertificateBuilder()
                .serial_number(e.serial)
                .revocation_date(e.revoked_at)
                .build()
                for e in entries
            ]

            def fluent(revoked: list[x509.RevokedCertificate] = revoked) -> object:
                builder = (
                    x509.CertificateRevocationListBuilder()
                    .issuer_name(issuer.name)
                    .last_update(NOW)
                    .next_update(NOW + dt.timedelta(days=7))
                )
                for entry in revoked:
                    builder = builder.add_revoked_certificate(entry)
                return builder.sign(key, hashes.SHA256())

            print(f"  {count:>7} entries: fluent add_revoked_certificate() {timed(fluent):6.2f} s")


# 2. OCSP ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until_answering(port: int, body: bytes, seconds: float = 20) -> None:
    """Poll with real requests: openssl's one-at-a-time responder hangs on a connection
    that is opened and closed without a request, so a bare connect() probe will not do."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            check_response(port, body)
            return
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def load_test(port: int, body: bytes) -> tuple[float, int]:
    """Responses per second from CLIENT_THREADS keep-alive clients for SECONDS.
    http.client reconnects by itself when a server closes after each response."""
    counts = [0] * CLIENT_THREADS
    errors = [0] * CLIENT_THREADS
    stop = time.monotonic() + SECONDS
    headers = {"Content-Type": "application/ocsp-request"}

    def client(index: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        while time.monotonic() < stop:
            try:
                connection.request("POST", "/ocsp", body, headers)
                response = connection.getresponse()
                data = response.read()
                if response.will_close:
                    connection.close()
                if response.status == 200 and data[:1] == b"\x30":
                    counts[index] += 1
                else:
                    errors[index] += 1
            except (OSError, http.client.HTTPException):
                errors[index] += 1
                connection.close()
        connection.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENT_THREADS)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts) / (time.perf_counter() - started), sum(errors)


WRK_SCRIPT = """
local f = io.open("{body}", "rb")
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/ocsp-request"
"""


def wrk_load_test(port: int, body: bytes, work: Path) -> tuple[float, int]:
    """The same load from wrk, a native load generator, when it is installed: Python client
    threads on a 2-core machine otherwise measure themselves more than the server."""
    body_file, script = work / "request.der", work / "ocsp.lua"
    body_file.write_bytes(body)
    script.write_text(WRK_SCRIPT.format(body=body_file))
    output = subprocess.run(
        [
            "wrk",
            "-t2",
            "-c16",
            f"-d{SECONDS:.0f}s",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}/ocsp",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return rate, int(errors.group(1)) if errors else 0


def check_response(port: int, body: bytes) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("POST", "/ocsp", body, {"Content-Type": "application/ocsp-request"})
    response = ocsp.load_der_ocsp_response(connection.getresponse().read())
    connection.close()
    assert response.certificate_status == ocsp.OCSPCertStatus.GOOD, response.response_status


def openssl_index_line(cert: x509.Certificate) -> str:
    expiry = cert.not_valid_after_utc.strftime("%y%m%d%H%M%SZ")
    return f"V\t{expiry}\t\t{cert.serial_number:X}\tunknown\t{cert.subject.rfc4514_string()}\n"


def ocsp_benchmark(work: Path) -> None:
    ca = CertificateAuthority.init(work / "ca", "Benchmark CA", passphrase=PASSPHRASE)
    leaf = ca.issue(["bench.example"]).certificate
    body = (
        ocsp.OCSPRequestBuilder()
        .add_certificate(leaf, ca.issuing, hashes.SHA1())
        .build()
        .public_bytes(Encoding.DER)
    )
    passphrase_file = work / "passphrase"
    passphrase_file.write_bytes(PASSPHRASE)
    passphrase_file.chmod(0o600)

    # openssl's responder: index.txt, a responder certificate and its key in files.
    responder_cert, responder_key = ca.issue_ocsp_responder(ca.publishing_authorities()[0])
    (work / "index.txt").write_text(openssl_index_line(leaf))
    (work / "rsigner.pem").write_bytes(responder_cert.public_bytes(Encoding.PEM))
    key_path = work / "rkey.pem"
    key_path.write_bytes(
        responder_key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    )
    key_path.chmod(0o600)
    (work / "issuing.pem").write_bytes(ca.issuing.public_bytes(Encoding.PEM))
    ca.close()

    results: dict[str, float] = {}
    quiet = subprocess.DEVNULL
    port = free_port()
    privca = subprocess.Popen(
        [
            *(sys.executable, "-m", "privca", "-q", "--home", str(work / "ca"), "serve"),
            *("--no-tls", "--listen", f"127.0.0.1:{port}"),
            *("--passphrase-file", str(passphrase_file)),
        ],
        stdout=quiet,
        stderr=quiet,
    )
    try:
        wait_until_answering(port, body)  # also fills the cache: the rest is the cached path
        results["privca serve"], errors = load_test(port, body)
        print(f"  privca serve (cached path): {results['privca serve']:8.0f} responses/s")
        print(f"    ({errors} errors)")
        if shutil.which("wrk"):
            # openssl's responder answers nothing to wrk, so this is privca's capacity alone.
            rate, errors = wrk_load_test(port, body, work)
            print(f"  privca serve under wrk -c16: {rate:7.0f} responses/s ({errors} errors)")
    finally:
        privca.send_signal(signal.SIGTERM)
        privca.wait(10)

    port = free_port()
    responder = subprocess.Popen(
        [
            *("openssl", "ocsp", "-index", str(work / "index.txt"), "-port", str(port)),
            *("-rsigner", str(work / "rsigner.pem"), "-rkey", str(key_path)),
            *("-CA", str(work / "issuing.pem"), "-ndays", "1"),
        ],
        stdout=quiet,
        stderr=quiet,
    )
    try:
        wait_until_answering(port, body)
        results["openssl"], errors = load_test(port, body)
        print(f"  openssl ocsp -port:         {results['openssl']:8.0f} responses/s")
        print(f"    ({errors} errors)")
    finally:
        responder.terminate()
        responder.wait(10)
    ratio = results["privca serve"] / results["openssl"]
    print(f"  ratio privca / openssl: {ratio:.1f}x (target >= 10x)")


def main() -> None:
    print(f"cpu count {os.cpu_count()}, {CLIENT_THREADS} client threads, {SECONDS:.0f} s each")
    crl_benchmark()
    print(f"OCSP over HTTP on 127.0.0.1 ({CLIENT_THREADS} keep-alive clients, {SECONDS} s)")
    with tempfile.TemporaryDirectory(prefix="privca-bench-") as work:
        ocsp_benchmark(Path(work))


if __name__ == "__main__":
    main()
