"""The real thing: `privca serve` as a process with ACME on, lego getting a certificate."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from cryptography import x509

from privca.authority import CertificateAuthority
from tests.acme.conftest import DnsServer, free_port
from tests.conftest import PASSPHRASE, Cli, openssl, require_tool, write


def _wait_healthy(url: str, root: Path, process: subprocess.Popen[bytes]) -> None:
    import ssl

    context = ssl.create_default_context(cafile=str(root))
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(url, context=context, timeout=2) as response:
                if json.loads(response.read())["status"] == "ok":
                    return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_lego_against_privca_serve(
    ca: CertificateAuthority, dns_server: DnsServer, run_cli: Cli, tmp_path: Path
) -> None:
    lego = require_tool("lego")
    home = ca.home.root
    passphrase = write(tmp_path / "pass", PASSPHRASE + b"\n", 0o600)
    port, http_port = free_port(), free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "privca", "--home", str(home), "serve",
         "--listen", f"127.0.0.1:{port}", "--server-name", "127.0.0.1",
         "--http-01-port", str(http_port), "--dns-resolver", dns_server.address,
         "--allow-loopback-validation", "--passphrase-file", str(passphrase)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        _wait_healthy(f"https://127.0.0.1:{port}/health", ca.home.root_cert, server)
        result = subprocess.run(
            [lego, "--server", f"https://127.0.0.1:{port}/acme/directory", "--accept-tos",
             "--email", "ops@example.test", "--path", str(tmp_path / "lego"),
             "--domains", "served.test", "--http", "--http.port", f"127.0.0.1:{http_port}",
             "run"],
            capture_output=True, text=True, timeout=120,
            env={**os.environ, "LEGO_CA_CERTIFICATES": str(ca.home.root_cert)},
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        # serve runs its own event loop: uvloop's (uvicorn[standard] installs it here).
        maps = Path(f"/proc/{server.pid}/maps").read_text()
        assert "uvloop/loop." in maps, "serve does not run on uvloop"
    finally:
        server.send_signal(signal.SIGTERM)
        _, stderr = server.communicate(timeout=30)
    assert server.returncode == 0, stderr.decode()
    chain = tmp_path / "lego" / "certificates" / "served.test.crt"
    leaf = x509.load_pem_x509_certificates(chain.read_bytes())[0]
    assert (leaf.not_valid_after_utc - leaf.not_valid_before_utc).days in (89, 90)
    verified = openssl(
        "verify",
        "-x509_strict",
        "-purpose",
        "sslserver",
        "-CAfile",
        str(ca.home.root_cert),
        "-untrusted",
        str(chain),
        str(chain),
    )
    assert verified.returncode == 0, verified.stderr
    listed = json.loads(run_cli("list", "--json", home=home).output)
    assert ["served.test"] in [doc["names"] for doc in listed]


def test_acme_settings_come_from_privca_toml_and_flags(
    ca: CertificateAuthority, run_cli: Cli
) -> None:
    import pytest

    from privca.cli.serve import acme_settings
    from privca.errors import InputError
    from privca.settings import Settings

    text = ca.home.settings.read_text() + (
        '\n[acme]\nhttp_01_port = 8080\neab = "required"\n'
        'profiles = { server = 30, "server-client" = 60 }\n'
    )
    ca.home.settings.write_text(text)
    settings = Settings.read(ca.home.settings)
    # Rewriting privca.toml (e.g. by `rotate issuing`) keeps the [acme] section.
    assert Settings.from_toml(settings.to_toml(), "again").acme == settings.acme
    acme = acme_settings(settings.acme, http_01_port=None, eab=None, dns_resolver=None)
    assert (acme.http_01_port, acme.eab, dict(acme.profiles)) == (
        8080,
        "required",
        {"server": 30, "server-client": 60},
    )
    assert acme_settings(settings.acme, http_01_port=5002).http_01_port == 5002
    with pytest.raises(InputError):
        acme_settings({"eab": "sometimes"})
    with pytest.raises(InputError):
        acme_settings({}, dns_resolver="not-a-resolver")
    with pytest.raises(InputError):
        acme_settings({}, http_01_port=70000)
    # Wrong types in privca.toml are one-line errors, not tracebacks.
    for section in (
        {"http_01_port": "abc"},
        {"profiles": {"server": "ninety"}},
        {"profiles": ["server"]},
        {"profiles": {"privca-server": 30}},
        {"orders_per_window": "many"},
    ):
        with pytest.raises(InputError):
            acme_settings(section)
    with pytest.raises(InputError):
        acme_settings({}, dns_resolver="ns.corp.internal:53")  # must be an address
    assert acme_settings({}, dns_resolver="::1").dns_resolver == "::1"
