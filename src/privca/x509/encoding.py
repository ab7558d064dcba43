"""PEM/DER in and out: the one boundary where cryptography's ValueError becomes a privca error."""

from __future__ import annotations

import base64
import binascii
import re

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes
from cryptography.hazmat.primitives.serialization import pkcs12

from privca.errors import InputError, WrongPassphrase

_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n(.*?)-----END \1-----", re.DOTALL)
_PEM_LABELS_CERT = {b"CERTIFICATE", b"TRUSTED CERTIFICATE", b"X509 CERTIFICATE"}
_PEM_LABELS_CSR = {b"CERTIFICATE REQUEST", b"NEW CERTIFICATE REQUEST"}


def _pem_labels(data: bytes) -> list[bytes]:
    return [m.group(1) for m in _PEM_BLOCK.finditer(data)]


def _describe(data: bytes) -> str:
    labels = _pem_labels(data)
    if labels:
        return "PEM " + ", ".join(sorted({label.decode() for label in labels}))
    if not data.strip():
        return "an empty file"
    if data[:1] == b"\x30":
        return "DER of another kind"
    return "neither PEM nor DER"


def serial_hex(serial: int) -> str:
    """Serials are ints in code and lowercase hex, no leading zeros, everywhere shown or
    stored (UI, JSON, database)."""
    return format(serial, "x")


def is_pem(data: bytes) -> bool:
    """Whether `data` holds PEM text (a BEGIN line anywhere) rather than DER."""
    return b"-----BEGIN " in data


def pem_certificate_ders(data: bytes) -> list[bytes]:
    """The DER bytes of each CERTIFICATE block in PEM text, in order, not parsed as X.509.

    For finding a certificate's exact bytes in a bundle or in a tool's output (keytool,
    certutil); a block whose base64 is damaged is left out rather than guessed at."""
    found: list[bytes] = []
    for match in _PEM_BLOCK.finditer(data):
        if match.group(1) != b"CERTIFICATE":
            continue
        try:
            found.append(base64.b64decode(b"".join(match.group(2).split()), validate=True))
        except binascii.Error:
            continue
    return found


def load_certificates(data: bytes, source: str = "input") -> list[x509.Certificate]:
    """All certificates in a PEM bundle, or the one DER certificate.

    Raises:
        InputError: `data` holds no certificate, or one that does not parse; the message
            says what it holds instead ("found PEM PRIVATE KEY").
    """
    if is_pem(data):
        labels = _pem_labels(data)
        if not any(label in _PEM_LABELS_CERT for label in labels):
            raise InputError(
                f"{source} holds no certificate (found {_describe(data)})",
                "pass a PEM or DER X.509 certificate",
            )
        try:
            certificates = x509.load_pem_x509_certificates(data)
        except ValueError as exc:
            raise InputError(f"{source} is not a valid PEM certificate: {exc}") from exc
    else:
        try:
            certificates = [x509.load_der_x509_certificate(data)]
        except ValueError as exc:
            raise InputError(
                f"{source} is not a certificate (found {_describe(data)})",
                "pass a PEM or DER X.509 certificate",
            ) from exc
    for certificate in certificates:
        _check_extensions(certificate, source)
    return certificates


def _check_extensions(certificate: x509.Certificate, source: str) -> None:
    """cryptography reads extensions only when asked, and a malformed one (an IP name
    constraint with host bits set, which OpenSSL masks) then raised ValueError from
    wherever privca first looked: an internal error in every later command."""
    try:
        certificate.extensions  # noqa: B018  (read to check)
    except ValueError as exc:
        raise InputError(
            f"{source} holds a certificate with an extension that cannot be read: {exc}",
            "re-issue that certificate with well-formed extensions",
        ) from None


def load_certificate(data: bytes, source: str = "input") -> x509.Certificate:
    """The first certificate of a PEM file, or a DER certificate.

    Raises:
        InputError: as `load_certificates`.
    """
    return load_certificates(data, source)[0]


def load_csr(data: bytes, source: str = "input") -> x509.CertificateSigningRequest:
    """A PKCS#10 request from PEM or DER (its contents are checked by `csr.inspect_csr`).

    Raises:
        InputError: `data` holds no CSR (a certificate given by mistake is named as such)
            or one that does not parse.
    """
    if is_pem(data):
        labels = _pem_labels(data)
        if not any(label in _PEM_LABELS_CSR for label in labels):
            hint = "pass a certificate signing request (openssl req -new or privca csr)"
            if any(label in _PEM_LABELS_CERT for label in labels):
                hint = "this is a certificate, not a CSR: sign the CSR it was made from"
            raise InputError(
                f"{source} holds no certificate signing request (found {_describe(data)})",
                hint,
            )
        try:
            return x509.load_pem_x509_csr(data)
        except ValueError as exc:
            raise InputError(f"{source} is not a valid PEM CSR: {exc}") from exc
    try:
        return x509.load_der_x509_csr(data)
    except ValueError as exc:
        raise InputError(
            f"{source} is not a certificate signing request (found {_describe(data)})",
            "pass a PEM or DER PKCS#10 request",
        ) from exc


