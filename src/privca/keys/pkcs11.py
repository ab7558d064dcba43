"""CA keys held in an HSM through PKCS#11 (python-pkcs11), e.g. SoftHSM2 or a YubiHSM.

cryptography's builders accept a subclass of its private-key types whose sign() calls out,
so certificates, CRLs and OCSP responses are signed by the token while x509/build.py never
knows the difference. (Not a documented cryptography API: tests/keys/test_pkcs11.py guards it.)
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar
from urllib.parse import unquote

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.utils import Buffer

from privca._text import printable
from privca.errors import (
    InputError,
    InsecurePermissions,
    KeyUnavailable,
    PrivcaError,
    WrongPassphrase,
)
from privca.keys.types import KeyType

_T = TypeVar("_T")


@dataclass(frozen=True)
class Pkcs11Uri:
    """The subset of RFC 7512 privca writes and reads: token label and object label."""

    token: str
    label: str

    def __str__(self) -> str:
        return f"pkcs11:token={self.token};object={self.label}"

    @classmethod
    def parse(cls, text: str) -> Pkcs11Uri:
        if not text.startswith("pkcs11:"):
            raise InputError(f"'{text}' is not a pkcs11: URI")
        fields = dict(
            part.split("=", 1) for part in text.removeprefix("pkcs11:").split(";") if "=" in part
        )
        if "token" not in fields or "object" not in fields:
            raise InputError(f"PKCS#11 URI '{text}' needs token= and object=")
        return cls(unquote(fields["token"]), unquote(fields["object"]))


def check_module_path(module: str, source: str = "--hsm-module") -> None:
    """Refuse a relative module path (InputError): the directory a command runs from would
    decide which library the CA process loads with the PIN in hand."""
    if not Path(module).is_absolute():
        raise InputError(
            f"{source} '{printable(module, 200)}' is not an absolute path",
            "give the module's full path, e.g. /usr/lib/softhsm/libsofthsm2.so",
        )


def check_module(module: str, source: str = "--hsm-module") -> None:
    """Refuse (InsecurePermissions) a module file, or a directory on its path (the given
    one and the one symlinks lead to), that a user other than root and us could write:
    group or others may write it (a directory with the sticky bit excepted, as /tmp), or
    another user owns it. Whoever can replace the library runs code in the CA process,
    which holds the PIN and a logged-in session. A missing file is left to the loader."""
    check_module_path(module, source)
    given = Path(module)
    try:
        real = given.resolve(strict=True)
    except OSError:
        return
    for path in dict.fromkeys([given, *given.parents, real, *real.parents]):
        try:
            info = path.stat()
        except OSError:
            continue
        _check_module_part(path, info, is_file=path in (given, real))


def _check_module_part(path: Path, info: os.stat_result, *, is_file: bool) -> None:
    mine = os.geteuid() if hasattr(os, "geteuid") else info.st_uid
    shown = printable(str(path), 200)
    what = "PKCS#11 module" if is_file else "directory of the PKCS#11 module"
    if info.st_uid not in (0, mine):
        raise InsecurePermissions(
            f"the {what} '{shown}' is owned by uid {info.st_uid}, who could replace it",
            f"install the module where only root can write, or: chown root '{shown}'",
        )
    sticky = stat.S_ISDIR(info.st_mode) and info.st_mode & stat.S_ISVTX
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not sticky:
        raise InsecurePermissions(
            f"the {what} '{shown}' can be written by group or others "
            f"(mode {stat.S_IMODE(info.st_mode):04o})",
            f"run: chmod go-w '{shown}'",
        )


def _pkcs11() -> Any:
    """python-pkcs11, an optional dependency (`privca[hsm]`): every use of a token starts
    here, so a machine without it gets exit 3 and the install command, not an internal
    error from the first `import pkcs11` that runs."""
    try:
        import pkcs11
    except ImportError as exc:
        raise KeyUnavailable(
            "HSM keys need python-pkcs11, which is not installed",
            "install privca with its HSM support: pip install 'privca[hsm]' "
            "(from a checkout: pip install '.[hsm]')",
        ) from exc
    return pkcs11


def _library(module: str) -> Any:
    check_module(module, "hsm_module")
    pkcs11 = _pkcs11()
    try:
        return pkcs11.lib(module)
    except (OSError, RuntimeError, pkcs11.exceptions.PKCS11Error) as exc:
        raise KeyUnavailable(
            f"cannot load the PKCS#11 module '{module}': {exc}",
            "check hsm_module in privca.toml (SoftHSM2: /usr/lib/softhsm/libsofthsm2.so)",
        ) from exc


def _pin_text(pin: bytes | None) -> str | None:
    """The PIN as python-pkcs11 takes it: text, which it encodes as UTF-8 (PKCS#11 PINs
    are UTF-8 characters), so bytes that are not UTF-8 cannot reach the token."""
    if not pin:
        return None
    try:
        return pin.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(
            "the HSM PIN is not valid UTF-8 text",
            "PKCS#11 PINs are UTF-8 characters: check the PIN file or $PRIVCA_PASSPHRASE "
            "(saved in another encoding?)",
        ) from None


class TokenUnavailable(KeyUnavailable):
    """The token holding a CA key cannot be used now (unplugged, restarted, its files
    gone): worth trying again later, unlike a key that is missing from a token that
    answers. Exit 3."""


def _unusable(token_label: str, exc: Exception) -> TokenUnavailable:
    return TokenUnavailable(
        f"PKCS#11 token '{printable(token_label)}' cannot be used now ({type(exc).__name__})",
        "check that the HSM is plugged in and answers; privca logs in again at the next use",
    )


# How often each module was re-initialised in this process (python-pkcs11 loads a module
# once per process, so every session of every token of it shares one initialisation).
_generations: dict[str, int] = {}
_generations_lock = threading.Lock()


def _generation(module: str) -> int:
    with _generations_lock:
        return _generations.get(module, 0)


def _reinitialize(module: str, seen: int) -> int:
    """C_Finalize and C_Initialize the module, unless another token already did since
    generation `seen`: a token that went away is not found again by a module that was
    initialised while it was there (SoftHSM2 answers CKR_GENERAL_ERROR until then), and
    every session of the module is void afterwards. The generation now."""
    pkcs11 = _pkcs11()

    with _generations_lock:
        current = _generations.get(module, 0)
        if current == seen:
            with contextlib.suppress(pkcs11.exceptions.PKCS11Error):
                _library(module).reinitialize()
            current = _generations[module] = current + 1
        return current


class Pkcs11Session:
    """One logged-in session on a token."""

    def __init__(self, module: str, token_label: str, pin: bytes | None) -> None:
        pkcs11 = _pkcs11()

        lib = _library(module)
        try:
            token = lib.get_token(token_label=token_label)
        except (pkcs11.exceptions.NoSuchToken, pkcs11.exceptions.MultipleTokensReturned) as exc:
            raise TokenUnavailable(
                f"PKCS#11 token '{printable(token_label)}' was not found (or is not unique) in "
                f"'{printable(module)}'",
                "check that the HSM is plugged in and the token label is right",
            ) from exc
        except pkcs11.exceptions.PKCS11Error as exc:
            raise _unusable(token_label, exc) from exc
        try:
            self.session = token.open(user_pin=_pin_text(pin), rw=True)
        except pkcs11.exceptions.PinIncorrect as exc:
            raise WrongPassphrase(
                f"the PIN was refused by PKCS#11 token '{printable(token_label)}'",
                "check the PIN file or $PRIVCA_PASSPHRASE (it holds the PIN for HSM keys)",
            ) from exc
        except pkcs11.exceptions.PKCS11Error as exc:
            raise _unusable(token_label, exc) from exc
        self.token_label = token_label

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.session.close()

    def generate(self, key_type: KeyType, purpose: str) -> str:
        """A new non-extractable key pair on the token; returns its label."""
        pkcs11 = _pkcs11()
        from pkcs11.util.ec import encode_named_curve_parameters

        label = f"privca-{purpose}-{secrets.token_hex(4)}"
        attributes = {
            pkcs11.Attribute.TOKEN: True,
            pkcs11.Attribute.SENSITIVE: True,
            pkcs11.Attribute.EXTRACTABLE: False,
            pkcs11.Attribute.SIGN: True,
        }
        if key_type in (KeyType.EC_P256, KeyType.EC_P384):
            curve = "secp256r1" if key_type is KeyType.EC_P256 else "secp384r1"
            parameters = self.session.create_domain_parameters(
                pkcs11.KeyType.EC,
                {pkcs11.Attribute.EC_PARAMS: encode_named_curve_parameters(curve)},
                local=True,
            )
            parameters.generate_keypair(store=True, label=label, private_template=attributes)
        elif key_type.is_rsa:
            self.session.generate_keypair(
                pkcs11.KeyType.RSA,
                key_type.rsa_bits,
                store=True,
                label=label,
                private_template=attributes,
            )
        else:
            raise InputError(
                f"key type {key_type.value} cannot be generated in an HSM by privca",
                "use ec-p256, ec-p384 or an RSA type",
            )
        return label

    def find(self, uri: Pkcs11Uri) -> tuple[Any, Any]:
        """The private and public key objects labelled `uri.label`; the private one must
        be allowed to sign (CKA_SIGN), or every signature would fail."""
        pkcs11 = _pkcs11()

        private = self._one(pkcs11.ObjectClass.PRIVATE_KEY, uri)
        public = self._one(pkcs11.ObjectClass.PUBLIC_KEY, uri)
        if not private[pkcs11.Attribute.SIGN]:
            raise KeyUnavailable(
                f"the key '{printable(uri.label)}' on token '{printable(uri.token)}' cannot "
                "sign (its CKA_SIGN is false)",
                "a CA key needs CKA_SIGN: restore the key privca generated from the HSM's "
                "backup, or set CKA_SIGN on it with the HSM's tools",
            )
        return private, public

    def _one(self, object_class: Any, uri: Pkcs11Uri) -> Any:
        """The one object of `object_class` labelled `uri.label`. The search is read to
        its end (C_FindObjectsFinal), unlike get_key's when it finds two: that search was
        finished by the garbage collector after the session had closed, and printed an
        "Exception ignored ... SessionHandleInvalid" traceback."""
        pkcs11 = _pkcs11()

        found = list(
            self.session.get_objects(
                {pkcs11.Attribute.CLASS: object_class, pkcs11.Attribute.LABEL: uri.label}
            )
        )
        if len(found) != 1:
            raise KeyUnavailable(
                f"key '{printable(str(uri))}' was not found (or is not unique) on the token",
                "restore the key to the HSM or correct key_ref",
            )
        return found[0]


class Pkcs11Token:
    """One token of one module: logged in when a key on it is first needed, and again
    after the token was lost (unplugged, restarted, its files moved away). A session and
    the object handles found in it do not survive that, so any PKCS#11 error while
    signing drops them: the use that met it fails with TokenUnavailable (a server answers
    tryLater and 503), the next one re-initialises the module and logs in again, so a
    server works again once the token is back, without a restart."""

    def __init__(self, module: str, label: str, pin: Callable[[], bytes | None]) -> None:
        self.module = module
        self.label = label
        self._pin = pin
        self._session: Pkcs11Session | None = None
        self._private: dict[str, Any] = {}  # object label -> its handle in _session
        self._generated: list[str] = []  # labels of the key pairs made through this token
        self._lost = False
        self._generation = _generation(module)
        # One operation at a time on a session (PKCS#11 5.1), and one login per loss.
        self._lock = threading.RLock()

    def session(self) -> Pkcs11Session:
        with self._lock:
            current = _generation(self.module)
            if self._session is not None and self._generation != current:
                self._forget()  # the module was re-initialised since: the session is void
            if self._session is None:
                if self._lost:
                    current = _reinitialize(self.module, current)
                self._generation = current
                try:
                    self._session = Pkcs11Session(self.module, self.label, self._pin())
                except PrivcaError:
                    self._lost = True  # e.g. not plugged in yet: initialise afresh next time
                    raise
                self._lost = False
            return self._session

    def _forget(self) -> None:
        if self._session is not None:
            self._session.close()
        self._session = None
        self._private.clear()

    def drop(self) -> None:
        """Forget the session and its handles; the next use logs in again."""
        with self._lock:
            self._forget()
            self._lost = True

    def close(self) -> None:
        with self._lock:
            self._forget()

    def _guarded(self, work: Callable[[Pkcs11Session], _T]) -> _T:
        """`work` on the session; a PKCS#11 error drops the session (see the class)."""
        pkcs11 = _pkcs11()

        with self._lock:
            session = self.session()
            try:
                return work(session)
            except pkcs11.exceptions.PKCS11Error as exc:
                self.drop()
                raise _unusable(self.label, exc) from exc

    def generate(self, key_type: KeyType, purpose: str) -> tuple[Pkcs11Uri, TokenKey]:
        """A new non-extractable key pair on the token; returns its URI and a signing key."""
        label = self._guarded(lambda session: session.generate(key_type, purpose))
        self._generated.append(label)
        uri = Pkcs11Uri(self.label, label)
        return uri, self.key(uri)

    def key(self, uri: Pkcs11Uri) -> TokenKey:
        """A cryptography private key object whose signatures are made by the token."""
        private, public = self._guarded(lambda session: session.find(uri))
        with self._lock:
            self._private[uri.label] = private
        return _token_key(self, uri, private, public)

    def sign(self, label: str, payload: bytes, mechanism: Any) -> bytes:
        """`payload` signed by the key labelled `label`, found again after a loss."""

        def sign(session: Pkcs11Session) -> bytes:
            private = self._private.get(label)
            if private is None:
                private, _ = session.find(Pkcs11Uri(self.label, label))
                self._private[label] = private
            return bytes(private.sign(payload, mechanism=mechanism))

        return self._guarded(sign)

    def destroy_generated(self) -> None:
        """Destroy the key pairs generated through this token (a failed `init`), and only
        those: each label is privca-ROLE-RANDOM, made here. Best effort: this runs while
        another error is on its way to the user, which a token that fails too must not
        hide."""
        if not self._generated:
            return  # nothing made (nor, without python-pkcs11, anything to import)
        pkcs11 = _pkcs11()

        labels, self._generated = self._generated, []
        with contextlib.suppress(PrivcaError, pkcs11.exceptions.PKCS11Error):
            session = self.session().session
            for label in labels:
                self._private.pop(label, None)
                for found in list(session.get_objects({pkcs11.Attribute.LABEL: label})):
                    found.destroy()

    def check(self, label: str) -> None:
        """Whether the key labelled `label` can be used now (a server's health): reads an
        attribute of it, which fails as a signature would once the token is gone."""
        pkcs11 = _pkcs11()

        def read(session: Pkcs11Session) -> None:
            private = self._private.get(label)
            if private is None:
                private, _ = session.find(Pkcs11Uri(self.label, label))
                self._private[label] = private
            private[pkcs11.Attribute.SIGN]

        self._guarded(read)


