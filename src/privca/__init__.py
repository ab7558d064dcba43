"""privca: a private certificate authority for an organisation's internal services.

The library face. Names are resolved lazily so that importing privca (and running the CLI)
does not pay for cryptography and SQLAlchemy until they are needed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "AlreadyExists": "privca.errors",
    "CertificateAuthority": "privca.authority",
    "CheckFailed": "privca.errors",
    "EnvironmentRefused": "privca.errors",
    "InputError": "privca.errors",
    "InsecurePermissions": "privca.errors",
    "IssuancePolicy": "privca.policy",
    "KeyType": "privca.keys.types",
    "KeyUnavailable": "privca.errors",
    "NotFound": "privca.errors",
    "PolicyError": "privca.errors",
    "PrivcaError": "privca.errors",
    "Profile": "privca.x509.profiles",
    "StoreUnavailable": "privca.errors",
    "ToolMissing": "privca.errors",
    "WrongPassphrase": "privca.errors",
}

__all__ = [
    "AlreadyExists",
    "CertificateAuthority",
    "CheckFailed",
    "EnvironmentRefused",
    "InputError",
    "InsecurePermissions",
    "IssuancePolicy",
    "KeyType",
    "KeyUnavailable",
    "NotFound",
    "PolicyError",
    "PrivcaError",
    "Profile",
    "StoreUnavailable",
    "ToolMissing",
    "WrongPassphrase",
    "__version__",
]

if TYPE_CHECKING:  # pragma: no cover
    from privca.authority import CertificateAuthority
    from privca.errors import (
        AlreadyExists,
        CheckFailed,
        EnvironmentRefused,
        InputError,
        InsecurePermissions,
        KeyUnavailable,
        NotFound,
        PolicyError,
        PrivcaError,
        StoreUnavailable,
        ToolMissing,
        WrongPassphrase,
    )
    from privca.keys.types import KeyType
    from privca.policy import IssuancePolicy
    from privca.x509.profiles import Profile


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'privca' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