def load_inspectable(
    data: bytes, source: str = "input"
) -> list[x509.Certificate | x509.CertificateSigningRequest | x509.CertificateRevocationList]:
    """Every certificate, CSR and CRL of a PEM file, in order (other blocks, such as
    private keys, are left out), or the one DER certificate, CSR or CRL.

    Raises:
        InputError: nothing inspectable in `data`, or a block that does not decode.
    """
    found: list[
        x509.Certificate | x509.CertificateSigningRequest | x509.CertificateRevocationList
    ] = []
    if is_pem(data):
        for match in _PEM_BLOCK.finditer(data):
            label, block = match.group(1), match.group(0)
            try:
                if label in _PEM_LABELS_CERT:
                    found.append(x509.load_pem_x509_certificate(block))
                elif label in _PEM_LABELS_CSR:
                    csr = x509.load_pem_x509_csr(block)
                    _ = csr.extensions  # decoded lazily: fail here, at the boundary
                    found.append(csr)
                elif label == b"X509 CRL":
                    found.append(x509.load_pem_x509_crl(block))
            except (ValueError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType) as exc:
                raise InputError(
                    f"{source}: its {label.decode('ascii')} block cannot be read: {exc}"
                ) from exc
        if not found:
            raise InputError(
                f"{source} holds no certificate, CSR or CRL (found {_describe(data)})",
                "inspect shows certificates, chains, CSRs and CRLs, never private keys",
            )
        return found
    for loader in (x509.load_der_x509_certificate, x509.load_der_x509_csr, x509.load_der_x509_crl):
        try:
            item = loader(data)
            if isinstance(item, x509.CertificateSigningRequest):
                _ = item.extensions
            return [item]
        except (ValueError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType):
            continue
    raise InputError(
        f"{source} is not a certificate, CSR or CRL (found {_describe(data)})",
        "pass a PEM file, or a DER certificate, CSR or CRL",
    )


def is_encrypted_key(data: bytes) -> bool:
    """Whether a PEM key is encrypted (PKCS#8 or OpenSSL's legacy Proc-Type header)."""
    return b"ENCRYPTED PRIVATE KEY" in data or b"Proc-Type: 4,ENCRYPTED" in data


def _no_passphrase(source: str) -> InputError:
    return InputError(
        f"{source} is encrypted and no passphrase was given",
        "use --passphrase-file or $PRIVCA_PASSPHRASE",
    )


def _wrong_passphrase(source: str) -> WrongPassphrase:
    return WrongPassphrase(
        f"the passphrase does not decrypt {source}",
        "check the passphrase file or $PRIVCA_PASSPHRASE",
    )


def _load_encrypted_der(
    data: bytes, passphrase: bytes | None, source: str, validate: bool
) -> PrivateKeyTypes:
    """DER keys cannot be sniffed for encryption: this is the second try, with the
    passphrase, once the first said the key is encrypted."""
    if passphrase is None:
        raise _no_passphrase(source)
    try:
        return serialization.load_der_private_key(
            data, passphrase, unsafe_skip_rsa_key_validation=not validate
        )
    except ValueError as exc:
        raise _wrong_passphrase(source) from exc
    except TypeError as exc:
        raise InputError(f"{source} is not a usable private key: {exc}") from exc


def load_private_key(
    data: bytes,
    passphrase: bytes | None = None,
    source: str = "key",
    *,
    validate: bool = True,
) -> PrivateKeyTypes:
    """A private key from PEM or DER, encrypted or not.

    `validate=False` skips RSA's costly consistency check: use it only for keys privca
    itself wrote and validated at creation.

    Raises:
        InputError: not a private key, no passphrase for an encrypted one, or a key type
            cryptography does not support (SM2, unnamed curves).
        WrongPassphrase: the passphrase does not decrypt it.
    """
    encrypted = is_encrypted_key(data)
    if encrypted and passphrase is None:
        raise _no_passphrase(source)
    pem = is_pem(data)
    loader = serialization.load_pem_private_key if pem else serialization.load_der_private_key
    try:
        return loader(
            data, passphrase if encrypted else None, unsafe_skip_rsa_key_validation=not validate
        )
    except TypeError as exc:
        if pem:
            raise InputError(f"{source} could not be loaded: {exc}") from exc
        return _load_encrypted_der(data, passphrase, source, validate)
    except ValueError as exc:
        if encrypted:
            raise _wrong_passphrase(source) from exc
        raise InputError(
            f"{source} is not a private key (found {_describe(data)})",
            "pass a PEM or DER private key",
        ) from exc
    except UnsupportedAlgorithm as exc:
        raise InputError(f"{source} uses an unsupported key type: {exc}") from exc


def pem_certificate(cert: x509.Certificate) -> bytes:
    """One certificate as PEM."""
    return cert.public_bytes(serialization.Encoding.PEM)


def pem_certificates(certs: list[x509.Certificate]) -> bytes:
    """Certificates as one PEM bundle, in the order given (a chain: leaf first)."""
    return b"".join(pem_certificate(cert) for cert in certs)


def der_certificate(cert: x509.Certificate) -> bytes:
    """One certificate as DER."""
    return cert.public_bytes(serialization.Encoding.DER)


def pem_csr(csr: x509.CertificateSigningRequest) -> bytes:
    """A CSR as PEM."""
    return csr.public_bytes(serialization.Encoding.PEM)


def pem_private_key_unencrypted(key: PrivateKeyTypes) -> bytes:
    """A service key as unencrypted PKCS#8 PEM (services start without a prompt)."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def public_key_der(public_key: PublicKeyTypes) -> bytes:
    """The SubjectPublicKeyInfo DER: what two keys are compared by."""
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def pkcs12_bundle(
    name: str,
    key: pkcs12.PKCS12PrivateKeyTypes,
    cert: x509.Certificate,
    chain: list[x509.Certificate],
    passphrase: bytes,
) -> bytes:
    """A PKCS#12 file with the key, the certificate and its chain, encrypted with
    PBES2/AES-256 and 600,000 PBKDF2 rounds (not the legacy RC2/3DES)."""
    encryption = (
        serialization.PrivateFormat.PKCS12.encryption_builder()
        .kdf_rounds(600_000)
        .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
        .hmac_hash(hashes.SHA256())
        .build(passphrase)
    )
    return pkcs12.serialize_key_and_certificates(
        name.encode(), key, cert, chain or None, encryption
    )