def _token_key(token: Pkcs11Token, uri: Pkcs11Uri, private: Any, public: Any) -> TokenKey:
    pkcs11 = _pkcs11()

    if private.key_type == pkcs11.KeyType.EC:
        from pkcs11.util.ec import encode_ec_public_key

        loaded = serialization.load_der_public_key(encode_ec_public_key(public))
        if isinstance(loaded, ec.EllipticCurvePublicKey):
            return Pkcs11EcKey(token, uri.label, loaded)
    else:
        from pkcs11.util.rsa import encode_rsa_public_key

        der = encode_rsa_public_key(public)
        loaded = serialization.load_der_public_key(_rsa_spki(der))
        if isinstance(loaded, rsa.RSAPublicKey):
            return Pkcs11RsaKey(token, uri.label, loaded)
    raise KeyUnavailable(
        f"key '{printable(str(uri))}' on the token is neither an EC nor an RSA key"
    )


def _rsa_spki(pkcs1: bytes) -> bytes:
    """Wrap a PKCS#1 RSAPublicKey in a SubjectPublicKeyInfo (cryptography wants SPKI)."""
    key = serialization.load_der_public_key(
        b"\x30"
        + _length(len(_RSA_ALGORITHM) + len(_bitstring(pkcs1)))
        + _RSA_ALGORITHM
        + _bitstring(pkcs1)
    )
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


