import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from privca.errors import InputError, PolicyError
from privca.keys.types import KeyType, key_type_of


@pytest.mark.parametrize("key_type", [k for k in KeyType if k is not KeyType.RSA_4096], ids=str)
def test_generated_keys_classify_as_their_type(key_type: KeyType) -> None:
    assert key_type_of(key_type.generate().public_key()) is key_type


@pytest.mark.parametrize(
    ("make_key", "fragment"),
    [
        (lambda: rsa.generate_private_key(65537, 1024), "too weak"),
        (lambda: rsa.generate_private_key(3, 2048), "exponent 3"),
        (lambda: ec.generate_private_key(ec.SECP256K1()), "secp256k1"),
        (lambda: ec.generate_private_key(ec.SECP521R1()), "secp521r1"),
    ],
    ids=["rsa-1024", "rsa-e3", "secp256k1", "p-521"],
)
def test_weak_or_odd_keys_are_refused(make_key, fragment: str) -> None:
    with pytest.raises(PolicyError) as caught:
        key_type_of(make_key().public_key())
    assert fragment in caught.value.message


def test_unknown_key_type_name() -> None:
    with pytest.raises(InputError, match="not one privca supports"):
        KeyType.parse("dsa-1024")
