import pytest

from privca.errors import InputError, PolicyError
from privca.keys.types import KeyType
from privca.policy import IssuancePolicy
from privca.x509.names import parse_names

CONSTRAINED = IssuancePolicy.build(["corp.internal", "10.0.0.0/8"], ["secret.corp.internal"])


@pytest.mark.parametrize(
    "names",
    [
        ["db.corp.internal"],
        ["corp.internal"],
        ["*.db.corp.internal"],
        ["10.1.2.3"],
        ["email:ops@corp.internal"],
        ["uri:spiffe://corp.internal/x"],
    ],
    ids=str,
)
def test_constrained_policy_allows(names: list[str]) -> None:
    CONSTRAINED.check_names(parse_names(names))


@pytest.mark.parametrize(
    ("names", "fragment"),
    [
        (["db.corp.example"], "outside the permitted DNS subtrees: corp.internal"),
        (["db"], "outside the permitted DNS subtrees"),
        (["11.0.0.1"], "outside the permitted networks: 10.0.0.0/8"),
        (["::1"], "outside the permitted networks"),
        (["x.secret.corp.internal"], "excluded subtree"),
        (["*.corp.internal"], "would cover the excluded subtree"),
        (["email:ops@example.com"], "outside the permitted DNS"),
        (["db.corp.internal", "evil.example"], "evil.example"),
    ],
    ids=lambda v: v if isinstance(v, str) else ",".join(v),
)
def test_constrained_policy_refuses(names: list[str], fragment: str) -> None:
    with pytest.raises(PolicyError) as caught:
        CONSTRAINED.check_names(parse_names(names))
    assert fragment in caught.value.message


def test_wildcards_can_be_forbidden() -> None:
    policy = IssuancePolicy(allow_wildcards=False)
    with pytest.raises(PolicyError, match="wildcard"):
        policy.check_names(parse_names(["*.corp.internal"]))


@pytest.mark.parametrize("days", [0, -1])
def test_days_must_be_positive(days: int) -> None:
    with pytest.raises(InputError, match="not positive"):
        IssuancePolicy().check_days(days)


def test_days_capped_by_policy() -> None:
    with pytest.raises(PolicyError, match="maximum of 825"):
        IssuancePolicy().check_days(826)


def test_key_types_limited_by_policy() -> None:
    policy = IssuancePolicy(key_types=(KeyType.EC_P256,))
    assert policy.check_public_key(KeyType.EC_P256.generate().public_key()) is KeyType.EC_P256
    with pytest.raises(PolicyError, match="ec-p384 is not allowed"):
        policy.check_public_key(KeyType.EC_P384.generate().public_key())
    with pytest.raises(PolicyError, match="ed25519 is not allowed"):
        IssuancePolicy().check_public_key(KeyType.ED25519.generate().public_key())


def test_settings_round_trip() -> None:
    assert IssuancePolicy.from_settings(CONSTRAINED.to_settings()) == CONSTRAINED