_RSA_ALGORITHM = bytes.fromhex("300d06092a864886f70d0101010500")


def _length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    encoded = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(encoded)]) + encoded


def _bitstring(data: bytes) -> bytes:
    return b"\x03" + _length(len(data) + 1) + b"\x00" + data


def _digest(data: bytes, algorithm: object) -> tuple[bytes, hashes.HashAlgorithm]:
    """The digest the token signs, and its hash (data already hashed when Prehashed)."""
    if isinstance(algorithm, utils.Prehashed):
        return data, algorithm._algorithm
    if not isinstance(algorithm, hashes.HashAlgorithm):
        raise KeyUnavailable("privca's HSM keys sign a hash (SHA-256, SHA-384 or SHA-512)")
    hasher = hashes.Hash(algorithm)
    hasher.update(data)
    return hasher.finalize(), algorithm


class _OnToken:
    """Where a token key's signatures are made: by label, through its token, so a key
    object kept by a server outlives the session it was found in."""

    def __init__(self, token: Pkcs11Token, label: str) -> None:
        self._token = token
        self._label = label

    def _token_sign(self, payload: bytes, mechanism: Any) -> bytes:
        return self._token.sign(self._label, payload, mechanism)

    def check(self) -> None:
        """Raise TokenUnavailable if the token cannot sign with this key now."""
        self._token.check(self._label)


