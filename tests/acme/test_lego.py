"""lego (Debian package) against privca's ACME server: http-01, tls-alpn-01, dns-01 with a
wildcard (TXT records served by pebble-challtestsrv), renew and revoke."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

from cryptography import x509

from tests.acme.conftest import AcmeServer, openssl_verify
from tests.conftest import require_tool

DNS_HOOK = """\
import json, sys, urllib.request
action, fqdn, value = sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else ""
path, body = ("/set-txt", {"host": fqdn, "value": value}) if action == "present" else (
    "/clear-txt", {"host": fqdn})
if action in ("present", "cleanup"):
    urllib.request.urlopen(urllib.request.Request(
        "http://127.0.0.1:%(port)d" + path, data=json.dumps(body).encode()), timeout=5).read()
"""


def lego(
    server: AcmeServer, tmp_path: Path, args: list[str], env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    binary = require_tool("lego")
    result = subprocess.run(
        [
            binary,
            "--server", server.url,
            "--accept-tos",
            "--email", "ops@example.test",
            "--path", str(tmp_path / "lego"),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "LEGO_CA_CERTIFICATES": str(server.root_pem), **(env or {})},
    )  # fmt: skip
    return result


def _cert(tmp_path: Path, name: str) -> Path:
    return tmp_path / "lego" / "certificates" / f"{name}.crt"


def test_lego_http01_renew_revoke(acme_server: AcmeServer, tmp_path: Path) -> None:
    http = ["--http", "--http.port", f"127.0.0.1:{acme_server.http_port}"]
    result = lego(acme_server, tmp_path, ["--domains", "web.test", *http, "run"])
    assert result.returncode == 0, result.stdout + result.stderr
    path = _cert(tmp_path, "web.test")
    openssl_verify(acme_server, path)
    first = x509.load_pem_x509_certificate(path.read_bytes()).serial_number

    result = lego(
        acme_server,
        tmp_path,
        ["--domains", "web.test", *http, "renew", "--days", "10000", "--no-random-sleep"],
    )
    assert result.returncode == 0, result.stdout + result.stderr
    second = x509.load_pem_x509_certificate(path.read_bytes()).serial_number
    assert second != first
    openssl_verify(acme_server, path)

    result = lego(acme_server, tmp_path, ["--domains", "web.test", "revoke"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert acme_server.ca.inventory.get(second).status == "revoked"


def test_lego_tls_alpn01(acme_server: AcmeServer, tmp_path: Path) -> None:
    tls = ["--tls", "--tls.port", f"127.0.0.1:{acme_server.tls_port}"]
    result = lego(acme_server, tmp_path, ["--domains", "alpn.test", *tls, "run"])
    assert result.returncode == 0, result.stdout + result.stderr
    openssl_verify(acme_server, _cert(tmp_path, "alpn.test"))


def test_lego_dns01_with_a_wildcard(acme_server: AcmeServer, tmp_path: Path) -> None:
    hook = tmp_path / "dns-hook.py"
    hook.write_text(DNS_HOOK % {"port": acme_server.dns.management})
    script = tmp_path / "dns-hook.sh"
    script.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{hook}" "$@"\n')
    script.chmod(0o755)
    env = {
        "EXEC_PATH": str(script),
        "EXEC_POLLING_INTERVAL": "1",
        "EXEC_PROPAGATION_TIMEOUT": "30",
        "EXEC_SEQUENCE_INTERVAL": "1",
    }
    dns = [
        "--dns", "exec",
        "--dns.resolvers", acme_server.dns.address,
        "--dns.disable-cp",
    ]  # fmt: skip
    result = lego(
        acme_server,
        tmp_path,
        ["--domains", "*.wild.test", "--domains", "wild.test", *dns, "run"],
        env,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    path = _cert(tmp_path, "_.wild.test")
    openssl_verify(acme_server, path)
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(names.get_values_for_type(x509.DNSName)) == {"*.wild.test", "wild.test"}


def test_lego_with_eab_required(start_acme, tmp_path: Path) -> None:
    from privca._time import utcnow
    from privca.acme.repository import EabKeyRow

    server = start_acme(eab="required")
    http = ["--http", "--http.port", f"127.0.0.1:{server.http_port}"]
    refused = lego(server, tmp_path / "none", ["--domains", "eab.test", *http, "run"])
    assert refused.returncode != 0
    assert "External Account Binding" in refused.stdout + refused.stderr  # from meta
    hmac_key = "bGVnby1lYWItaG1hYy1rZXktZm9yLXRlc3RpbmctMzJieQ"
    secret = base64.urlsafe_b64decode(hmac_key + "=" * (-len(hmac_key) % 4))
    server.store.add_eab_key(EabKeyRow("kid-lego", "lego", None, utcnow(), None, 0), secret)
    eab = ["--eab", "--kid", "kid-lego", "--hmac", hmac_key]
    result = lego(server, tmp_path / "eab", [*eab, "--domains", "eab.test", *http, "run"])
    assert result.returncode == 0, result.stdout + result.stderr
    openssl_verify(server, _cert(tmp_path / "eab", "eab.test"))
