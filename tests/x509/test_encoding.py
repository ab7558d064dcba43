"""x509/encoding.py: the one boundary where bytes become certificates, CSRs, CRLs and keys.

Keys and files come from the real `openssl` in every form it writes (PKCS#8 and
traditional, PEM and DER, encrypted or not); hostile bytes get one InputError that says
what was found instead, never a ValueError from cryptography.
"""

from __future__ import annotations

import base64
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import Encoding

from privca.errors import InputError, WrongPassphrase
from privca.keys.types import KeyType
from privca.x509.build import build_certificate, build_csr
from privca.x509.crl import build_crl
from privca.x509.encoding import (
    der_certificate,
    is_encrypted_key,
    is_pem,
    load_certificate,
    load_certificates,
    load_csr,
    load_inspectable,
    load_private_key,
    pem_certificate,
    pem_certificate_ders,
    pem_certificates,
    pem_csr,
    pem_private_key_unencrypted,
    pkcs12_bundle,
    public_key_der,
    serial_hex,
)
from privca.x509.names import parse_names
from tests.conftest import require_tool
from tests.x509.pki import NOW, key, leaf_spec, make_pki

PASS = "pass:correct horse"


def _openssl(*args: str, input: bytes | None = None) -> bytes:
    done = subprocess.run(["openssl", *args], input=input, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout


@pytest.fixture(scope="module")
def pki_files() -> dict[str, bytes]:
    pki = make_pki()
    leaf = build_certificate(leaf_spec(["svc.corp.internal"]), pki.issuing_issuer)
    csr = build_csr(key(KeyType.EC_P256, "csr"), parse_names(["svc.corp.internal"]))
    crl = build_crl(pki.issuing_issuer, [], 1, NOW, NOW)
    private = pem_private_key_unencrypted(key(KeyType.EC_P256, "csr"))
    return {
        "leaf": pem_certificate(leaf),
        "chain": pem_certificates([leaf, pki.issuing]),
        "leaf-der": der_certificate(leaf),
        "csr": pem_csr(csr),
        "csr-der": csr.public_bytes(Encoding.DER),
        "crl": crl.public_bytes(Encoding.PEM),
        "crl-der": crl.public_bytes(Encoding.DER),
        "key": private,
    }


# Certificates


def test_a_bundle_gives_every_certificate_in_order(pki_files: dict[str, bytes]) -> None:
    certs = load_certificates(pki_files["chain"])
    assert [c.subject.rfc4514_string() for c in certs] == [
        "CN=svc.corp.internal",
        "CN=Test x509 Issuing CA",
    ]
    assert load_certificate(pki_files["chain"]) == certs[0]


PEM_VARIANTS: dict[str, Callable[[bytes], bytes]] = {
    "as-written": lambda pem: pem,
    "crlf": lambda pem: pem.replace(b"\n", b"\r\n"),
    "text-around": lambda pem: b"subject=CN = svc\nissuer=CN = x\n" + pem + b"\ntrailing\n",
    "der": lambda pem: x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER),
}


@pytest.mark.parametrize("variant", PEM_VARIANTS.values(), ids=list(PEM_VARIANTS))
def test_a_certificate_is_read_in_every_form(
    pki_files: dict[str, bytes], variant: Callable[[bytes], bytes]
) -> None:
    expected = x509.load_pem_x509_certificate(pki_files["leaf"])
    assert load_certificates(variant(pki_files["leaf"])) == [expected]


# (input, fragment of the message) for bytes that are not a certificate
NOT_CERTIFICATES: dict[str, tuple[Callable[[dict[str, bytes]], bytes], str]] = {
    "empty": (lambda f: b"", "found an empty file"),
    "blank": (lambda f: b"  \n\t\n", "found an empty file"),
    "private-key": (lambda f: f["key"], "found PEM PRIVATE KEY"),
    "csr-pem": (lambda f: f["csr"], "found PEM CERTIFICATE REQUEST"),
    "crl-der": (lambda f: f["crl-der"], "found DER of another kind"),
    "text": (lambda f: b"hello, world\n", "found neither PEM nor DER"),
    "truncated-der": (lambda f: f["leaf-der"][:200], "is not a certificate"),
    "damaged-base64": (
        lambda f: f["leaf"].replace(b"\n", b"\n!!", 3),
        "is not a valid PEM certificate",
    ),
    "begin-without-end": (
        lambda f: f["leaf"].split(b"-----END")[0],
        "holds no certificate",
    ),
    "nul-bytes": (lambda f: b"\0" * 4096, "neither PEM nor DER"),
}


