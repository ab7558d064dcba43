"""The errors privca raises, each with the exit code the CLI maps it to.

Exit codes: 0 success, 1 a check found a problem, 2 bad input or usage (nothing changed),
3 the environment refuses (permissions, store, key, tool), 70 an internal bug.
"""

from __future__ import annotations


class PrivcaError(Exception):
    """Base class: a one-sentence message naming the value and the rule, plus a hint.

    Every failure privca reports on purpose is a PrivcaError; `message` and `hint` are
    what the CLI prints (`privca: error: ...` / `  hint: ...`) and `exit_code` its exit
    status. Library callers catch PrivcaError, or one of the four families below by what
    they can do about it: InputError (fix the request), EnvironmentRefused (fix the
    machine), CheckFailed (a check's verdict). Anything else escaping privca is a bug.
    Constructing an error raises nothing.
    """

    exit_code = 70

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class InputError(PrivcaError):
    """Bad input or usage: malformed files, wrong flags, absurd values. Exit 2.

    Raised before anything is written: parsing CSRs, certificates, keys, names, durations
    and settings (privca.x509, privca.settings, KeyType.parse, IssuancePolicy.from_settings).
    """

    exit_code = 2


class PolicyError(InputError):
    """A request the CA's policy or name constraints do not allow. Exit 2.

    Raised by IssuancePolicy's checks and key_type_of (weak or unsupported keys), and by
    CertificateAuthority when it issues or signs.
    """


class WrongPassphrase(InputError):
    """A passphrase (or PKCS#11 PIN) that does not decrypt or unlock the key. Exit 2."""


class NotFound(InputError):
    """A serial, name or file that does not exist (an unknown serial, a home or input file
    that is missing). Exit 2."""


class AlreadyExists(InputError):
    """Something that would be overwritten: a CA home that already holds a CA, an output
    file written without overwrite (home.atomic_write). Exit 2."""


class EnvironmentRefused(PrivcaError):
    """The environment refuses: permissions, a locked or unreachable store, a missing tool.

    Exit 3. Raised where privca meets the machine: writing files (home.atomic_write), the
    store, the key, trust stores.
    """

    exit_code = 3


class InsecurePermissions(EnvironmentRefused):
    """A key file or private directory that others could read or replace. Exit 3."""


class StoreUnavailable(EnvironmentRefused):
    """The inventory database cannot be opened or written (locked, unreachable, a schema
    newer than this privca). Exit 3."""


class KeyUnavailable(EnvironmentRefused):
    """The CA key cannot be reached (missing file, HSM or token absent, sealing key
    missing). Exit 3."""


class ToolMissing(EnvironmentRefused):
    """An external program privca needs is not installed (certutil, keytool,
    update-ca-certificates, ...). Exit 3."""


class CheckFailed(PrivcaError):
    """A check ran and found a problem (verification failed, expiry near). Exit 1.

    The library returns verdicts instead (CertificateAuthority.verify's report); the CLI
    raises it where a check fails (quickstart's verification and TLS handshake).
    """

    exit_code = 1


class DeployHookFailed(CheckFailed):
    """The certificate was issued and written, but the --deploy-hook command failed.

    Exit 1, not 2 or 3: those promise that nothing changed, and here the files did."""


__all__ = [
    "AlreadyExists",
    "CheckFailed",
    "DeployHookFailed",
    "EnvironmentRefused",
    "InputError",
    "InsecurePermissions",
    "KeyUnavailable",
    "NotFound",
    "PolicyError",
    "PrivcaError",
    "StoreUnavailable",
    "ToolMissing",
    "WrongPassphrase",
]
