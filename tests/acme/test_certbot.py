"""certbot (unmodified, from PyPI) against privca's ACME server over TLS on 127.0.0.1."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from privca.acme.repository import EabKeyRow
from tests.acme.conftest import AcmeServer, openssl_verify
from tests.conftest import require_tool


def certbot(server: AcmeServer, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # certbot from the test extra sits next to this Python, even outside an activated venv.
    sibling = Path(sys.executable).with_name("certbot")
    binary = str(sibling) if sibling.exists() else require_tool("certbot")
    env = {**os.environ, "REQUESTS_CA_BUNDLE": str(server.root_pem)}
    return subprocess.run(
        [
            binary, *args,
            "--non-interactive",
            "--server", server.url,
            "--config-dir", str(tmp_path / "config"),
            "--work-dir", str(tmp_path / "work"),
            "--logs-dir", str(tmp_path / "logs"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )  # fmt: skip


def certonly(server: AcmeServer, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return certbot(
        server,
        tmp_path,
        "certonly",
        "--standalone",
        "--http-01-port", str(server.http_port),
        "--http-01-address", "127.0.0.1",
        "--agree-tos",
        "--register-unsafely-without-email",
        "-d", "a.test",
        *extra,
    )  # fmt: skip


def test_certbot_registers_obtains_renews_and_revokes(
    acme_server: AcmeServer, tmp_path: Path
) -> None:
    result = certonly(acme_server, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    live = tmp_path / "config" / "live" / "a.test"
    openssl_verify(acme_server, live / "fullchain.pem")
    first = (live / "cert.pem").read_bytes()

    result = certbot(
        acme_server,
        tmp_path,
        "renew",
        "--force-renewal",
        "--no-random-sleep-on-renew",
        "--http-01-port", str(acme_server.http_port),
        "--http-01-address", "127.0.0.1",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert (live / "cert.pem").read_bytes() != first
    openssl_verify(acme_server, live / "fullchain.pem")

    result = certbot(
        acme_server,
        tmp_path,
        "revoke",
        "--cert-path", str(live / "cert.pem"),
        "--no-delete-after-revoke",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    from cryptography import x509

    serial = x509.load_pem_x509_certificate((live / "cert.pem").read_bytes()).serial_number
    assert acme_server.ca.inventory.get(serial).status == "revoked"


def test_certbot_with_eab_required(start_acme, tmp_path: Path) -> None:
    server = start_acme(eab="required")
    refused = certonly(server, tmp_path / "no-eab")
    assert refused.returncode != 0
    assert "external account" in (refused.stdout + refused.stderr).lower()

    from privca._time import utcnow

    server.store.add_eab_key(
        EabKeyRow(
            kid="kid-1",
            label="test",
            profile=None,
            created_at=utcnow(),
            revoked_at=None,
            accounts=0,
        ),
        b"secret-hmac-key-for-testing-32bytes",
    )
    result = certonly(
        server,
        tmp_path / "eab",
        "--eab-kid", "kid-1",
        "--eab-hmac-key", "c2VjcmV0LWhtYWMta2V5LWZvci10ZXN0aW5nLTMyYnl0ZXM",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    [account] = server.store.accounts()
    assert account.eab_kid == "kid-1"
