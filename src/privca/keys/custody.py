"""Key custody: where the CA keys of one home live and how they are unlocked.

`KeyCustody` is what the authority asks of a place that holds CA keys: generate one for a
role and key type, keep it, load it again by reference, and name the file it lives in.
`FileCustody` keeps encrypted PKCS#8 files in private/; `Pkcs11Custody` keeps
non-extractable keys on a PKCS#11 token. `HomeCustody` is the one place that tells a
token reference (`pkcs11:...`) from a file, and makes signers out of loaded keys after
checking that each key matches its certificate.

Secrets are asked for when a key is unlocked and not kept afterwards: a passphrase source
is called each time a key file is decrypted or written (the CLI remembers a typed
passphrase for the length of one command); a PKCS#11 PIN is used to log in, and the
logged-in session, not the PIN, is what stays. A server thus holds unlocked signers,
never the passphrase; it asks the source again only to log in to a token that came back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes

from privca.errors import InputError, KeyUnavailable
from privca.home import CAHome
from privca.keys.files import read_ca_key, write_ca_key
from privca.keys.sealing import SealingKey
from privca.keys.types import KeyType
from privca.x509.encoding import public_key_der

if TYPE_CHECKING:
    from privca.keys.pkcs11 import Pkcs11Token

PrivateKey = CertificateIssuerPrivateKeyTypes
# A secret, or where to get it when it is needed (a prompt, a file read again), or none.
SecretSource = bytes | Callable[[], bytes | None] | None
TOKEN_SCHEME = "pkcs11:"


def ask(source: SecretSource) -> bytes | None:
    """The secret now: the bytes given, or what the source answers when asked."""
    return source() if callable(source) else source


@dataclass(frozen=True)
class GeneratedKey:
    """A new CA key and the reference it will be found by again (a path under the home,
    or a pkcs11: URI). A token key is stored on the token when generated."""

    key_ref: str
    private_key: PrivateKey


class KeyCustody(Protocol):
    """A place that holds CA keys."""

    def generate(self, key_type: KeyType, role: str, name: str) -> GeneratedKey:
        """A new key for a CA of `role`; `name` distinguishes it from earlier ones."""
        ...

    def keep(self, key: GeneratedKey) -> Path | None:
        """Store `key` for good; returns the file written, if any (None on a token)."""
        ...

    def load(self, key_ref: str) -> PrivateKey:
        """The key `key_ref` names, unlocked (KeyUnavailable, WrongPassphrase)."""
        ...

    def key_file(self, key_ref: str) -> Path | None:
        """The file holding `key_ref`, or None for a key that is not a file."""
        ...

    def close(self) -> None: ...


def check_key_matches(
    key: PrivateKey, certificate: x509.Certificate, key_ref: str, role: str
) -> None:
    """Refuse a key that is not the one `certificate` certifies (KeyUnavailable)."""
    if public_key_der(key.public_key()) != public_key_der(certificate.public_key()):
        raise KeyUnavailable(
            f"the key '{key_ref}' does not match the {role} certificate",
            # A token key is not a file: replacing private/ cannot bring it back.
            "the token holds another key under that label: check that hsm_module in "
            "privca.toml loads the right HSM, else restore the token from the HSM's backup"
            if is_token_reference(key_ref)
            else "restore the right key file into private/",
        )


class FileCustody:
    """CA keys as PKCS#8 files in the home's private/ (0400 in 0700), encrypted with the
    passphrase unless the CA was made with --no-passphrase."""

    def __init__(self, home: CAHome, passphrase: SecretSource, *, encrypted: bool) -> None:
        self._home = home
        self._passphrase = passphrase
        self._encrypted = encrypted

    @staticmethod
    def reference(name: str) -> str:
        """The key_ref of a key file called `name` in private/."""
        return f"private/{name}.key"

    def _secret(self) -> bytes | None:
        return ask(self._passphrase) if self._encrypted else None

    def generate(self, key_type: KeyType, role: str, name: str) -> GeneratedKey:
        return GeneratedKey(self.reference(name), key_type.generate())

    def keep(self, key: GeneratedKey) -> Path:
        path = self._home.root / key.key_ref
        write_ca_key(path, key.private_key, self._secret())
        return path

    def load(self, key_ref: str) -> PrivateKey:
        return read_ca_key(self._home.root / key_ref, self._secret())

    def key_file(self, key_ref: str) -> Path:
        return self._home.root / key_ref

    def close(self) -> None:
        """Nothing is held open."""


class Pkcs11Custody:
    """CA keys on PKCS#11 tokens of one module; one logged-in session per token, opened
    when a key of that token is first needed, and again after the token was lost (see
    Pkcs11Token). The PIN is asked for at each login only."""

    def __init__(self, module: str, pin: SecretSource, token: str = "") -> None:
        """`token` is where new keys are generated (init); keys are loaded from the token
        their URI names."""
        self._module = module
        self._pin = pin
        self._token_label = token
        self._tokens: dict[str, Pkcs11Token] = {}

    def _token(self, label: str) -> Pkcs11Token:
        token = self._tokens.get(label)
        if token is None:
            from privca.keys.pkcs11 import Pkcs11Token

            if not self._module:
                raise KeyUnavailable(
                    "a CA key is in an HSM but privca.toml names no hsm_module",
                    "set hsm_module under [ca] in privca.toml",
                )
            token = self._tokens.setdefault(
                label, Pkcs11Token(self._module, label, lambda: ask(self._pin))
            )
        return token

    def beside(self, key_ref: str) -> Pkcs11Custody:
        """This custody, generating new keys on the token that holds `key_ref`."""
        from privca.keys.pkcs11 import Pkcs11Uri

        self._token_label = Pkcs11Uri.parse(key_ref).token
        return self

    def generate(self, key_type: KeyType, role: str, name: str) -> GeneratedKey:
        if not self._token_label:
            raise InputError("no PKCS#11 token to generate the key on", "give --hsm-token")
        uri, key = self._token(self._token_label).generate(key_type, role)
        return GeneratedKey(str(uri), key)

    def keep(self, key: GeneratedKey) -> None:
        """Token keys are stored (non-extractable) when generated."""

    def load(self, key_ref: str) -> PrivateKey:
        from privca.keys.pkcs11 import Pkcs11Uri

        uri = Pkcs11Uri.parse(key_ref)
        return self._token(uri.token).key(uri)

    def key_file(self, key_ref: str) -> None:
        return None

    def destroy_generated(self) -> None:
        """Destroy the keys generated on tokens through this custody (see Pkcs11Token)."""
        for token in self._tokens.values():
            token.destroy_generated()

    def close(self) -> None:
        for token in self._tokens.values():
            token.close()
        self._tokens.clear()


def is_token_reference(key_ref: str) -> bool:
    return key_ref.startswith(TOKEN_SCHEME)


class HomeCustody:
    """The custody of one CA home: key files in private/, keys on PKCS#11 tokens, and the
    key that seals EAB secrets at rest (private/eab.key)."""

    def __init__(
        self,
        home: CAHome,
        *,
        passphrase: SecretSource = None,
        pin: SecretSource = None,
        encrypted: bool = True,
        hsm_module: str = "",
        hsm_token: str = "",
    ) -> None:
        """`pin` defaults to `passphrase`: the PIN of an HSM home has always come from the
        passphrase sources, and still may."""
        self.home = home
        self.files = FileCustody(home, passphrase, encrypted=encrypted)
        self.tokens = Pkcs11Custody(hsm_module, pin if pin is not None else passphrase, hsm_token)
        self._new_keys_on_token = bool(hsm_token)

    def _custody_of(self, key_ref: str) -> KeyCustody:
        return self.tokens if is_token_reference(key_ref) else self.files

    def generate(
        self, key_type: KeyType, role: str, name: str, *, beside: str | None = None
    ) -> GeneratedKey:
        """A new key where the key `beside` is (an issuing CA's next to its root), else
        on the token given at init, else as a file."""
        if beside is not None and is_token_reference(beside):
            return self.tokens.beside(beside).generate(key_type, role, name)
        if beside is None and self._new_keys_on_token:
            return self.tokens.generate(key_type, role, name)
        return self.files.generate(key_type, role, name)

    def keep(self, key: GeneratedKey) -> Path | None:
        return self._custody_of(key.key_ref).keep(key)

    def load(self, key_ref: str) -> PrivateKey:
        return self._custody_of(key_ref).load(key_ref)

    def key_file(self, key_ref: str) -> Path | None:
        return self._custody_of(key_ref).key_file(key_ref)

    def is_present(self, key_ref: str) -> bool:
        """Whether the key is at hand: a file that exists, or a key on a token (which is
        only known for sure when it is used)."""
        path = self.key_file(key_ref)
        return path is None or path.exists()

    def load_for(self, certificate: x509.Certificate, key_ref: str, role: str) -> PrivateKey:
        """The key of a CA certificate, checked to be the one it certifies."""
        key = self.load(key_ref)
        check_key_matches(key, certificate, key_ref, role)
        return key

    def sealing_key(self) -> SealingKey:
        """The key that seals EAB secrets in the inventory (made at init and import)."""
        return SealingKey(self.home.eab_sealing_key)

    def discard_generated(self) -> None:
        """Undo the keys `generate` made on a token, for an `init` that failed after
        generating them (key files are only written by `keep`, and undone with the home)."""
        self.tokens.destroy_generated()

    def close(self) -> None:
        self.tokens.close()


__all__ = [
    "FileCustody",
    "GeneratedKey",
    "HomeCustody",
    "KeyCustody",
    "Pkcs11Custody",
    "PrivateKey",
    "SecretSource",
    "ask",
    "check_key_matches",
]
