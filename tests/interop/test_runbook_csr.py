"""CSRs made by the runbook's own openssl commands, signed by `privca sign`.

The runbook makes a key with `openssl genpkey` and a CSR with `openssl req -addext`; privca
must take only the key and the names from it. A CSR asking for CA rights yields a plain
leaf that openssl cannot use to sign a further certificate that verifies (whereas the
runbook's `-copy_extensions copyall` makes it a CA: shown as a control), and `--strict`
refuses such a CSR outright, writing nothing.
"""

from __future__ import annotations

import json
from pathlib import Path
from subprocess import CompletedProcess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from cryptography.x509.oid import ExtendedKeyUsageOID

from privca.keys.files import read_ca_key
from privca.x509.encoding import pem_private_key_unencrypted, public_key_der
from tests.conftest import (
    PASSPHRASE,
    Cli,
    assert_user_error,
    openssl,
    require_tool,
    tree_snapshot,
    write,
)
from tests.interop.conftest import openssl_output

NAME = "mail.corp.internal"
IP = "10.0.0.7"
SUBJECT_ALT_NAME = f"subjectAltName=DNS:{NAME},IP:{IP}"

EC_P256 = ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]
RSA_2048 = ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]
KEY_ALGORITHMS = [pytest.param(EC_P256, id="ec-p256"), pytest.param(RSA_2048, id="rsa-2048")]

# (profile option, EKUs the leaf must carry exactly, openssl verify purpose)
PROFILES = [
    pytest.param(
        [],
        {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH},
        "sslserver",
        id="default-profile",
    ),
    pytest.param(
        ["--profile", "server"], {ExtendedKeyUsageOID.SERVER_AUTH}, "sslserver", id="server"
    ),
    pytest.param(
        ["--profile", "client"], {ExtendedKeyUsageOID.CLIENT_AUTH}, "sslclient", id="client"
    ),
]

CA_REQUEST = [
    "-addext", "basicConstraints=critical,CA:TRUE",
    "-addext", "keyUsage=critical,digitalSignature,keyCertSign,cRLSign",
]  # fmt: skip


@pytest.fixture(autouse=True)
def _openssl() -> None:
    require_tool("openssl")


def _init_cli(base: Path, *options: str) -> Cli:
    passphrase_file = write(base / "passphrase.txt", PASSPHRASE + b"\n", 0o600)
    cli = Cli(base / "home", passphrase_file)
    result = cli(
        "init", "--name", "Runbook Internal CA",
        "--permit", "corp.internal", "--permit", "10.0.0.0/8",
        "--passphrase-file", str(passphrase_file), *options,
    )  # fmt: skip
    assert result.exit_code == 0, result.output + result.stderr
    return cli


@pytest.fixture(scope="module")
def corp_cli(tmp_path_factory: pytest.TempPathFactory) -> Cli:
    """One CLI-initialised two-tier CA home for the module (init costs a KDF and keygen)."""
    return _init_cli(tmp_path_factory.mktemp("runbook-two-tier"))


@pytest.fixture(scope="module")
def single_tier_cli(tmp_path_factory: pytest.TempPathFactory) -> Cli:
    """The runbook's shape: the root signs services directly (no pathlen limit below it)."""
    return _init_cli(tmp_path_factory.mktemp("runbook-single-tier"), "--single-tier")


@pytest.fixture(params=["two-tier", "single-tier"])
def tier_cli(request: pytest.FixtureRequest) -> Cli:
    return request.getfixturevalue("corp_cli" if request.param == "two-tier" else "single_tier_cli")


def _runbook_csr(directory: Path, algorithm: list[str], *extra: str) -> tuple[Path, Path]:
    """The runbook's two commands, verbatim apart from the paths."""
    directory.mkdir(parents=True, exist_ok=True)
    key, csr = directory / "k.pem", directory / "r.csr"
    made = openssl("genpkey", *algorithm, "-out", str(key))
    assert made.returncode == 0, openssl_output(made)
    made = openssl(
        "req", "-new", "-key", str(key), "-subj", f"/CN={NAME}",
        "-addext", SUBJECT_ALT_NAME, *extra, "-out", str(csr),
    )  # fmt: skip
    assert made.returncode == 0, openssl_output(made)
    return key, csr