class Pkcs11EcKey(_OnToken, ec.EllipticCurvePrivateKey):
    """An EC private key on a token: hashes locally, signs the digest with CKM_ECDSA."""

    def __init__(self, token: Pkcs11Token, label: str, public: ec.EllipticCurvePublicKey) -> None:
        super().__init__(token, label)
        self._public = public

    def sign(self, data: Buffer, signature_algorithm: ec.EllipticCurveSignatureAlgorithm) -> bytes:
        pkcs11 = _pkcs11()
        from pkcs11.util.ec import encode_ecdsa_signature

        digest, _ = _digest(bytes(data), signature_algorithm.algorithm)
        raw = self._token_sign(digest, pkcs11.Mechanism.ECDSA)
        return bytes(encode_ecdsa_signature(raw))

    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self._public

    @property
    def curve(self) -> ec.EllipticCurve:
        return self._public.curve

    @property
    def key_size(self) -> int:
        return self._public.key_size

    def private_numbers(self) -> ec.EllipticCurvePrivateNumbers:
        raise KeyUnavailable("an HSM key cannot be exported")

    def private_bytes(self, *args: Any, **kwargs: Any) -> bytes:
        raise KeyUnavailable("an HSM key cannot be exported")

    def exchange(self, *args: Any, **kwargs: Any) -> bytes:
        raise KeyUnavailable("HSM CA keys only sign")

    def __copy__(self) -> Pkcs11EcKey:
        return self

    def __deepcopy__(self, memo: Any) -> Pkcs11EcKey:
        return self


