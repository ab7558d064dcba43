"""Run pkilint's RFC 5280 linters in process, exactly as its console scripts assemble them.

`lint_pkix_cert` and `lint_pkix_signer_signee_cert_chain` build their validator containers
inside main(); the certificate linter's container is rebuilt here line for line, and the
chain linter's builder functions are imported from its module. Findings come back as plain
tuples so a test can filter by severity and compare against an explicit waiver list.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

SEVERITIES = ("FATAL", "ERROR", "WARNING", "NOTICE", "INFO")
WARNING_OR_WORSE = frozenset({"FATAL", "ERROR", "WARNING"})


@dataclass(frozen=True)
class Finding:
    severity: str
    code: str
    message: str | None
    path: str

    def __str__(self) -> str:
        message = f": {self.message}" if self.message else ""
        return f"{self.severity} {self.code}{message} @ {self.path}"


@functools.cache
def _certificate_validator() -> Any:
    from pkilint.pkix import certificate, extension, name

    return certificate.create_pkix_certificate_validator_container(
        certificate.create_decoding_validators(
            name.ATTRIBUTE_TYPE_MAPPINGS, extension.EXTENSION_MAPPINGS
        ),
        [
            certificate.create_issuer_validator_container([]),
            certificate.create_validity_validator_container(),
            certificate.create_subject_validator_container([]),
            certificate.create_extensions_validator_container([]),
            certificate.create_spki_validator_container([]),
        ],
    )


@functools.cache
def _chain_validators() -> tuple[Any, Any, Any]:
    from pkilint.bin import lint_pkix_signer_signee_cert_chain as chain

    return (
        chain.create_decoder_validation_container(),
        chain.create_issuer_validation_container(),
        chain.create_subject_validation_container(),
    )


def _findings(results: Any) -> list[Finding]:
    return [
        Finding(
            severity=description.finding.severity.name,
            code=description.finding.code,
            message=description.message,
            path=result.node.path,
        )
        for result in results
        for description in result.finding_descriptions
    ]


def _pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(Encoding.PEM).decode()


def lint_certificate(certificate: x509.Certificate) -> list[Finding]:
    """All findings of `lint_pkix_cert lint` (INFO included) for one certificate."""
    from pkilint import loader

    document = loader.RFC5280CertificateDocumentLoader().load_pem_document(
        _pem(certificate), "certificate"
    )
    return _findings(_certificate_validator().validate(document.root))


def lint_chain(issuer: x509.Certificate, subject: x509.Certificate) -> list[Finding]:
    """All findings of `lint_pkix_signer_signee_cert_chain lint ISSUER SUBJECT`."""
    from pkilint import loader

    decoding, issuer_checks, subject_checks = _chain_validators()
    documents: dict[str, Any] = {}
    load = loader.RFC5280CertificateDocumentLoader().load_pem_document
    documents["issuer"] = load(_pem(issuer), "issuer", "issuer", documents)
    documents["subject"] = load(_pem(subject), "subject", "subject", documents)
    results = decoding.validate(documents["issuer"].root)
    results += decoding.validate(documents["subject"].root)
    results += issuer_checks.validate(documents["issuer"].root)
    results += subject_checks.validate(documents["subject"].root)
    return _findings(results)
