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


def test_uri_with_an_ip_host_is_refused_under_constraints() -> None:
    """RFC 5280 URI constraints name hosts by domain: nothing could bind such a URI."""
    with pytest.raises(PolicyError, match="IP address as its host"):
        CONSTRAINED.check_names(parse_names(["uri:https://10.0.0.5/"]))
    with pytest.raises(PolicyError, match="IP address as its host"):
        IssuancePolicy.build([], ["secret.corp.internal"]).check_names(
            parse_names(["uri:https://[fd00::5]/"])
        )
    IssuancePolicy().check_names(parse_names(["uri:https://10.0.0.5/"]))


@pytest.mark.parametrize(
    ("names", "fragment"),
    [
        (["email:ops@mail.corp.internal"], None),
        (["email:ops@corp.internal.evil.example"], "outside the permitted DNS"),
        (["uri:spiffe://a.corp.internal/x"], None),
        (["uri:spiffe://evilcorp.internal/x"], "outside the permitted DNS"),
        (["email:ops@x.secret.corp.internal"], "excluded subtree"),
        (["uri:https://secret.corp.internal/"], "excluded subtree"),
    ],
    ids=lambda v: ",".join(v) if isinstance(v, list) else str(v),
)
def test_email_and_uri_hosts_follow_the_dns_subtrees(
    names: list[str], fragment: str | None
) -> None:
    if fragment is None:
        CONSTRAINED.check_names(parse_names(names))
        return
    with pytest.raises(PolicyError) as caught:
        CONSTRAINED.check_names(parse_names(names))
    assert fragment in caught.value.message


def test_ip_only_policy_refuses_every_dns_email_and_uri_name() -> None:
    policy = IssuancePolicy.build(["10.0.0.0/8"])
    for name in ("db.corp.internal", "email:ops@corp.internal", "uri:spiffe://corp.internal/x"):
        with pytest.raises(PolicyError, match="only IP networks"):
            policy.check_names(parse_names([name]))
    policy.check_names(parse_names(["10.1.2.3"]))


def test_max_names_caps_the_names_of_one_certificate() -> None:
    names = parse_names([f"n{i}.corp.internal" for i in range(101)])
    with pytest.raises(PolicyError) as caught:
        CONSTRAINED.check_names(names)
    assert "101 names in one certificate exceed the policy maximum of 100" in caught.value.message
    assert "max_names" in (caught.value.hint or "")
    CONSTRAINED.check_names(names[:100])
    small = IssuancePolicy.from_settings({**CONSTRAINED.to_settings(), "max_names": 2})
    assert small.max_names == 2
    with pytest.raises(PolicyError, match="maximum of 2"):
        small.check_names(names[:3])


@pytest.mark.parametrize("value", [0, -1, "10", 1.5, True])
def test_max_names_must_be_a_positive_whole_number(value: object) -> None:
    with pytest.raises(InputError, match="max_names"):
        IssuancePolicy.from_settings({"max_names": value})
