"""What a certificate, CSR or CRL says, as plain data: for `privca inspect` and its --json.

Pure: objects and a time in, dicts of strings, numbers and lists out. Everything here may
come from a hostile file, so values are returned as they are and escaped by the caller
that shows them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from privca.x509.profiles import usage_name
from privca.x509.verify import is_signed_by

Document = dict[str, Any]
Inspectable = x509.Certificate | x509.CertificateSigningRequest | x509.CertificateRevocationList

_CURVE_NAMES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
_KEY_USAGE_BITS = (
    "digital_signature",
    "content_commitment",
    "key_encipherment",
    "data_encipherment",
    "key_agreement",
    "key_cert_sign",
    "crl_sign",
)


def _iso(value: dt.datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def _colon_hex(data: bytes) -> str:
    return ":".join(f"{byte:02X}" for byte in data)


def describe_public_key(public_key: PublicKeyTypes) -> str:
    """'EC P-256', 'RSA 2048 bits', 'Ed25519'..."""
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return f"EC {_CURVE_NAMES.get(public_key.curve.name, public_key.curve.name)}"
    if isinstance(public_key, rsa.RSAPublicKey):
        exponent = public_key.public_numbers().e
        suffix = "" if exponent == 65537 else f", exponent {exponent}"
        return f"RSA {public_key.key_size} bits{suffix}"
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return "Ed25519"
    if isinstance(public_key, ed448.Ed448PublicKey):
        return "Ed448"
    if isinstance(public_key, dsa.DSAPublicKey):
        return f"DSA {public_key.key_size} bits"
    return type(public_key).__name__


def _key_document(public_key: PublicKeyTypes) -> Document:
    spki = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    digest = hashes.Hash(hashes.SHA256())
    digest.update(spki)
    return {"type": describe_public_key(public_key), "spki_sha256": digest.finalize().hex()}


def _general_name(name: x509.GeneralName) -> str:
    if isinstance(name, x509.DNSName):
        return name.value
    if isinstance(name, x509.IPAddress):
        return str(name.value)
    if isinstance(name, x509.RFC822Name):
        return f"email:{name.value}"
    if isinstance(name, x509.UniformResourceIdentifier):
        return f"uri:{name.value}"
    if isinstance(name, x509.DirectoryName):
        return f"dirname:{name.value.rfc4514_string()}"
    if isinstance(name, x509.RegisteredID):
        return f"rid:{name.value.dotted_string}"
    if isinstance(name, x509.OtherName):
        return f"othername:{name.type_id.dotted_string}"
    return repr(name)


def _general_names(names: Iterable[x509.GeneralName] | None) -> list[str]:
    return [_general_name(n) for n in names or ()]


def _key_usage(value: x509.KeyUsage) -> list[str]:
    used = []
    for bit in _KEY_USAGE_BITS:
        if getattr(value, bit):
            head, *rest = bit.split("_")
            used.append(head + "".join(part.capitalize() for part in rest))
    if value.key_agreement:
        if value.encipher_only:
            used.append("encipherOnly")
        if value.decipher_only:
            used.append("decipherOnly")
    # RFC 5280 spells two of them differently from cryptography's attribute names.
    renamed = {"contentCommitment": "nonRepudiation", "crlSign": "cRLSign"}
    return [renamed.get(u, u) for u in used]


def _basic_constraints(value: x509.BasicConstraints) -> str:
    text = "CA:TRUE" if value.ca else "CA:FALSE"
    return text + (f", pathlen:{value.path_length}" if value.path_length is not None else "")


def _authority_key_id(value: x509.AuthorityKeyIdentifier) -> str:
    return _colon_hex(value.key_identifier) if value.key_identifier else "(no key id)"


def _name_constraints(value: x509.NameConstraints) -> dict[str, list[str]]:
    return {
        "permitted": _general_names(value.permitted_subtrees),
        "excluded": _general_names(value.excluded_subtrees),
    }


def _distribution_points(value: x509.CRLDistributionPoints | x509.FreshestCRL) -> list[str]:
    return [name for point in value for name in _general_names(point.full_name)]


def _access(value: x509.AuthorityInformationAccess) -> list[str]:
    return [
        f"{access.access_method._name}: {_general_name(access.access_location)}" for access in value
    ]


ExtensionValue = str | int | list[str] | dict[str, list[str]]
# A short, readable form of the extensions a CA and a TLS client care about; any other
# extension is shown by its class name.
_EXTENSION_VALUES: dict[type[x509.ExtensionType], Callable[[Any], ExtensionValue]] = {
    x509.BasicConstraints: _basic_constraints,
    x509.KeyUsage: _key_usage,
    x509.ExtendedKeyUsage: lambda value: [usage_name(u) for u in value],
    x509.SubjectAlternativeName: _general_names,
    x509.IssuerAlternativeName: _general_names,
    x509.SubjectKeyIdentifier: lambda value: _colon_hex(value.digest),
    x509.AuthorityKeyIdentifier: _authority_key_id,
    x509.NameConstraints: _name_constraints,
    x509.CRLDistributionPoints: _distribution_points,
    x509.FreshestCRL: _distribution_points,
    x509.AuthorityInformationAccess: _access,
    x509.CertificatePolicies: lambda value: [p.policy_identifier.dotted_string for p in value],
    x509.CRLNumber: lambda value: value.crl_number,
    x509.DeltaCRLIndicator: lambda value: value.crl_number,
    x509.OCSPNoCheck: lambda value: "present",
    x509.TLSFeature: lambda value: [feature.name for feature in value],
    x509.UnrecognizedExtension: lambda value: f"{len(value.value)} bytes, not decoded",
}


def _extension_value(value: x509.ExtensionType) -> ExtensionValue:
    show = _EXTENSION_VALUES.get(type(value))
    return show(value) if show is not None else type(value).__name__


def _extensions(extensions: x509.Extensions) -> list[Document]:
    return [
        {
            "name": extension.oid._name,
            "oid": extension.oid.dotted_string,
            "critical": extension.critical,
            "value": _extension_value(extension.value),
        }
        for extension in extensions
    ]


def _names(extensions: x509.Extensions) -> list[str]:
    try:
        san = extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return _general_names(san)


def _fingerprints(certificate: x509.Certificate) -> Document:
    return {
        "sha256": _colon_hex(certificate.fingerprint(hashes.SHA256())),
        "sha1": _colon_hex(certificate.fingerprint(hashes.SHA1())),  # what old tools show
    }


def oid_name(oid: x509.ObjectIdentifier) -> str:
    """cryptography's name for an OID ("subjectAltName"), or the dotted form when it has
    none (it says "Unknown OID" then)."""
    name: str = oid._name
    return name if name != "Unknown OID" else oid.dotted_string


def _signature_algorithm(item: Inspectable) -> str:
    return oid_name(item.signature_algorithm_oid)


def describe_certificate(certificate: x509.Certificate, now: dt.datetime) -> Document:
    from privca._time import days_left

    not_before, not_after = certificate.not_valid_before_utc, certificate.not_valid_after_utc
    if not_after <= now:
        validity = "expired"
    elif not_before > now:
        validity = "not yet valid"
    else:
        validity = "valid"
    return {
        "kind": "certificate",
        "subject": certificate.subject.rfc4514_string(),
        "issuer": certificate.issuer.rfc4514_string(),
        "self_signed": certificate.subject == certificate.issuer,
        "serial": format(certificate.serial_number, "x"),
        "version": certificate.version.name,
        "not_before": _iso(not_before),
        "not_after": _iso(not_after),
        "days_left": days_left(not_after, now),
        "validity": validity,
        "names": _names(certificate.extensions),
        "key": _key_document(certificate.public_key()),
        "signature_algorithm": _signature_algorithm(certificate),
        "extensions": _extensions(certificate.extensions),
        "fingerprints": _fingerprints(certificate),
    }


def describe_csr(csr: x509.CertificateSigningRequest) -> Document:
    extensions = csr.extensions  # decodable: encoding.load_inspectable checked
    return {
        "kind": "csr",
        "subject": csr.subject.rfc4514_string(),
        "signature_valid": csr.is_signature_valid,
        "names": _names(extensions),
        "key": _key_document(csr.public_key()),
        "signature_algorithm": _signature_algorithm(csr),
        "extensions": _extensions(extensions),
    }


def describe_crl(crl: x509.CertificateRevocationList, now: dt.datetime) -> Document:
    entries = []
    for entry in crl:
        try:
            reason = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason.value
        except x509.ExtensionNotFound:
            reason = None
        entries.append(
            {
                "serial": format(entry.serial_number, "x"),
                "revoked_at": _iso(entry.revocation_date_utc),
                "reason": reason,
            }
        )
    next_update = crl.next_update_utc
    return {
        "kind": "crl",
        "issuer": crl.issuer.rfc4514_string(),
        "this_update": _iso(crl.last_update_utc),
        "next_update": _iso(next_update) if next_update else None,
        "current": next_update is None or next_update > now,
        "signature_algorithm": _signature_algorithm(crl),
        "extensions": _extensions(crl.extensions),
        "entries": entries,
    }


def describe_objects(objects: Sequence[Inspectable], now: dt.datetime) -> list[Document]:
    """Documents for what a file holds, in order. Consecutive certificates are a chain as
    servers send it (leaf first): each says whether the next one signed it."""
    documents: list[Document] = []
    for index, item in enumerate(objects):
        if isinstance(item, x509.Certificate):
            document = describe_certificate(item, now)
            following = objects[index + 1] if index + 1 < len(objects) else None
            if isinstance(following, x509.Certificate):
                document["signed_by_next"] = is_signed_by(item, following)
            documents.append(document)
        elif isinstance(item, x509.CertificateSigningRequest):
            documents.append(describe_csr(item))
        else:
            documents.append(describe_crl(item, now))
    return documents