@pytest.mark.parametrize(
    ("make", "fragment"), NOT_CERTIFICATES.values(), ids=list(NOT_CERTIFICATES)
)
def test_what_is_not_a_certificate_says_what_it_is(
    pki_files: dict[str, bytes], make: Callable[[dict[str, bytes]], bytes], fragment: str
) -> None:
    with pytest.raises(InputError, match="root file") as caught:
        load_certificates(make(pki_files), "root file")
    assert fragment in caught.value.message
    assert not isinstance(caught.value.__cause__, InputError)


# CSRs


def test_csr_in_pem_and_der(pki_files: dict[str, bytes]) -> None:
    from_pem = load_csr(pki_files["csr"])
    assert load_csr(pki_files["csr-der"]) == from_pem
    legacy = pki_files["csr"].replace(b"CERTIFICATE REQUEST", b"NEW CERTIFICATE REQUEST")
    assert load_csr(legacy).public_bytes(Encoding.DER) == pki_files["csr-der"]


@pytest.mark.parametrize(
    ("name", "message", "hint"),
    [
        ("leaf", "found PEM CERTIFICATE", "this is a certificate, not a CSR"),
        ("key", "found PEM PRIVATE KEY", "pass a certificate signing request"),
        ("leaf-der", "found DER of another kind", "pass a PEM or DER PKCS#10 request"),
    ],
    ids=["certificate", "private-key", "certificate-der"],
)
def test_what_is_not_a_csr_says_what_it_is(
    pki_files: dict[str, bytes], name: str, message: str, hint: str
) -> None:
    with pytest.raises(InputError) as caught:
        load_csr(pki_files[name], "req.pem")
    assert message in caught.value.message and caught.value.message.startswith("req.pem")
    assert caught.value.hint is not None and hint in caught.value.hint


# Everything inspect shows


def test_inspectable_keeps_order_and_leaves_keys_out(pki_files: dict[str, bytes]) -> None:
    mixed = pki_files["key"] + pki_files["crl"] + pki_files["leaf"] + pki_files["csr"]
    kinds = [type(item).__name__ for item in load_inspectable(mixed)]
    assert len(kinds) == 3
    assert "RevocationList" in kinds[0] and "Certificate" in kinds[1] and "Request" in kinds[2]


@pytest.mark.parametrize("name", ["leaf-der", "csr-der", "crl-der"])
def test_inspectable_der(pki_files: dict[str, bytes], name: str) -> None:
    (item,) = load_inspectable(pki_files[name])
    assert item.public_bytes(Encoding.DER) == pki_files[name]


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"", "is not a certificate, CSR or CRL (found an empty file)"),
        (b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "never private keys"),
        (b"\x30\x03\x02\x01\x01", "found DER of another kind"),
        (
            b"-----BEGIN CERTIFICATE-----\nMAMCAQE=\n-----END CERTIFICATE-----\n",
            "its CERTIFICATE block cannot be read",
        ),
    ],
    ids=["empty", "only-a-key", "der-integer", "broken-certificate-block"],
)
def test_nothing_inspectable(data: bytes, fragment: str) -> None:
    with pytest.raises(InputError) as caught:
        load_inspectable(data)
    assert fragment in caught.value.message + (caught.value.hint or "")


def test_a_csr_whose_extensions_do_not_decode_is_refused_at_the_boundary(
    tmp_path: Path,
) -> None:
    """cryptography decodes CSR extensions lazily: two subjectAltNames (made by OpenSSL,
    the second through its raw OID) must fail here, not later in describe()."""
    require_tool("openssl")
    second_san = "2.5.29.17=DER:3011820F612E636F72702E696E7465726E616C"  # DNS:a.corp.internal
    (tmp_path / "req.cnf").write_text(
        "[req]\ndistinguished_name=dn\nreq_extensions=ext\nprompt=no\n[dn]\nCN=x\n"
        f"[ext]\nsubjectAltName=DNS:a.corp.internal\n{second_san}\n"
    )
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-out", str(tmp_path / "k.pem"))  # fmt: skip
    der = _openssl("req", "-new", "-key", str(tmp_path / "k.pem"),
                   "-config", str(tmp_path / "req.cnf"), "-outform", "DER")  # fmt: skip
    pem = b"-----BEGIN CERTIFICATE REQUEST-----\n" + base64.encodebytes(der)
    pem += b"-----END CERTIFICATE REQUEST-----\n"
    for data in (der, pem):
        with pytest.raises(InputError, match=r"(?i)duplicate|cannot be read|not a certificate"):
            load_inspectable(data)