class Pkcs11RsaKey(_OnToken, rsa.RSAPrivateKey):
    """An RSA private key on a token: PKCS#1 v1.5 over a locally computed digest."""

    _DIGEST_INFO: ClassVar[dict[str, bytes]] = {
        "sha256": bytes.fromhex("3031300d060960864801650304020105000420"),
        "sha384": bytes.fromhex("3041300d060960864801650304020205000430"),
        "sha512": bytes.fromhex("3051300d060960864801650304020305000440"),
    }

    def __init__(self, token: Pkcs11Token, label: str, public: rsa.RSAPublicKey) -> None:
        super().__init__(token, label)
        self._public = public

    def sign(
        self,
        data: bytes,
        padding_: padding.AsymmetricPadding,
        algorithm: utils.Prehashed | hashes.HashAlgorithm | utils.NoDigestInfo,
    ) -> bytes:
        pkcs11 = _pkcs11()

        if not isinstance(padding_, padding.PKCS1v15):
            raise KeyUnavailable("privca's HSM RSA keys sign with PKCS#1 v1.5 only")
        digest, hash_algorithm = _digest(data, algorithm)
        prefix = self._DIGEST_INFO[hash_algorithm.name]
        return self._token_sign(prefix + digest, pkcs11.Mechanism.RSA_PKCS)

    def public_key(self) -> rsa.RSAPublicKey:
        return self._public

    @property
    def key_size(self) -> int:
        return self._public.key_size

    def decrypt(self, *args: Any, **kwargs: Any) -> bytes:
        raise KeyUnavailable("HSM CA keys only sign")

    def private_numbers(self) -> rsa.RSAPrivateNumbers:
        raise KeyUnavailable("an HSM key cannot be exported")

    def private_bytes(self, *args: Any, **kwargs: Any) -> bytes:
        raise KeyUnavailable("an HSM key cannot be exported")

    def __copy__(self) -> Pkcs11RsaKey:
        return self

    def __deepcopy__(self, memo: Any) -> Pkcs11RsaKey:
        return self


# A private key whose signatures the token makes.
TokenKey = Pkcs11EcKey | Pkcs11RsaKey
