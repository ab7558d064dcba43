"""The errors privca raises, each with the exit code the CLI maps it to.

Exit codes: 0 success, 1 a check found a problem, 2 bad input or usage (nothing changed),
3 the environment refuses (permissions, store, key, tool), 70 an internal bug.
"""

from __future__ import annotations


class PrivcaError(Exception):
    """Base class: a one-sentence message naming the value and the rule, plus a hint."""

    exit_code = 70

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class InputError(PrivcaError):
    """Bad input or usage: malformed files, wrong flags, absurd values."""

    exit_code = 2


class PolicyError(InputError):
    """A request the CA's policy or name constraints do not allow."""


class WrongPassphrase(InputError):
    """A passphrase that does not decrypt the key."""


class NotFound(InputError):
    """A serial, name or file that does not exist."""


class AlreadyExists(InputError):
    """Something that would be overwritten: a CA home, an output file."""


class EnvironmentRefused(PrivcaError):
    """The environment refuses: permissions, a locked or unreachable store, a missing tool."""

    exit_code = 3


class InsecurePermissions(EnvironmentRefused):
    """A key file or private directory that others could read or replace."""


class StoreUnavailable(EnvironmentRefused):
    """The inventory database cannot be opened or written."""


class KeyUnavailable(EnvironmentRefused):
    """The CA key cannot be reached (missing file, HSM absent)."""


class ToolMissing(EnvironmentRefused):
    """An external program privca needs is not installed."""


class CheckFailed(PrivcaError):
    """A check ran and found a problem (verification failed, expiry near)."""

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