def _sign(cli: Cli, csr: Path, out: Path, *options: str) -> x509.Certificate:
    result = cli(
        "sign", str(csr), "--out", str(out), "--passphrase-file", str(cli.passphrase_file),
        *options,
    )  # fmt: skip
    assert result.exit_code == 0, result.output + result.stderr
    return x509.load_pem_x509_certificate((out / f"{NAME}.crt").read_bytes())


def _verify(cli: Cli, certificate: Path, *flags: str, untrusted: bytes = b"") -> CompletedProcess:
    """openssl verify -x509_strict trusting only the home's root; the issuing CA (if any)
    and `untrusted` are offered as untrusted intermediates."""
    certs = cli.home / "certs"
    issuing = certs / "issuing.crt"
    pool = write(
        certificate.with_name(certificate.name + ".untrusted.pem"),
        (issuing.read_bytes() if issuing.exists() else b"") + untrusted,
    )
    return openssl(
        "verify", "-x509_strict", "-CAfile", str(certs / "root.crt"),
        *(["-untrusted", str(pool)] if pool.stat().st_size else []), *flags, str(certificate),
    )  # fmt: skip


def _extension(cert: x509.Certificate, kind: type[x509.ExtensionType]) -> x509.Extension:
    return cert.extensions.get_extension_for_class(kind)


