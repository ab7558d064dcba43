"""nginx (Debian package) serves a privca chain, and the clients people run accept it:
curl, `openssl s_client -verify_return_error -x509_strict`, Python's default context and
a Java (JSSE) client. Python and Java trust the root through `privca trust install` into
throwaway stores (a Debian-layout system root, a PKCS#12 truststore), never this
machine's own; curl and openssl are given the root file.

The CA is name-constrained (corp.internal, 127.0.0.0/8), so every client also enforces
the constraints on the served chain.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from privca.cli.main import cli
from privca.keys.types import KeyType
from tests.conftest import require_tool, write
from tests.interop._processes import free_port, stop, wait_for_port
from tests.interop.conftest import CAPool, Leaf, PooledCA

SITE = "svc.corp.internal"
PERMITTED = ("corp.internal", "127.0.0.0/8")
JAVA_CLIENT = Path(__file__).parents[1] / "trust" / "TlsClient.java"

NGINX_CONF = """\
daemon off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
    server {{
        listen 127.0.0.1:{port} ssl;
        server_name {site};
        ssl_certificate {chain};
        ssl_certificate_key {key};
        location / {{ return 200 "hello from nginx\\n"; }}
    }}
}}
"""

# CA shape and leaf key type
SHAPES = {
    "ec-two-tier": (None, False, KeyType.EC_P256),
    "rsa-single-tier": (KeyType.RSA_3072, True, KeyType.RSA_2048),
}


@pytest.fixture(scope="module", params=list(SHAPES))
def served(request: pytest.FixtureRequest, ca_pool: CAPool) -> tuple[PooledCA, Leaf]:
    ca_key, single_tier, leaf_key = SHAPES[request.param]
    pooled = ca_pool.get(ca_key, single_tier=single_tier, permitted=PERMITTED)
    return pooled, pooled.leaf(SITE, "127.0.0.1", profile="server", key_type=leaf_key)


@pytest.fixture(scope="module")
def nginx(served: tuple[PooledCA, Leaf], tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    # /usr/sbin is not on every user's PATH.
    binary = (
        shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin") or require_tool("nginx")
    )
    _pooled, leaf = served
    prefix = tmp_path_factory.mktemp("nginx")
    (prefix / "tmp").mkdir(parents=True)
    port = free_port()
    conf = write(
        prefix / "nginx.conf",
        NGINX_CONF.format(prefix=prefix, port=port, site=SITE, chain=leaf.chain, key=leaf.key),
    )
    process = subprocess.Popen(
        [binary, "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    wait_for_port(port, process, "nginx")
    yield port
    stop(process)


@pytest.fixture(scope="module")
def throwaway_stores(
    served: tuple[PooledCA, Leaf], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path]:
    """`privca trust install` into a Debian-layout root and a Java truststore of our own."""
    require_tool("update-ca-certificates")
    pooled, _ = served
    tmp_path = tmp_path_factory.mktemp("stores")
    sysroot = tmp_path / "sysroot"
    for directory in (
        "etc/ssl/certs",
        "etc/ca-certificates/update.d",
        "usr/local/share/ca-certificates",
        "usr/share/ca-certificates",
    ):
        (sysroot / directory).mkdir(parents=True)
    (sysroot / "etc/ca-certificates.conf").write_text("")
    truststore = tmp_path / "truststore.p12"
    result = CliRunner().invoke(
        cli,
        [
            "trust", "install", str(pooled.root_crt), "--stores", "system,java",
            "--system-root", str(sysroot), "--java-truststore", str(truststore),
        ],
        catch_exceptions=False,
    )  # fmt: skip
    assert result.exit_code == 0, result.output + result.stderr
    return sysroot, truststore


def test_curl_accepts_the_chain(served, nginx: int) -> None:
    pooled, _ = served
    result = subprocess.run(
        [
            require_tool("curl"), "-sS", "--fail", "--max-time", "10",
            "--cacert", str(pooled.root_crt), "--resolve", f"{SITE}:{nginx}:127.0.0.1",
            f"https://{SITE}:{nginx}/",
        ],
        capture_output=True,
        text=True,
        timeout=20,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout == "hello from nginx\n"


def test_openssl_s_client_strict_accepts_the_chain(served, nginx: int) -> None:
    pooled, _ = served
    result = subprocess.run(
        [
            require_tool("openssl"), "s_client", "-connect", f"127.0.0.1:{nginx}",
            "-servername", SITE, "-verify_hostname", SITE,
            "-CAfile", str(pooled.root_crt), "-verify_return_error", "-x509_strict",
        ],
        input="",
        capture_output=True,
        text=True,
        timeout=20,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Verify return code: 0 (ok)" in result.stdout


PYTHON_CLIENT = textwrap.dedent(
    """
    import socket, ssl, sys
    port, name, strict = int(sys.argv[1]), sys.argv[2], sys.argv[3] == "strict"
    context = ssl.create_default_context()  # the default trust: SSL_CERT_FILE/_DIR
    if strict:  # Python 3.13's default; 3.11 leaves it off
        context.verify_flags |= ssl.VERIFY_X509_STRICT
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=name) as tls:
            tls.sendall(b"GET / HTTP/1.0\\r\\nHost: " + name.encode() + b"\\r\\n\\r\\n")
            print(tls.recv(4096).decode().splitlines()[-1])
    """
)


@pytest.mark.parametrize("mode", ["default", "strict"])
def test_python_default_context_accepts_the_chain_after_trust_install(
    served, nginx: int, throwaway_stores: tuple[Path, Path], mode: str
) -> None:
    sysroot, _ = throwaway_stores
    env = {
        **os.environ,
        "SSL_CERT_FILE": str(sysroot / "etc/ssl/certs/ca-certificates.crt"),
        "SSL_CERT_DIR": str(sysroot / "etc/ssl/certs"),
    }
    result = subprocess.run(
        [sys.executable, "-c", PYTHON_CLIENT, str(nginx), SITE, mode],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "hello from nginx\n"
    # The same client without our root in its trust refuses: the store is what made it work.
    empty = {**env, "SSL_CERT_FILE": os.devnull, "SSL_CERT_DIR": str(sysroot / "usr/share")}
    refused = subprocess.run(
        [sys.executable, "-c", PYTHON_CLIENT, str(nginx), SITE, mode],
        capture_output=True,
        text=True,
        timeout=30,
        env=empty,
    )
    assert refused.returncode != 0 and "CERTIFICATE_VERIFY_FAILED" in refused.stderr


@pytest.fixture(scope="session")
def java_classes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """TlsClient.java compiled once (source-file mode would compile it for every run)."""
    classes = tmp_path_factory.mktemp("java-classes")
    result = subprocess.run(
        [require_tool("javac"), "-d", str(classes), str(JAVA_CLIENT)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return classes


def test_java_accepts_the_chain_after_trust_install(
    served, nginx: int, throwaway_stores: tuple[Path, Path], java_classes: Path
) -> None:
    _, truststore = throwaway_stores
    result = subprocess.run(
        [
            require_tool("java"),
            f"-Djavax.net.ssl.trustStore={truststore}",
            "-Djavax.net.ssl.trustStorePassword=changeit",
            "-cp",
            str(java_classes),
            "TlsClient",
            "127.0.0.1",  # checked against the IP address in the certificate
            str(nginx),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("handshake ok: TLSv1.")
    # With the JDK's own cacerts (no privca root) the same client refuses.
    refused = subprocess.run(
        [require_tool("java"), "-cp", str(java_classes), "TlsClient", "127.0.0.1", str(nginx)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode != 0 and "PKIX path building failed" in refused.stderr
