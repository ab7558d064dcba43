"""`privca serve` as operators run it: a real process, TLS by default, curl and openssl as
clients, a revocation made by another process, SIGTERM, and a restart."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from privca.authority import CertificateAuthority
from tests.conftest import PASSPHRASE, openssl, require_tool
from tests.server.conftest import ServedCA, free_port


class ServeProcess:
    def __init__(self, served: ServedCA, passphrase_file: Path, tmp: Path, *extra: str) -> None:
        self.port = free_port()
        self.tls = "--no-tls" not in extra
        self.base = f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"
        self.served = served
        self.tmpdir = tmp
        tmp.mkdir(exist_ok=True)
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "privca",
                "--home",
                str(served.ca.home.root),
                "serve",
                "--listen",
                f"127.0.0.1:{self.port}",
                "--passphrase-file",
                str(passphrase_file),
                *([] if "--no-tls" in extra else ["--server-name", "127.0.0.1"]),
                *extra,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, "TMPDIR": str(tmp)},
        )
        deadline = time.monotonic() + 20
        while self.curl("/health").returncode != 0:
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.process.kill()
                raise AssertionError(self.process.communicate()[1].decode())
            time.sleep(0.1)

    def curl(self, path: str, *args: str) -> subprocess.CompletedProcess:
        tls = ["--cacert", self.served.path("root.crt")] if self.tls else []
        return subprocess.run(
            ["curl", "-sSf", "--max-time", "5", *tls, *args, self.base + path],
            capture_output=True,
            timeout=10,
        )

    def ocsp_status(self, leaf: str) -> str:
        result = openssl(
            "ocsp",
            "-issuer",
            self.served.path("issuing.crt"),
            "-cert",
            self.served.path(leaf),
            "-url",
            f"{self.base}/ocsp",
            "-CAfile",
            self.served.path("root.crt"),
        )
        assert "Response verify OK" in result.stderr, result.stderr
        return result.stdout.splitlines()[0].rsplit(": ", 1)[1]

    def crl_has(self, serial: int) -> bool:
        from cryptography import x509

        crl = x509.load_der_x509_crl(self.curl("/crl/issuing.crl").stdout)
        return crl.get_revoked_certificate_by_serial_number(serial) is not None

    def terminate(self) -> tuple[int, str]:
        self.process.send_signal(signal.SIGTERM)
        try:
            out, err = self.process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise
        # uvicorn logs requests to stdout and everything else to stderr.
        return self.process.returncode, out.decode() + err.decode()


@pytest.fixture
def processes() -> Iterator[list[ServeProcess]]:
    started: list[ServeProcess] = []
    yield started
    for process in started:
        if process.process.poll() is None:
            process.process.kill()
            process.process.wait()


def test_serve_tls_revocation_sigterm_restart(
    served_ca: ServedCA, passphrase_file: Path, tmp_path: Path, processes
) -> None:
    require_tool("curl")
    require_tool("openssl")
    server = ServeProcess(served_ca, passphrase_file, tmp_path / "tmp1")
    processes.append(server)

    health = json.loads(server.curl("/health").stdout)
    assert health == {"status": "ok", "problems": []}
    # The TLS key is kept for the next start: 0600 in the home's private directory.
    kept = served_ca.ca.home.private / "serve"
    assert stat.S_IMODE(kept.stat().st_mode) == 0o700
    assert stat.S_IMODE((kept / "server.pem").stat().st_mode) == 0o600
    assert not list((tmp_path / "tmp1").iterdir())  # nothing in the temp dir

    assert server.ocsp_status("good.crt") == "good"
    assert not server.crl_has(served_ca.good.serial)

    # Another process revokes, as an operator would while the server runs.
    with CertificateAuthority.open(served_ca.ca.home.root, PASSPHRASE) as other:
        other.revoke(format(served_ca.good.serial, "x"), "keyCompromise")
    assert server.ocsp_status("good.crt") == "revoked"
    assert server.crl_has(served_ca.good.serial)

    started = time.monotonic()
    code, log = server.terminate()
    assert code == 0, log
    assert time.monotonic() - started < 6
    assert '"POST /ocsp HTTP/1.0" 200' in log  # one access-log line per request
    assert "Traceback" not in log

    # After a restart (plain HTTP this time, the usual way for OCSP) it is still revoked.
    again = ServeProcess(served_ca, passphrase_file, tmp_path / "tmp2", "--no-tls")
    processes.append(again)
    assert again.ocsp_status("good.crt") == "revoked"
    assert again.ocsp_status("revoked.crt") == "revoked"
    assert again.crl_has(served_ca.good.serial)
    code, log = again.terminate()
    assert code == 0, log


def test_serve_refuses_a_wrong_passphrase(served_ca: ServedCA, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.txt"
    wrong.write_bytes(b"not the passphrase\n")
    wrong.chmod(0o600)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "privca",
            "--home",
            str(served_ca.ca.home.root),
            "serve",
            "--listen",
            f"127.0.0.1:{free_port()}",
            "--passphrase-file",
            str(wrong),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("privca: error: ")
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "listen", ["127.0.0.1", "127.0.0.1:99999", "host:port", "[nothex]:80"], ids=repr
)
def test_bad_listen_addresses(run_cli, served_ca: ServedCA, listen: str) -> None:
    from tests.conftest import assert_user_error

    result = run_cli("serve", "--listen", listen, home=served_ca.ca.home.root)
    assert_user_error(result, "listen" if "nothex" not in listen else "IPv6")


BAD_SETTINGS = [
    (["--max-header-bytes", "10"], None, "max_header_bytes"),
    (["--read-timeout", "0"], None, "read_timeout"),
    (["--keep-alive-timeout", "-1"], None, "keep_alive_timeout"),
    (["--max-connections", "0"], None, "max_connections"),
    (["--metrics-window", "soon"], None, "duration"),
    (["--metrics-listen", "9464"], None, "--metrics-listen"),
    ([], '[serve]\nread_timeout = "slow"\n', "read_timeout"),
    ([], "[serve]\nmax_connections = true\n", "max_connections"),
    ([], "[acme]\nvalidation_timeout = 0\n", "validation_timeout"),
    ([], "[acme]\nvalidation_workers = 5000\n", "validation_workers"),
    ([], '[acme]\nallow_loopback = "yes"\n', "allow_loopback"),
]


@pytest.mark.parametrize(
    ("flags", "toml", "fragment"),
    BAD_SETTINGS,
    ids=[f"{' '.join(f) or t.split(chr(10))[1]}" for f, t, _ in BAD_SETTINGS],
)
def test_bad_limits_and_validation_settings_are_one_line_errors(
    run_cli, served_ca: ServedCA, flags: list[str], toml: str | None, fragment: str
) -> None:
    from tests.conftest import assert_user_error

    home = served_ca.ca.home.root
    if toml is not None:
        settings = home / "privca.toml"
        settings.write_text(settings.read_text() + "\n" + toml)
    issued = served_ca.ca.inventory.count()
    result = run_cli(
        "serve", "--listen", f"127.0.0.1:{free_port()}", "--server-name", "localhost",
        "--passphrase-file", str(run_cli.passphrase_file), *flags, home=home,
    )  # fmt: skip
    assert_user_error(result, fragment)
    assert served_ca.ca.inventory.count() == issued  # checked before anything is issued
