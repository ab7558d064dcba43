"""ACME benchmark (by hand, not CI): median time of one full lego http-01 issuance against
privca and against Debian's pebble (PEBBLE_VA_ALWAYS_VALID=1 PEBBLE_VA_NOSLEEP=1) in the
same run, and concurrent newOrder requests per second against privca.

    python benchmarks/acme.py [--rounds 7] [--threads 8] [--orders 25]

Target: privca's median <= 0.5 x pebble's.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

# This file is named acme.py: keep its directory off sys.path so `import acme` finds certbot's.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

from cryptography.hazmat.primitives.serialization import (  # noqa: E402
    Encoding,
    NoEncryption,
    PrivateFormat,
)

from privca.acme.routes import acme_app_for  # noqa: E402
from privca.acme.service import AcmeSettings  # noqa: E402
from privca.authority import CertificateAuthority  # noqa: E402
from tests.acme.conftest import free_port, mount, serve_https  # noqa: E402


def lego_once(directory: str, root: Path, http_port: int, work: Path, name: str) -> float:
    started = time.perf_counter()
    result = subprocess.run(
        [
            "lego", "--server", directory, "--accept-tos", "--email", "b@example.test",
            "--path", str(work), "--domains", name,
            "--http", "--http.port", f"127.0.0.1:{http_port}", "run",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "LEGO_CA_CERTIFICATES": str(root)},
    )  # fmt: skip
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-2000:])
    return elapsed


def start_pebble(
    ca: CertificateAuthority, tmp: Path, http_port: int
) -> tuple[subprocess.Popen, str]:
    issued = ca.issue(["localhost", "127.0.0.1"], profile="server")
    (tmp / "pebble.pem").write_bytes(issued.chain_pem())
    (tmp / "pebble.key").write_bytes(
        issued.private_key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    )
    port = free_port()
    config = {
        "pebble": {
            "listenAddress": f"127.0.0.1:{port}",
            "managementListenAddress": f"127.0.0.1:{free_port()}",
            "certificate": str(tmp / "pebble.pem"),
            "privateKey": str(tmp / "pebble.key"),
            "httpPort": http_port,
            "tlsPort": free_port(),
            "ocspResponderURL": "",
            "externalAccountBindingRequired": False,
        }
    }
    (tmp / "pebble.json").write_text(json.dumps(config))
    env = {
        **os.environ,
        "PEBBLE_VA_ALWAYS_VALID": "1",
        "PEBBLE_VA_NOSLEEP": "1",
        "PEBBLE_WFE_NONCEREJECT": "0",
    }
    process = subprocess.Popen(
        ["pebble", "-config", str(tmp / "pebble.json")],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.0)
    return process, f"https://127.0.0.1:{port}/dir"


def concurrent_orders(directory: str, root: Path, threads: int, orders: int) -> float:
    import josepy as jose
    from acme import client, messages
    from cryptography.hazmat.primitives.asymmetric import ec

    clients = []
    for _ in range(threads):
        key = jose.JWKEC(key=ec.generate_private_key(ec.SECP256R1()))
        net = client.ClientNetwork(key, alg=jose.ES256, verify_ssl=str(root))
        acme = client.ClientV2(client.ClientV2.get_directory(directory, net), net)
        acme.new_account(messages.NewRegistration.from_data(terms_of_service_agreed=True))
        clients.append(acme)

    def work(acme: client.ClientV2, index: int) -> None:
        for n in range(orders):
            acme._post(  # the raw newOrder POST: no CSR needed
                acme.directory["newOrder"],
                messages.NewOrder(
                    identifiers=(
                        messages.Identifier(
                            typ=messages.IDENTIFIER_FQDN, value=f"o{index}-{n}.test"
                        ),
                    )
                ),
            )

    started = time.perf_counter()
    workers = [threading.Thread(target=work, args=(c, i)) for i, c in enumerate(clients)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return threads * orders / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--orders", type=int, default=25)
    args = parser.parse_args()
    for tool in ("lego", "pebble"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed")
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        ca = CertificateAuthority.init(tmp / "ca", "Bench CA", passphrase=b"bench passphrase")
        root = tmp / "root.pem"
        root.write_bytes(ca.root.public_bytes(Encoding.PEM))
        http_port = free_port()
        app = acme_app_for(ca, AcmeSettings(http_01_port=http_port, orders_per_window=10**6))
        (tmp / "srv").mkdir()
        pebble, pebble_dir = start_pebble(ca, tmp, http_port)
        try:
            with serve_https(mount(app), ca, tmp / "srv") as port:
                privca_dir = f"https://127.0.0.1:{port}/acme/directory"
                privca_times, pebble_times = [], []
                for i in range(args.rounds):
                    privca_times.append(
                        lego_once(privca_dir, root, http_port, tmp / f"lp{i}", "localhost")
                    )
                    pebble_times.append(
                        lego_once(pebble_dir, root, http_port, tmp / f"lq{i}", f"b{i}.test")
                    )
                rate = concurrent_orders(privca_dir, root, args.threads, args.orders)
        finally:
            pebble.terminate()
            pebble.wait(10)
        p, q = statistics.median(privca_times), statistics.median(pebble_times)
        print(f"lego http-01 issuance, median of {args.rounds}:")
        print(f"  privca  {p * 1000:8.1f} ms")
        print(f"  pebble  {q * 1000:8.1f} ms   (VA always valid, no sleep)")
        print(f"  ratio   {p / q:8.2f} x   (target <= 0.50)")
        print(
            f"concurrent newOrder against privca: {rate:.1f} orders/s "
            f"({args.threads} threads x {args.orders})"
        )
        ca.close()


if __name__ == "__main__":
    main()