@pytest.mark.parametrize("algorithm", KEY_ALGORITHMS)
@pytest.mark.parametrize(("profile", "usages", "purpose"), PROFILES)
def test_sign_runbook_csr(
    corp_cli: Cli,
    tmp_path: Path,
    algorithm: list[str],
    profile: list[str],
    usages: set[x509.ObjectIdentifier],
    purpose: str,
) -> None:
    key, csr = _runbook_csr(tmp_path / "host", algorithm)
    out = tmp_path / "out"
    cert = _sign(corp_cli, csr, out, *profile)

    san = _extension(cert, x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == [NAME]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == [IP]
    assert len(list(san)) == 2
    constraints = _extension(cert, x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca is False
    assert set(_extension(cert, x509.ExtendedKeyUsage).value) == usages
    assert not _extension(cert, x509.KeyUsage).value.key_cert_sign
    service_key = load_pem_private_key(key.read_bytes(), None)
    assert public_key_der(cert.public_key()) == public_key_der(service_key.public_key())

    crt = out / f"{NAME}.crt"
    result = _verify(corp_cli, crt, "-purpose", purpose, "-verify_hostname", NAME, "-verify_ip", IP)
    assert result.returncode == 0, openssl_output(result)
    # openssl agrees the certificate belongs to the key the service host made.
    cert_key = openssl("x509", "-in", str(crt), "-noout", "-pubkey")
    host_key = openssl("pkey", "-in", str(key), "-pubout")
    assert cert_key.stdout == host_key.stdout and cert_key.stdout
    # The chain file privca writes is what a server sends: leaf first, then the issuing CA.
    chain = x509.load_pem_x509_certificates((out / f"{NAME}.chain.pem").read_bytes())
    assert chain[0] == cert and len(chain) == 2


def _grandchild(directory: Path, leaf: Path, leaf_key: Path) -> Path:
    """Use a certificate as a CA the way the runbook would: `openssl x509 -req -CA`."""
    directory.mkdir(parents=True, exist_ok=True)
    key, csr, crt = directory / "g.key", directory / "g.csr", directory / "g.crt"
    steps = [
        ("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(key)),
        (
            "req", "-new", "-key", str(key), "-subj", "/CN=evil.corp.internal",
            "-addext", "subjectAltName=DNS:evil.corp.internal", "-out", str(csr),
        ),
        (
            "x509", "-req", "-in", str(csr), "-CA", str(leaf), "-CAkey", str(leaf_key),
            "-set_serial", "4660", "-days", "30", "-copy_extensions", "copyall",
            "-out", str(crt),
        ),
    ]  # fmt: skip
    for step in steps:
        made = openssl(*step)
        assert made.returncode == 0, openssl_output(made)
    return crt


@pytest.mark.parametrize("algorithm", KEY_ALGORITHMS)
def test_csr_asking_for_ca_rights_gets_a_plain_leaf(
    tier_cli: Cli, tmp_path: Path, algorithm: list[str]
) -> None:
    key, csr = _runbook_csr(tmp_path / "host", algorithm, *CA_REQUEST)
    result = tier_cli(
        "sign", str(csr), "--out", str(tmp_path / "out"),
        "--passphrase-file", str(tier_cli.passphrase_file),
    )  # fmt: skip
    assert result.exit_code == 0, result.output + result.stderr
    assert "CA rights" in result.stderr and "not copied" in result.stderr, result.stderr
    leaf_path = tmp_path / "out" / f"{NAME}.crt"
    leaf = x509.load_pem_x509_certificate(leaf_path.read_bytes())
    assert _extension(leaf, x509.BasicConstraints).value.ca is False
    usage = _extension(leaf, x509.KeyUsage).value
    assert not usage.key_cert_sign and not usage.crl_sign

    # openssl signs a grandchild with the leaf's key, but verification refuses the path.
    grandchild = _grandchild(tmp_path / "attack", leaf_path, key)
    verified = _verify(tier_cli, grandchild, untrusted=leaf_path.read_bytes())
    assert verified.returncode != 0, openssl_output(verified)
    assert "invalid CA certificate" in verified.stderr, openssl_output(verified)


def test_control_runbook_copyall_makes_the_service_a_ca(
    single_tier_cli: Cli, tmp_path: Path
) -> None:
    """Control: the same CSR signed the runbook's way (`openssl x509 -req -copy_extensions
    copyall`) by the same single-tier root key gives a 'leaf' whose grandchild openssl
    accepts. So the refusal above is privca's doing, not an artefact of the test."""
    cli = single_tier_cli
    key, csr = _runbook_csr(tmp_path / "host", EC_P256, *CA_REQUEST)
    root_key = read_ca_key(cli.home / "private" / "root.key", PASSPHRASE)
    root_key_pem = write(tmp_path / "root.key", pem_private_key_unencrypted(root_key), 0o600)
    leaf_path = tmp_path / "runbook-leaf.crt"
    made = openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(cli.home / "certs" / "root.crt"),
        "-CAkey", str(root_key_pem), "-set_serial", "4661", "-days", "30",
        "-copy_extensions", "copyall", "-out", str(leaf_path),
    )  # fmt: skip
    assert made.returncode == 0, openssl_output(made)
    grandchild = _grandchild(tmp_path / "attack", leaf_path, key)
    verified = _verify(cli, grandchild, untrusted=leaf_path.read_bytes())
    assert verified.returncode == 0, openssl_output(verified)


@pytest.mark.parametrize("algorithm", KEY_ALGORITHMS)
def test_strict_refuses_csr_asking_for_ca_rights(
    corp_cli: Cli, tmp_path: Path, algorithm: list[str]
) -> None:
    _, csr = _runbook_csr(tmp_path / "host", algorithm, *CA_REQUEST)
    out = tmp_path / "out"
    before_home = tree_snapshot(corp_cli.home)
    inventory = corp_cli("list", "--json")
    assert inventory.exit_code == 0, inventory.stderr
    result = corp_cli(
        "sign", str(csr), "--strict", "--out", str(out),
        "--passphrase-file", str(corp_cli.passphrase_file),
    )  # fmt: skip
    assert_user_error(result, "CA rights")
    assert tree_snapshot(out) == {}
    assert tree_snapshot(corp_cli.home) == before_home
    assert json.loads(corp_cli("list", "--json").output) == json.loads(inventory.output)