# Private keys, as OpenSSL writes them


@pytest.fixture(scope="module")
def openssl_keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    require_tool("openssl")
    directory = tmp_path_factory.mktemp("keys")
    ec_key = directory / "ec.pem"
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-out", str(ec_key))  # fmt: skip
    ed_key = directory / "ed.pem"
    _openssl("genpkey", "-algorithm", "ED25519", "-out", str(ed_key))
    rsa_key = directory / "rsa.pem"
    _openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
             "-out", str(rsa_key))  # fmt: skip
    ec = str(ec_key)
    encrypt = ["-v2", "aes-256-cbc", "-passout", PASS]
    return {
        "pkcs8-pem": ec_key.read_bytes(),
        "pkcs8-pem-encrypted": _openssl("pkcs8", "-topk8", "-in", ec, *encrypt),
        "sec1-pem": _openssl("pkey", "-in", ec, "-traditional"),
        "sec1-pem-encrypted": _openssl(
            "pkey", "-in", ec, "-traditional", "-aes-128-cbc", "-passout", PASS
        ),
        "pkcs8-der": _openssl("pkey", "-in", ec, "-outform", "DER"),
        "pkcs8-der-encrypted": _openssl("pkcs8", "-topk8", "-in", ec, *encrypt, "-outform", "DER"),
        "rsa-pkcs1-pem": _openssl("pkey", "-in", str(rsa_key), "-traditional"),
        "ed25519-pem": ed_key.read_bytes(),
        "sm2-pem": _openssl("genpkey", "-algorithm", "SM2"),
    }


PASSPHRASE = PASS.removeprefix("pass:").encode()
LOADABLE = {
    "pkcs8-pem": ("pkcs8-pem", None, False),
    "pkcs8-pem-encrypted": ("pkcs8-pem-encrypted", PASSPHRASE, True),
    "sec1-pem": ("sec1-pem", None, False),
    "sec1-pem-encrypted": ("sec1-pem-encrypted", PASSPHRASE, True),
    "pkcs8-der": ("pkcs8-der", None, False),
    "pkcs8-der-encrypted": ("pkcs8-der-encrypted", PASSPHRASE, False),  # DER is not sniffed
    "rsa-pkcs1-pem": ("rsa-pkcs1-pem", None, False),
    "ed25519-pem": ("ed25519-pem", None, False),
    # A passphrase given for a key that needs none is not used (and not an error).
    "passphrase-unused": ("pkcs8-pem", PASSPHRASE, False),
}


@pytest.mark.parametrize(("name", "passphrase", "sniffed"), LOADABLE.values(), ids=list(LOADABLE))
def test_private_keys_openssl_writes_are_read(
    openssl_keys: dict[str, bytes], name: str, passphrase: bytes | None, sniffed: bool
) -> None:
    data = openssl_keys[name]
    assert is_encrypted_key(data) is sniffed
    loaded = load_private_key(data, passphrase, validate=True)
    # The same key as OpenSSL sees it: compare public halves through OpenSSL itself.
    args = ["pkey", "-pubout", "-outform", "DER"]
    if "encrypted" in name:
        args += ["-passin", PASS]
    if not is_pem(data):
        args += ["-inform", "DER"]
    assert public_key_der(loaded.public_key()) == _openssl(*args, input=data)


KEY_ERRORS = {
    "pem-no-passphrase": ("pkcs8-pem-encrypted", None, InputError, "no passphrase was given"),
    "pem-wrong-passphrase": ("pkcs8-pem-encrypted", b"wrong", WrongPassphrase, "does not decrypt"),
    "sec1-wrong-passphrase": ("sec1-pem-encrypted", b"wrong", WrongPassphrase, "does not decrypt"),
    "der-no-passphrase": ("pkcs8-der-encrypted", None, InputError, "no passphrase was given"),
    "der-wrong-passphrase": ("pkcs8-der-encrypted", b"wrong", WrongPassphrase, "does not decrypt"),
    "unsupported-curve": ("sm2-pem", None, InputError, "unsupported key type"),
}


