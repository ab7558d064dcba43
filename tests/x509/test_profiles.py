"""x509/profiles.py: what each kind of certificate is for, as OpenSSL's purpose checks read
it, and which profile names an operator may ask for."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from cryptography.x509.oid import ExtendedKeyUsageOID, ObjectIdentifier

from privca.errors import InputError
from privca.x509.build import build_certificate
from privca.x509.profiles import (
    ALL_PROFILES,
    AUDIT_SIGNER,
    CLIENT,
    DEFAULT_LEAF_PROFILE,
    INTERNAL_PROFILES,
    ISSUING,
    LEAF_PROFILES,
    OCSP_RESPONDER,
    PRIVCA_SERVER,
    ROOT,
    SELF_RENEWING_PROFILES,
    SERVER,
    SERVER_CLIENT,
    Profile,
    leaf_profile,
    usage_name,
)
from tests.conftest import require_tool
from tests.x509.pki import judge_chain, leaf_spec, make_pki

# profile -> (is_ca, path_length, is_server, is_client, default_days) as DESIGN.md states
SHAPES = {
    "root": (ROOT, True, None, False, False, 3650),
    "issuing": (ISSUING, True, 0, False, False, 1825),
    "server": (SERVER, False, None, True, False, 730),
    "client": (CLIENT, False, None, False, True, 730),
    "server-client": (SERVER_CLIENT, False, None, True, True, 730),
    "ocsp-responder": (OCSP_RESPONDER, False, None, False, False, 30),
    "privca-server": (PRIVCA_SERVER, False, None, True, False, 30),
    "audit-signer": (AUDIT_SIGNER, False, None, False, False, 825),
}


@pytest.mark.parametrize(
    ("profile", "is_ca", "path_length", "is_server", "is_client", "days"),
    SHAPES.values(),
    ids=list(SHAPES),
)
def test_profile_shapes(
    profile: Profile, is_ca: bool, path_length: int | None, is_server: bool, is_client: bool,
    days: int,
) -> None:  # fmt: skip
    assert (profile.is_ca, profile.path_length) == (is_ca, path_length)
    assert (profile.is_server, profile.is_client) == (is_server, is_client)
    assert profile.default_days == days
    assert ALL_PROFILES[profile.name] is profile


def test_profiles_are_frozen_values() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        SERVER.default_days = 1  # type: ignore[misc]
    assert Profile("server", extended_key_usages=(ExtendedKeyUsageOID.SERVER_AUTH,)) == SERVER


def test_the_tables_agree() -> None:
    assert set(ALL_PROFILES) == {shape[0].name for shape in SHAPES.values()}
    assert set(LEAF_PROFILES) == {"server", "client", "server-client"}
    assert set(INTERNAL_PROFILES) == {"privca-server"}
    assert {"ocsp-responder", "privca-server", "audit-signer"} == SELF_RENEWING_PROFILES
    assert DEFAULT_LEAF_PROFILE is SERVER_CLIENT
    assert not any(ALL_PROFILES[name].is_ca for name in LEAF_PROFILES)


@pytest.mark.parametrize("name", ["server", "client", "server-client", "privca-server"])
def test_leaf_profile_finds_what_may_be_issued(name: str) -> None:
    assert leaf_profile(name) is ALL_PROFILES[name]


@pytest.mark.parametrize(
    "name",
    ["root", "issuing", "ocsp-responder", "Server", "", "server\x1b[2J"],
    ids=["root", "issuing", "ocsp-responder", "case", "empty", "escape"],
)
def test_leaf_profile_refuses_the_rest(name: str) -> None:
    """CA profiles and the responder's are never a leaf an operator asks for."""
    with pytest.raises(InputError) as caught:
        leaf_profile(name)
    assert caught.value.hint == "use one of: client, server, server-client"


# What OpenSSL's purpose checks say about each profile, through a full chain.
PURPOSES = {
    "server-as-server": (SERVER, "sslserver", True),
    "server-as-client": (SERVER, "sslclient", False),
    "client-as-client": (CLIENT, "sslclient", True),
    "client-as-server": (CLIENT, "sslserver", False),
    "server-client-as-server": (SERVER_CLIENT, "sslserver", True),
    "server-client-as-client": (SERVER_CLIENT, "sslclient", True),
    "responder-as-server": (OCSP_RESPONDER, "sslserver", False),
    "responder-as-ocsp-helper": (OCSP_RESPONDER, "ocsphelper", True),
    "privca-server-as-server": (PRIVCA_SERVER, "sslserver", True),
    "audit-signer-as-server": (AUDIT_SIGNER, "sslserver", False),
    "audit-signer-as-client": (AUDIT_SIGNER, "sslclient", False),
    "audit-signer-as-document-signer": (AUDIT_SIGNER, "smimesign", True),
}


@pytest.mark.parametrize(("profile", "purpose", "passes"), PURPOSES.values(), ids=list(PURPOSES))
def test_openssl_purpose(tmp_path: Path, profile: Profile, purpose: str, passes: bool) -> None:
    require_tool("openssl")
    pki = make_pki()
    leaf = build_certificate(leaf_spec(["svc.corp.internal"], profile=profile), pki.issuing_issuer)
    done = judge_chain(tmp_path, leaf, pki, "-purpose", purpose)
    assert (done.returncode == 0) is passes, done.stdout + done.stderr
    if not passes:
        assert "unsuitable certificate purpose" in done.stdout + done.stderr


@pytest.mark.parametrize(
    ("oid", "name"),
    [
        (ExtendedKeyUsageOID.SERVER_AUTH, "serverAuth"),
        (ExtendedKeyUsageOID.CLIENT_AUTH, "clientAuth"),
        (ExtendedKeyUsageOID.OCSP_SIGNING, "OCSPSigning"),
        (ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE, "anyExtendedKeyUsage"),
        (ObjectIdentifier("1.3.6.1.4.1.99999.3"), "1.3.6.1.4.1.99999.3"),
    ],
    ids=["serverAuth", "clientAuth", "OCSPSigning", "any", "unknown"],
)
def test_usage_name(oid: ObjectIdentifier, name: str) -> None:
    assert usage_name(oid) == name
