"""The PKCS#11 token goes away under a running `privca serve` and comes back (SoftHSM2:
its token directory moved away and back, as an HSM unplugged or restarted). While it is
away, OCSP answers tryLater, CRLs the token must sign are 503 and /health says degraded,
with no traceback in the log; once it is back, all of it works again without a restart.
It used to keep one session forever: internalError and 500 until the server restarted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import openssl, require_tool, write
from tests.keys.test_pkcs11 import MODULE, PIN, softhsm
from tests.server.conftest import free_port

__all__ = ["softhsm"]  # the fixture, shared with tests/keys/test_pkcs11.py


def privca(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # A process of its own: SoftHSM2 reads its configuration once per process.
    return subprocess.run(
        [sys.executable, "-m", "privca", "--home", str(home), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def serve(softhsm: str, tmp_path: Path) -> Iterator[tuple[Path, str, subprocess.Popen[bytes]]]:
    require_tool("curl")
    require_tool("openssl")
    home, pin = tmp_path / "ca", write(tmp_path / "pin", PIN + b"\n", 0o600)
    made = privca(
        home, "init", "--name", "HSM CA", "--hsm-module", MODULE, "--hsm-token", softhsm,
        "--passphrase-file", str(pin),
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    issued = privca(
        home, "issue", "a.corp.internal", "--out", str(tmp_path / "out"),
        "--passphrase-file", str(pin),
    )  # fmt: skip
    assert issued.returncode == 0, issued.stderr
    base = f"http://127.0.0.1:{free_port()}"
    process = subprocess.Popen(
        [sys.executable, "-m", "privca", "--home", str(home), "serve", "--no-tls", "--no-acme",
         "--ocsp-signer", "ca", "--listen", base.removeprefix("http://"),
         "--passphrase-file", str(pin)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while curl(base, "/health").returncode != 0:
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(process.communicate()[1].decode())
        time.sleep(0.2)
    yield home, base, process
    if process.poll() is None:
        process.kill()
    process.wait()


def curl(base: str, path: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["curl", "-sS", "--max-time", "10", "-o", "-", "-w", "\n%{http_code}", base + path],
        capture_output=True,
        timeout=20,
    )


def status(base: str, path: str) -> int:
    return int(curl(base, path).stdout.rsplit(b"\n", 1)[1])


def health(base: str) -> dict[str, object]:
    reply = curl(base, "/health").stdout.rsplit(b"\n", 1)
    assert reply[1] == b"200"
    found: dict[str, object] = json.loads(reply[0])
    return found


def ocsp(home: Path, base: str, leaf: Path) -> str:
    """openssl's word on the leaf: its status, or the responder's error."""
    result = openssl(
        "ocsp", "-issuer", str(home / "certs" / "issuing.crt"), "-cert", str(leaf),
        "-url", f"{base}/ocsp", "-CAfile", str(home / "certs" / "root.crt"),
    )  # fmt: skip
    return result.stdout + result.stderr


def test_serve_recovers_when_the_token_comes_back(serve, tmp_path: Path) -> None:
    home, base, process = serve
    leaf = tmp_path / "out" / "a.corp.internal.crt"
    tokens = Path(os.environ["SOFTHSM2_CONF"]).parent / "tokens"
    assert health(base)["status"] == "ok"

    tokens.rename(tokens.with_name("tokens.gone"))
    tokens.mkdir()
    assert "trylater" in ocsp(home, base, leaf).lower()
    assert status(base, "/crl/issuing.crl") == 503
    away = health(base)
    assert away["status"] == "degraded"
    assert "HSM token" in str(away["problems"])

    tokens.rmdir()
    tokens.with_name("tokens.gone").rename(tokens)
    assert health(base) == {"status": "ok", "problems": []}
    assert f"{leaf}: good" in ocsp(home, base, leaf)
    assert status(base, "/crl/issuing.crl") == 200

    process.terminate()
    _, err = process.communicate(timeout=20)
    assert "Traceback" not in err.decode()