@pytest.mark.parametrize(
    ("name", "passphrase", "error", "fragment"), KEY_ERRORS.values(), ids=list(KEY_ERRORS)
)
def test_key_errors_are_one_clear_error(
    openssl_keys: dict[str, bytes], name: str, passphrase: bytes | None,
    error: type[InputError], fragment: str,
) -> None:  # fmt: skip
    with pytest.raises(error) as caught:
        load_private_key(openssl_keys[name], passphrase, source="CA key 'x.key'")
    assert type(caught.value) is error
    assert fragment in caught.value.message and "CA key 'x.key'" in caught.value.message


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"", "found an empty file"),
        (b"\x30\x03\x02\x01\x01", "found DER of another kind"),
        (b"-----BEGIN CERTIFICATE-----\nMAMCAQE=\n-----END CERTIFICATE-----\n", "found PEM"),
        (b"not a key", "not a private key"),
    ],
    ids=["empty", "der-integer", "a-certificate", "text"],
)
def test_what_is_not_a_key(data: bytes, fragment: str) -> None:
    with pytest.raises(InputError) as caught:
        load_private_key(data)
    assert fragment in caught.value.message


def test_unencrypted_key_written_for_services(tmp_path: Path) -> None:
    pem = pem_private_key_unencrypted(key(KeyType.RSA_2048, "svc"))
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----") and not is_encrypted_key(pem)
    (tmp_path / "k.pem").write_bytes(pem)
    assert b"RSA key ok" in _openssl("rsa", "-check", "-noout", "-in", str(tmp_path / "k.pem"))


# PKCS#12


def test_pkcs12_is_modern_and_opens_with_the_passphrase(tmp_path: Path) -> None:
    require_tool("openssl")
    pki = make_pki()
    leaf_key = key(KeyType.EC_P256, "leaf")
    leaf = build_certificate(leaf_spec(["svc.corp.internal"]), pki.issuing_issuer)
    bundle = pkcs12_bundle("svc", leaf_key, leaf, [pki.issuing, pki.root], b"s3cret")
    path = tmp_path / "svc.p12"
    path.write_bytes(bundle)
    info = subprocess.run(
        ["openssl", "pkcs12", "-info", "-noout", "-in", str(path), "-passin", "pass:s3cret"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert info.returncode == 0, info.stderr
    assert "PBES2, PBKDF2, AES-256-CBC, Iteration 600000" in info.stderr
    assert "RC2" not in info.stderr and "3DES" not in info.stderr
    wrong = subprocess.run(
        ["openssl", "pkcs12", "-info", "-noout", "-in", str(path), "-passin", "pass:nope"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert wrong.returncode != 0
    from cryptography.hazmat.primitives.serialization import pkcs12

    loaded = pkcs12.load_pkcs12(bundle, b"s3cret")
    assert loaded.cert is not None and loaded.cert.certificate == leaf
    assert [c.certificate for c in loaded.additional_certs] == [pki.issuing, pki.root]
    assert loaded.cert.friendly_name == b"svc"


# PEM blocks found in tool output and bundles


def test_pem_certificate_ders_finds_exact_bytes(pki_files: dict[str, bytes]) -> None:
    leaf_der = pki_files["leaf-der"]
    issuing_der = x509.load_pem_x509_certificates(pki_files["chain"])[1].public_bytes(Encoding.DER)
    damaged = b"-----BEGIN CERTIFICATE-----\n!!not base64!!\n-----END CERTIFICATE-----\n"
    text = (
        b"Alias name: one\r\n"
        + pki_files["leaf"].replace(b"\n", b"\r\n")
        + pki_files["key"]
        + damaged
        + b"Alias name: two\n"
        + pki_files["chain"]
    )
    assert pem_certificate_ders(text) == [leaf_der, leaf_der, issuing_der]
    assert pem_certificate_ders(b"") == []
    assert pem_certificate_ders(pki_files["crl"]) == []


@pytest.mark.parametrize(
    ("serial", "text"),
    [(1, "1"), (0xABCDEF, "abcdef"), (0x0F, "f"), (1 << 127, "8" + "0" * 31)],
    ids=["one", "lowercase", "no-leading-zero", "128-bit"],
)
def test_serial_hex(serial: int, text: str) -> None:
    assert serial_hex(serial) == text


def test_pem_round_trips(pki_files: dict[str, bytes]) -> None:
    leaf = load_certificate(pki_files["leaf"])
    assert pem_certificate(leaf) == pki_files["leaf"]
    assert base64.b64decode(b"".join(pem_certificate(leaf).splitlines()[1:-1])) == der_certificate(
        leaf
    )
    assert load_csr(pki_files["csr"]).public_bytes(serialization.Encoding.PEM) == pki_files["csr"]
