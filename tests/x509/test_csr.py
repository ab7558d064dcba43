"""x509/csr.py: from a CSR privca takes the public key and the names, and notes the rest.

The CSRs are made by the real `openssl req`, as an operator's runbook would, with every
extension a requester might slip in; hostile names never reach a message unescaped.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from privca.errors import InputError, PolicyError
from privca.keys.types import KeyType
from privca.x509.csr import inspect_csr
from privca.x509.encoding import load_csr
from privca.x509.names import SubjectName
from tests.conftest import require_tool
from tests.x509.pki import key


@pytest.fixture(scope="module")
def openssl_csr(tmp_path_factory: pytest.TempPathFactory):
    """make(*req args) -> the CSR `openssl req -new` writes with an EC P-256 key."""
    require_tool("openssl")
    directory = tmp_path_factory.mktemp("csr")
    keys = {}
    for algorithm, options in {"EC": ["-pkeyopt", "ec_paramgen_curve:P-256"],
                               "ED25519": [], "RSA": []}.items():  # fmt: skip
        keys[algorithm] = directory / f"{algorithm}.pem"
        subprocess.run(["openssl", "genpkey", "-algorithm", algorithm, *options,
                        "-out", str(keys[algorithm])], check=True, capture_output=True)  # fmt: skip

    def make(*args: str, algorithm: str = "EC") -> x509.CertificateSigningRequest:
        done = subprocess.run(
            ["openssl", "req", "-new", "-key", str(keys[algorithm]), *args],
            capture_output=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr.decode()
        return load_csr(done.stdout)

    return make


SAN = "subjectAltName="
# req arguments -> (names, ignored, asks for CA)
ACCEPTED = {
    "dns-and-ip": (
        ["-subj", "/CN=svc.corp.internal", "-addext", SAN + "DNS:svc.corp.internal,IP:10.0.0.5"],
        [("dns", "svc.corp.internal"), ("ip", "10.0.0.5")], (), False,
    ),
    "email-and-uri": (
        ["-subj", "/", "-addext", SAN + "email:ops@corp.internal,URI:spiffe://corp.internal/db"],
        [("email", "ops@corp.internal"), ("uri", "spiffe://corp.internal/db")], (), False,
    ),
    "cn-only-legacy": (
        ["-subj", "/CN=Legacy.Corp.Internal"], [("dns", "legacy.corp.internal")], (), False,
    ),
    "duplicates-folded": (
        ["-subj", "/", "-addext", SAN + "DNS:a.corp.internal,DNS:A.CORP.internal,IP:10.0.0.5,"
         "IP:10.0.0.5"],
        [("dns", "a.corp.internal"), ("ip", "10.0.0.5")], (), False,
    ),
    "idn-as-a-label": (
        ["-subj", "/", "-addext", SAN + "DNS:xn--bcher-kva.corp.internal"],
        [("dns", "xn--bcher-kva.corp.internal")], (), False,
    ),
    # What the runbook's `-copy_extensions copyall` would have copied: noted, never taken.
    "asks-for-ca": (
        ["-subj", "/", "-addext", SAN + "DNS:svc.corp.internal",
         "-addext", "basicConstraints=critical,CA:TRUE,pathlen:5"],
        [("dns", "svc.corp.internal")], ("CA rights (basicConstraints CA:TRUE)",), True,
    ),
    "not-a-ca-is-still-noted": (
        ["-subj", "/", "-addext", SAN + "DNS:svc.corp.internal",
         "-addext", "basicConstraints=CA:FALSE"],
        [("dns", "svc.corp.internal")], ("basicConstraints",), False,
    ),
    "usages-and-constraints": (
        ["-subj", "/", "-addext", SAN + "DNS:svc.corp.internal",
         "-addext", "keyUsage=keyCertSign,cRLSign", "-addext", "extendedKeyUsage=codeSigning",
         "-addext", "nameConstraints=permitted;DNS:evil.example"],
        [("dns", "svc.corp.internal")],
        ("keyUsage", "extendedKeyUsage", "nameConstraints"), False,
    ),
    "unknown-extension-by-oid": (
        ["-subj", "/", "-addext", SAN + "DNS:svc.corp.internal",
         "-addext", "1.3.6.1.4.1.99999.7=ASN1:UTF8String:hello"],
        [("dns", "svc.corp.internal")], ("1.3.6.1.4.1.99999.7",), False,
    ),
}  # fmt: skip


@pytest.mark.parametrize(
    ("args", "names", "ignored", "asks_for_ca"), ACCEPTED.values(), ids=list(ACCEPTED)
)
def test_names_are_taken_and_everything_else_noted(
    openssl_csr, args: list[str], names: list[tuple[str, str]], ignored: tuple[str, ...],
    asks_for_ca: bool,
) -> None:  # fmt: skip
    request = inspect_csr(openssl_csr(*args), "req.csr")
    assert [(n.kind, n.value) for n in request.names] == names
    assert request.ignored == ignored
    assert request.asks_for_ca is asks_for_ca
    assert request.common_name is None  # only the operator sets it (--cn)
    if ignored:
        with pytest.raises(PolicyError, match=r"req\.csr asks for") as caught:
            request.check_strict()
        assert all(label in caught.value.message for label in ignored)
    else:
        request.check_strict()


@pytest.mark.parametrize("algorithm", ["EC", "ED25519", "RSA"])
def test_the_public_key_is_the_requesters(openssl_csr, algorithm: str) -> None:
    csr = openssl_csr("-subj", "/CN=svc.corp.internal", algorithm=algorithm)
    request = inspect_csr(csr)
    assert request.public_key == csr.public_key()
    assert request.requested_common_name == "svc.corp.internal"


REFUSED = {
    "sha1": (["-subj", "/CN=a.corp.internal", "-sha1"], "RSA", PolicyError, "sha1, which is"),
    "md5": (["-subj", "/CN=a.corp.internal", "-md5"], "RSA", PolicyError, "md5, which is"),
    "sha224": (["-subj", "/CN=a.corp.internal", "-sha224"], "EC", PolicyError, "too weak"),
    "no-names": (["-subj", "/O=Acme"], "EC", InputError, "requests no names"),
    "cn-not-a-name": (["-subj", "/CN=Backup Agent"], "EC", InputError, "whitespace"),
    "other-name": (["-subj", "/", "-addext", SAN + "otherName:1.2.3.4;UTF8:x"], "EC",
                   InputError, "OtherName name, which privca does not issue"),
    "directory-name": (["-subj", "/", "-addext", SAN + "dirName:dn", "-config", "DIRNAME"],
                       "EC", InputError, "DirectoryName name"),
    "bad-dns": (["-subj", "/", "-addext", SAN + "DNS:a..corp.internal"], "EC", InputError,
                "empty label"),
    "uri-with-userinfo": (["-subj", "/", "-addext", SAN + "URI:https://a@b.corp.internal/"],
                          "EC", InputError, "user part"),
    "ip-zone-in-uri": (["-subj", "/", "-addext", SAN + "URI:http://[fe80::1%25eth0]/"], "EC",
                       InputError, "zone id"),
}  # fmt: skip


@pytest.mark.parametrize(
    ("args", "algorithm", "error", "fragment"), REFUSED.values(), ids=list(REFUSED)
)
def test_refused_requests(
    openssl_csr, tmp_path: Path, args: list[str], algorithm: str, error: type[InputError],
    fragment: str,
) -> None:  # fmt: skip
    if "DIRNAME" in args:
        config = tmp_path / "req.cnf"
        config.write_text("[req]\ndistinguished_name=req_dn\n[req_dn]\n[dn]\nCN=evil\n")
        args = [str(config) if a == "DIRNAME" else a for a in args]
    with pytest.raises(error) as caught:
        inspect_csr(openssl_csr(*args, algorithm=algorithm), "req.csr")
    assert fragment in caught.value.message, caught.value.message


def _signed_csr(names: list[x509.GeneralName]) -> x509.CertificateSigningRequest:
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([]))
    builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=True)
    return builder.sign(key(KeyType.EC_P256, "csr"), hashes.SHA256())


def test_an_empty_subject_alt_name_is_refused() -> None:
    with pytest.raises(InputError, match="empty subjectAltName"):
        inspect_csr(_signed_csr([]))


HOSTILE = {
    "ansi-escape": "evil\x1b[31m.corp.internal",
    "crlf": "a.corp.internal\r\nX-Injected: 1",
    "osc-52-clipboard": "\x1b]52;c;cm0gLXJmIH4K\x07.corp.internal",
    "bidi-override": "\u202egnp.corp.internal",  # not ASCII: OpenSSL writes it, not cryptography
}


@pytest.mark.parametrize("hostile", HOSTILE.values(), ids=list(HOSTILE))
def test_hostile_names_are_refused_and_never_echoed_raw(openssl_csr, hostile: str) -> None:
    if hostile.isascii():
        csr = _signed_csr([x509.DNSName(hostile)])
    else:
        csr = openssl_csr("-subj", "/", "-addext", f"{SAN}DNS:{hostile}")
    with pytest.raises(InputError) as caught:
        inspect_csr(csr)
    text = caught.value.message + (caught.value.hint or "")
    assert not any(ch in text for ch in "\x1b\x07\r\n\u202e"), text


def test_a_tampered_csr_is_refused(openssl_csr) -> None:
    from cryptography.hazmat.primitives.serialization import Encoding

    der = bytearray(openssl_csr("-subj", "/CN=svc.corp.internal").public_bytes(Encoding.DER))
    index = der.find(b"svc.corp.internal")
    der[index] = ord("e")  # the signed CN now says "evc.corp.internal"
    with pytest.raises(InputError, match="invalid self-signature"):
        inspect_csr(x509.load_der_x509_csr(bytes(der)))


def test_names_keep_their_order() -> None:
    csr = _signed_csr(
        [
            x509.DNSName("b.corp.internal"),
            x509.IPAddress(__import__("ipaddress").ip_address("10.0.0.5")),
            x509.DNSName("a.corp.internal"),
        ]
    )
    assert inspect_csr(csr).names == (
        SubjectName("dns", "b.corp.internal"),
        SubjectName("ip", "10.0.0.5"),
        SubjectName("dns", "a.corp.internal"),
    )
