"""`openssl verify -x509_strict -purpose sslserver` accepts what privca issues.

Every CA key type in both shapes (two-tier: root -> issuing -> leaf; single-tier: the
runbook's root -> leaf), each with name constraints, plus every leaf key type the default
policy allows on one CA. Host name and IP checks must pass for the certified names and
fail for others.
"""

from __future__ import annotations

import pytest

from privca.keys.types import KeyType, key_type_of
from tests.conftest import require_tool
from tests.interop.conftest import CORP_PERMITTED, CAPool, PooledCA, openssl_output, openssl_verify

DNS_NAME = "svc.corp.internal"
IP_ADDRESS = "10.0.0.7"

CA_SHAPES = [
    pytest.param(key_type, single_tier, id=f"{key_type.value}-{'single' if single_tier else 'two'}")
    for key_type in KeyType
    for single_tier in (False, True)
]

# (id, extra openssl flags, expected to verify)
NAME_CHECKS = [
    pytest.param((), True, id="chain-only"),
    pytest.param(("-verify_hostname", DNS_NAME), True, id="hostname"),
    pytest.param(("-verify_ip", IP_ADDRESS), True, id="ip"),
    pytest.param(("-verify_hostname", "other.corp.internal"), False, id="wrong-hostname"),
    pytest.param(("-verify_hostname", "svc.corp.internal.evil.example"), False, id="suffix-host"),
    pytest.param(("-verify_ip", "10.0.0.8"), False, id="wrong-ip"),
]

LEAF_KEY_TYPES = [
    pytest.param(key_type, id=key_type.value)
    for key_type in (
        KeyType.EC_P256,
        KeyType.EC_P384,
        KeyType.RSA_2048,
        KeyType.RSA_3072,
        KeyType.RSA_4096,
    )
]


@pytest.fixture(autouse=True)
def _openssl() -> None:
    require_tool("openssl")


def _ca(ca_pool: CAPool, key_type: KeyType, single_tier: bool) -> PooledCA:
    return ca_pool.get(key_type, single_tier=single_tier, permitted=CORP_PERMITTED)


@pytest.mark.parametrize(("key_type", "single_tier"), CA_SHAPES)
@pytest.mark.parametrize(("flags", "ok"), NAME_CHECKS)
def test_openssl_verifies_leaf(
    ca_pool: CAPool, key_type: KeyType, single_tier: bool, flags: tuple[str, ...], ok: bool
) -> None:
    pooled = _ca(ca_pool, key_type, single_tier)
    assert (pooled.issuing_crt is None) is single_tier
    leaf = pooled.leaf(DNS_NAME, IP_ADDRESS)
    result = openssl_verify(pooled, leaf.certificate, *flags)
    if ok:
        assert result.returncode == 0, openssl_output(result)
        assert result.stdout.strip().endswith(": OK")
    else:
        assert result.returncode != 0, openssl_output(result)
        assert "mismatch" in result.stderr, openssl_output(result)


@pytest.mark.parametrize(("key_type", "single_tier"), CA_SHAPES)
def test_openssl_verifies_ca_certificates(
    ca_pool: CAPool, key_type: KeyType, single_tier: bool
) -> None:
    """The root is a valid self-signed anchor and the issuing CA chains to it, strictly."""
    pooled = _ca(ca_pool, key_type, single_tier)
    root = openssl_verify(pooled, pooled.root_crt, purpose="sslserver")
    assert root.returncode == 0, openssl_output(root)
    if pooled.issuing_crt is not None:
        issuing = openssl_verify(pooled, pooled.issuing_crt, purpose="any")
        assert issuing.returncode == 0, openssl_output(issuing)


@pytest.mark.parametrize("key_type", LEAF_KEY_TYPES)
def test_openssl_verifies_leaf_key_types(ca_pool: CAPool, key_type: KeyType) -> None:
    pooled = ca_pool.get(permitted=CORP_PERMITTED)
    leaf = pooled.leaf(DNS_NAME, IP_ADDRESS, key_type=key_type)
    result = openssl_verify(
        pooled, leaf.certificate, "-verify_hostname", DNS_NAME, "-verify_ip", IP_ADDRESS
    )
    assert result.returncode == 0, openssl_output(result)
    assert key_type_of(leaf.issued.certificate.public_key()) is key_type


@pytest.mark.parametrize(
    ("profile", "purpose", "ok"),
    [
        pytest.param("server", "sslserver", True, id="server-as-server"),
        pytest.param("server", "sslclient", False, id="server-as-client"),
        pytest.param("client", "sslclient", True, id="client-as-client"),
        pytest.param("client", "sslserver", False, id="client-as-server"),
        pytest.param("server-client", "sslserver", True, id="both-as-server"),
        pytest.param("server-client", "sslclient", True, id="both-as-client"),
    ],
)
def test_openssl_purpose_follows_profile(
    ca_pool: CAPool, profile: str, purpose: str, ok: bool
) -> None:
    pooled = ca_pool.get(permitted=CORP_PERMITTED)
    leaf = pooled.leaf(DNS_NAME, profile=profile)
    result = openssl_verify(pooled, leaf.certificate, purpose=purpose)
    assert (result.returncode == 0) is ok, openssl_output(result)
    if not ok:
        assert "unsuitable certificate purpose" in result.stderr, openssl_output(result)
