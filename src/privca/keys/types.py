"""The key types privca generates and accepts, and the checks on keys it is asked to certify."""

from __future__ import annotations

import enum

from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from privca.errors import InputError, PolicyError

# What KeyType.generate makes.
GeneratedPrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


class KeyType(enum.StrEnum):
    """A key algorithm and size privca generates and certifies, named as on the CLI.

    Constructing one from a value raises ValueError like any enum; `parse` turns that
    into InputError. The other members raise nothing.
    """

    EC_P256 = "ec-p256"
    EC_P384 = "ec-p384"
    RSA_2048 = "rsa-2048"
    RSA_3072 = "rsa-3072"
    RSA_4096 = "rsa-4096"
    ED25519 = "ed25519"

    @classmethod
    def parse(cls, text: str) -> KeyType:
        """The key type named `text` (any case), e.g. 'ec-p256'.

        Raises:
            InputError: `text` names no key type privca supports.
        """
        try:
            return cls(text.lower())
        except ValueError:
            raise InputError(
                f"key type '{text}' is not one privca supports",
                "use one of: " + ", ".join(member.value for member in cls),
            ) from None

    def generate(self) -> GeneratedPrivateKey:
        if self is KeyType.EC_P256:
            return ec.generate_private_key(ec.SECP256R1())
        if self is KeyType.EC_P384:
            return ec.generate_private_key(ec.SECP384R1())
        if self is KeyType.ED25519:
            return ed25519.Ed25519PrivateKey.generate()
        return rsa.generate_private_key(public_exponent=65537, key_size=self.rsa_bits)

    @property
    def rsa_bits(self) -> int:
        return int(self.value.split("-")[1]) if self.is_rsa else 0

    @property
    def is_rsa(self) -> bool:
        return self.value.startswith("rsa-")


# The private keys that can sign certificates (CertificateIssuerPrivateKeyTypes, as classes).
SIGNING_KEY_CLASSES = (
    ec.EllipticCurvePrivateKey,
    rsa.RSAPrivateKey,
    ed25519.Ed25519PrivateKey,
    ed448.Ed448PrivateKey,
    dsa.DSAPrivateKey,
)

# The public keys of those: what can have signed a certificate or a CRL.
ISSUER_PUBLIC_KEY_CLASSES = (
    ec.EllipticCurvePublicKey,
    rsa.RSAPublicKey,
    ed25519.Ed25519PublicKey,
    ed448.Ed448PublicKey,
    dsa.DSAPublicKey,
)

DEFAULT_ROOT_KEY = KeyType.EC_P384
DEFAULT_ISSUING_KEY = KeyType.EC_P256
DEFAULT_LEAF_KEY = KeyType.EC_P256

_CURVES = {"secp256r1": KeyType.EC_P256, "secp384r1": KeyType.EC_P384}


def key_type_of(public_key: PublicKeyTypes) -> KeyType:
    """Classify a public key, refusing what no profile of ours accepts (weak or odd keys)."""
    if isinstance(public_key, rsa.RSAPublicKey):
        numbers = public_key.public_numbers()
        if numbers.e != 65537:
            raise PolicyError(
                f"RSA key has public exponent {numbers.e}; privca accepts only 65537",
                "generate the key again with the default exponent",
            )
        size = public_key.key_size
        if size < 2048:
            raise PolicyError(
                f"RSA key of {size} bits is too weak; the minimum is 2048",
                "generate an ec-p256 or rsa-3072 key",
            )
        for bits in (2048, 3072, 4096):
            if size == bits:
                return KeyType(f"rsa-{bits}")
        raise PolicyError(
            f"RSA key of {size} bits is not a supported size",
            "use 2048, 3072 or 4096 bits",
        )
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        curve = public_key.curve.name
        if curve not in _CURVES:
            raise PolicyError(
                f"EC key on curve {curve} is not accepted; privca accepts P-256 and P-384",
                "generate a key on P-256 (ec-p256)",
            )
        return _CURVES[curve]
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return KeyType.ED25519
    raise PolicyError(
        f"{type(public_key).__name__.removeprefix('_')} keys are not accepted",
        "use an EC P-256/P-384, RSA or Ed25519 key",
    )
