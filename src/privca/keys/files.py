"""CA key files: PKCS#8 encrypted with PBES2 (PBKDF2-HMAC-SHA256, 600,000 rounds, AES-256-CBC).

cryptography's BestAvailableEncryption uses only 2,048 PBKDF2 rounds and its PKCS#8
encryption builder is not available, so the EncryptedPrivateKeyInfo DER is written here.
Both `load_pem_private_key` and `openssl pkey` read the result.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    PrivateKeyTypes,
)
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

from privca.errors import KeyUnavailable
from privca.home import atomic_write, check_key_file, check_private_directory, read_input_file
from privca.keys.types import SIGNING_KEY_CLASSES
from privca.x509.encoding import load_private_key, pem_private_key_unencrypted

PBKDF2_ROUNDS = 600_000
_OID_PBES2 = "1.2.840.113549.1.5.13"
_OID_PBKDF2 = "1.2.840.113549.1.5.12"
_OID_HMAC_SHA256 = "1.2.840.113549.2.9"
_OID_AES256_CBC = "2.16.840.1.101.3.4.1.42"


def _der(tag: int, body: bytes) -> bytes:
    length = len(body)
    if length < 0x80:
        return bytes([tag, length]) + body
    encoded = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(encoded)]) + encoded + body


def _sequence(*items: bytes) -> bytes:
    return _der(0x30, b"".join(items))


def _integer(value: int) -> bytes:
    return _der(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big"))


def _octets(value: bytes) -> bytes:
    return _der(0x04, value)


def _oid(dotted: str) -> bytes:
    arcs = [int(arc) for arc in dotted.split(".")]
    body = bytearray([40 * arcs[0] + arcs[1]])
    for arc in arcs[2:]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        body.extend(reversed(chunk))
    return _der(0x06, bytes(body))


def encrypt_pkcs8(key: PrivateKeyTypes, passphrase: bytes, rounds: int = PBKDF2_ROUNDS) -> bytes:
    """PEM `ENCRYPTED PRIVATE KEY` for `key`, PBES2 with a strong PBKDF2."""
    from cryptography.hazmat.primitives import serialization

    plaintext = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    salt, iv = os.urandom(16), os.urandom(16)
    derived = PBKDF2HMAC(hashes.SHA256(), 32, salt, rounds).derive(passphrase)
    padder = padding.PKCS7(128).padder()
    padded = padder.update(plaintext) + padder.finalize()
    encryptor = Cipher(algorithms.AES(derived), modes.CBC(iv)).encryptor()
    ciphertext = encryptor.update(padded) + encryptor.finalize()
    algorithm = _sequence(
        _oid(_OID_PBES2),
        _sequence(
            _sequence(
                _oid(_OID_PBKDF2),
                _sequence(
                    _octets(salt),
                    _integer(rounds),
                    _integer(32),
                    _sequence(_oid(_OID_HMAC_SHA256), b"\x05\x00"),
                ),
            ),
            _sequence(_oid(_OID_AES256_CBC), _octets(iv)),
        ),
    )
    der = _sequence(algorithm, _octets(ciphertext))
    body = base64.encodebytes(der).replace(b"\n", b"")
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return (
        b"-----BEGIN ENCRYPTED PRIVATE KEY-----\n"
        + b"\n".join(lines)
        + b"\n-----END ENCRYPTED PRIVATE KEY-----\n"
    )


def write_ca_key(path: Path, key: PrivateKeyTypes, passphrase: bytes | None) -> None:
    """Write a CA key 0400; encrypted unless the operator chose --no-passphrase."""
    data = encrypt_pkcs8(key, passphrase) if passphrase else pem_private_key_unencrypted(key)
    atomic_write(path, data, 0o400, overwrite=False)


def read_ca_key(
    path: Path, passphrase: bytes | None, *, validate: bool = False
) -> CertificateIssuerPrivateKeyTypes:
    """Load a CA key after refusing insecure permissions, as ssh does for its keys
    (KeyUnavailable for a key that cannot sign certificates)."""
    check_private_directory(path.parent)
    check_key_file(path)
    data = read_input_file(path, "CA key file")
    key = load_private_key(data, passphrase, source=f"CA key '{path}'", validate=validate)
    if not isinstance(key, SIGNING_KEY_CLASSES):
        raise KeyUnavailable(f"CA key '{path}' is not a key that can sign certificates")
    return key
