"""Read a CSR for what privca takes from it: the public key and the requested names.

Everything else a requester asks for (CA rights, key usages, other extensions, subject
attributes) is noted so --strict can refuse it, and otherwise ignored: the profile decides.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import ExtensionOID, NameOID

from privca.errors import InputError, PolicyError
from privca.x509.describe import oid_name
from privca.x509.names import SubjectName, parse_name

_WEAK_HASHES = (hashes.MD5, hashes.SHA1, hashes.SHA224)
_ASKS_FOR_CA = "CA rights (basicConstraints CA:TRUE)"
_EXTENSION_LABELS = {
    ExtensionOID.BASIC_CONSTRAINTS: "basicConstraints",
    ExtensionOID.KEY_USAGE: "keyUsage",
    ExtensionOID.EXTENDED_KEY_USAGE: "extendedKeyUsage",
    ExtensionOID.NAME_CONSTRAINTS: "nameConstraints",
}


@dataclass(frozen=True)
class CertificateRequest:
    """The parts of a CSR privca uses, plus what it ignores (for --strict and reports)."""

    public_key: CertificatePublicKeyTypes
    names: tuple[SubjectName, ...]
    ignored: tuple[str, ...]
    asks_for_ca: bool
    source: str
    # The subject CN to issue: set by the operator (--cn), never taken from the CSR.
    common_name: str | None = None
    # The CN the CSR itself carries, only to tell the operator it was not copied.
    requested_common_name: str | None = None

    def check_strict(self) -> None:
        """Refuse a CSR that asks for anything besides its key and names (--strict).

        Raises:
            PolicyError: naming what the CSR asks for.
        """
        if self.ignored:
            raise PolicyError(
                f"{self.source} asks for {', '.join(self.ignored)}, which privca does not copy",
                "drop --strict to ignore them (the profile decides every extension)",
            )


def _names_from_san(csr: x509.CertificateSigningRequest, source: str) -> list[SubjectName] | None:
    try:
        san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    names: list[SubjectName] = []
    for general_name in san:
        if isinstance(general_name, x509.DNSName):
            names.append(parse_name("dns:" + general_name.value))
        elif isinstance(general_name, x509.IPAddress):
            names.append(parse_name("ip:" + str(general_name.value)))
        elif isinstance(general_name, x509.RFC822Name):
            names.append(parse_name("email:" + general_name.value))
        elif isinstance(general_name, x509.UniformResourceIdentifier):
            names.append(parse_name("uri:" + general_name.value))
        else:
            raise InputError(
                f"{source} requests a {type(general_name).__name__} name, which privca does not "
                "issue",
                "request DNS, IP, email or URI names",
            )
    return names


def _check_signature(csr: x509.CertificateSigningRequest, source: str) -> None:
    """Weak hashes first: cryptography cannot verify them."""
    try:
        hash_algorithm = csr.signature_hash_algorithm
    except Exception as exc:
        raise InputError(f"{source} uses an unsupported signature algorithm: {exc}") from exc
    if isinstance(hash_algorithm, _WEAK_HASHES):
        raise PolicyError(
            f"{source} is signed with {hash_algorithm.name}, which is too weak",
            "make the CSR with SHA-256 or stronger (openssl req -sha256)",
        )
    try:
        signature_ok = csr.is_signature_valid
    except Exception as exc:  # unsupported key or signature algorithms raise here
        raise InputError(f"{source} has a signature privca cannot check: {exc}") from exc
    if not signature_ok:
        raise InputError(
            f"{source} has an invalid self-signature",
            "the CSR was altered or made with a key it does not carry; make it again",
        )


def _key_and_extensions(
    csr: x509.CertificateSigningRequest, source: str
) -> tuple[CertificatePublicKeyTypes, list[x509.Extension[x509.ExtensionType]]]:
    try:
        return csr.public_key(), list(csr.extensions)
    except (ValueError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType) as exc:
        raise InputError(f"{source} has malformed contents: {exc}") from exc
    except Exception as exc:
        raise InputError(f"{source} has a public key privca cannot use: {exc}") from exc


def _requested_names(
    csr: x509.CertificateSigningRequest, common_name: str | None, source: str
) -> list[SubjectName]:
    """The SAN's names; a CSR without a SAN asks for its CN, as old tools make them."""
    names = _names_from_san(csr, source)
    if names is None:
        if common_name is None:
            raise InputError(
                f"{source} requests no names (no subjectAltName and no CN)",
                "add -addext subjectAltName=DNS:host.example to openssl req",
            )
        names = [parse_name(common_name)]
    if not names:
        raise InputError(f"{source} has an empty subjectAltName")
    return names


def _ignored(extensions: Sequence[x509.Extension[x509.ExtensionType]]) -> list[str]:
    """What the CSR asks for besides its names, as an operator would name it."""
    ignored: list[str] = []
    for extension in extensions:
        if extension.oid == ExtensionOID.SUBJECT_ALTERNATIVE_NAME:
            continue
        if isinstance(extension.value, x509.BasicConstraints) and extension.value.ca:
            ignored.append(_ASKS_FOR_CA)
            continue
        ignored.append(_EXTENSION_LABELS.get(extension.oid) or oid_name(extension.oid))
    return ignored


def inspect_csr(csr: x509.CertificateSigningRequest, source: str = "CSR") -> CertificateRequest:
    """Check the hash, the self-signature, then extract the public key and the names.

    Raises:
        PolicyError: the CSR is signed with a weak hash (MD5, SHA-1, SHA-224).
        InputError: the signature does not verify or cannot be checked, the contents are
            malformed, it requests no names or a name privca does not issue.
    """
    _check_signature(csr, source)
    public_key, extensions = _key_and_extensions(csr, source)
    common_names = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    requested_common_name = str(common_names[0].value) if common_names else None
    names = _requested_names(csr, requested_common_name, source)
    ignored = _ignored(extensions)
    return CertificateRequest(
        public_key=public_key,
        names=tuple(dict.fromkeys(names)),
        ignored=tuple(ignored),
        asks_for_ca=_ASKS_FOR_CA in ignored,
        source=source,
        requested_common_name=requested_common_name,
    )
