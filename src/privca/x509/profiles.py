"""Certificate profiles: what each kind of certificate carries. Frozen values, no I/O."""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.x509.oid import ExtendedKeyUsageOID, ObjectIdentifier

# RFC 5280 4.2.1.12 names, as OpenSSL prints them.
_USAGE_NAMES = {
    ExtendedKeyUsageOID.SERVER_AUTH: "serverAuth",
    ExtendedKeyUsageOID.CLIENT_AUTH: "clientAuth",
    ExtendedKeyUsageOID.CODE_SIGNING: "codeSigning",
    ExtendedKeyUsageOID.EMAIL_PROTECTION: "emailProtection",
    ExtendedKeyUsageOID.TIME_STAMPING: "timeStamping",
    ExtendedKeyUsageOID.OCSP_SIGNING: "OCSPSigning",
    ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE: "anyExtendedKeyUsage",
}


def usage_name(oid: ObjectIdentifier) -> str:
    """An extended key usage by its RFC 5280 name ("serverAuth"), else its dotted OID."""
    return _USAGE_NAMES.get(oid, oid.dotted_string)


@dataclass(frozen=True)
class Profile:
    """The extensions and limits of one kind of certificate.

    Key usage for leaves depends on the key type (RSA may encipher, EC/Ed25519 only sign),
    so the profile names the intent and build.py derives the exact bits.

    A frozen value: constructing one and reading its properties raise nothing. Look a leaf
    profile up by name with `leaf_profile`, which raises InputError for an unknown name.
    """

    name: str
    is_ca: bool = False
    path_length: int | None = None
    extended_key_usages: tuple[ObjectIdentifier, ...] = ()
    default_days: int = 730
    ocsp_no_check: bool = False
    # nonRepudiation (contentCommitment): the key signs statements, not connections
    content_commitment: bool = False

    @property
    def is_server(self) -> bool:
        return ExtendedKeyUsageOID.SERVER_AUTH in self.extended_key_usages

    @property
    def is_client(self) -> bool:
        return ExtendedKeyUsageOID.CLIENT_AUTH in self.extended_key_usages


ROOT = Profile("root", is_ca=True, path_length=None, default_days=3650)
ISSUING = Profile("issuing", is_ca=True, path_length=0, default_days=1825)
SERVER = Profile("server", extended_key_usages=(ExtendedKeyUsageOID.SERVER_AUTH,))
CLIENT = Profile("client", extended_key_usages=(ExtendedKeyUsageOID.CLIENT_AUTH,))
SERVER_CLIENT = Profile(
    "server-client",
    extended_key_usages=(ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH),
)
OCSP_RESPONDER = Profile(
    "ocsp-responder",
    extended_key_usages=(ExtendedKeyUsageOID.OCSP_SIGNING,),
    default_days=30,
    ocsp_no_check=True,
)

# The audit log's signing key (checkpoints, exports): digitalSignature + contentCommitment,
# the shape of a document signer, and emailProtection as its only extended key usage:
# `openssl cms -verify` accepts it with its default S/MIME purpose, and no TLS server or
# client does (no serverAuth, no clientAuth). No SAN and a CN with a space: it names no
# host and no mailbox, so no mail client takes it for a sender either.
AUDIT_SIGNER = Profile(
    "audit-signer",
    extended_key_usages=(ExtendedKeyUsageOID.EMAIL_PROTECTION,),
    default_days=825,
    content_commitment=True,
)

# privca serve's own TLS certificate: a server certificate that privca renews by itself,
# so expiry checks and metrics leave it out.
PRIVCA_SERVER = Profile(
    "privca-server", extended_key_usages=(ExtendedKeyUsageOID.SERVER_AUTH,), default_days=30
)

LEAF_PROFILES: dict[str, Profile] = {p.name: p for p in (SERVER, CLIENT, SERVER_CLIENT)}
# Certificates privca issues to itself and renews by itself: not the operator's to watch,
# so expiry checks, metrics and the default listing leave them out.
SELF_RENEWING_PROFILES = frozenset({OCSP_RESPONDER.name, "privca-server", AUDIT_SIGNER.name})
INTERNAL_PROFILES: dict[str, Profile] = {p.name: p for p in (PRIVCA_SERVER,)}
ALL_PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        ROOT,
        ISSUING,
        SERVER,
        CLIENT,
        SERVER_CLIENT,
        OCSP_RESPONDER,
        PRIVCA_SERVER,
        AUDIT_SIGNER,
    )
}
DEFAULT_LEAF_PROFILE = SERVER_CLIENT


def leaf_profile(name: str) -> Profile:
    """The leaf profile called `name` (server, client, server-client or privca-server).

    Raises:
        InputError: no leaf profile has that name.
    """
    from privca.errors import InputError

    try:
        return LEAF_PROFILES.get(name) or INTERNAL_PROFILES[name]
    except KeyError:
        raise InputError(
            f"profile '{name}' is not a certificate profile privca knows",
            "use one of: " + ", ".join(sorted(LEAF_PROFILES)),
        ) from None
