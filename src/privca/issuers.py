"""Named issuers: several issuing CA lineages under one root, each with its own name
constraints (inside the root's) and the leaf profiles it may issue.

What an issuer may sign is decided here (`IssuerChoice`: the issuer, its policy and the CA
that signs for it now), so issue, sign, renew and ACME finalize apply one rule. The
registry answers which CA belongs to which issuer; the store keeps the issuers.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Callable, Iterable, Sequence

from cryptography import x509

from privca import urls
from privca._text import printable
from privca.errors import InputError, PolicyError
from privca.keys.custody import HomeCustody
from privca.keys.types import DEFAULT_ISSUING_KEY, KeyType, key_type_of
from privca.policy import IssuancePolicy
from privca.registry import ISSUING_ALIASES, CaCertificate, CaRole, Registry
from privca.rotation import (
    authority_row,
    check_ca_days,
    issuing_ca,
    kept_until_recorded,
    under_old_root,
    under_retired_root,
)
from privca.store.inventory import Store
from privca.store.issuers import NewIssuerRow
from privca.store.records import IssuerRecord
from privca.x509 import profiles
from privca.x509.build import Issuer
from privca.x509.constraints import subtrees_of
from privca.x509.names import NameSubtree, parse_subtree

# A DNS-label-like token: it becomes a URL path segment (/acme/<issuer>/directory) and a
# file name, so lowercase letters, digits and inner hyphens only.
_NAME = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
# Hex digits only: /crl/<name>.crl and `privca crl` select CAs by hex serial too.
_SERIAL_LIKE = re.compile(r"[0-9a-f]+")
# Words an issuer may not take: the ACME server's own path segments (an issuer's directory
# sits beside them under /acme/), the CA aliases of `privca crl` and /crl/<alias>.crl, and
# every certificate profile (so /acme/<profile>/directory keeps meaning the default issuer),
# and the names of the files /ca/ serves (/ca/<issuer>.crt and .pem must reach the issuer).
RESERVED_NAMES = frozenset(
    {
        *(
            file.rsplit(".", 1)[0]
            for file in (
                urls.CHAIN_FILE,
                urls.ROOTS_FILE,
                urls.AUDIT_CERTIFICATE_FILE,
                urls.CROSS_FILE,
            )
        ),
        "directory",
        "new-nonce",
        "new-account",
        "new-order",
        "revoke-cert",
        "key-change",
        "renewal-info",
        "account",
        "order",
        "authz",
        "chall",
        "cert",
        CaRole.ROOT,
        CaRole.CROSS,
        *ISSUING_ALIASES,
        *profiles.ALL_PROFILES,
    }
)


def check_issuer_name(text: str, taken: Iterable[str] = ()) -> str:
    """An issuer name as given to `privca issuer create` (also refusing `taken`: the
    ACME profile names of this home).

    Raises:
        InputError: not a lowercase DNS-label-like token of 1 to 63 characters, or a
            reserved word (shown escaped, never raw)."""
    if not _NAME.fullmatch(text):
        raise InputError(
            f"issuer name '{printable(text, 70)}' is not a lowercase DNS-label-like token",
            "use 1 to 63 of a-z, 0-9 and inner hyphens, e.g. team-a",
        )
    if _SERIAL_LIKE.fullmatch(text):
        raise InputError(
            f"issuer name '{text}' could be read as a CA serial number (/crl/{text}.crl)",
            "use a name with a letter beyond a-f or a hyphen, e.g. team-a",
        )
    if text in RESERVED_NAMES or text in set(taken):
        raise InputError(
            f"issuer name '{text}' is reserved (an ACME path, CA alias or profile name)",
            "choose another name, e.g. team-a",
        )
    return text


def issuer_policy(policy: IssuancePolicy, issuer: IssuerRecord | None) -> IssuancePolicy:
    """The home's policy narrowed to one issuer: its permitted subtrees (when it has any)
    instead of the home's, and its excluded subtrees added to the home's."""
    if issuer is None or not (issuer.permitted or issuer.excluded):
        return policy
    permitted = tuple(parse_subtree(t) for t in issuer.permitted) or policy.permitted
    own = tuple(parse_subtree(t) for t in issuer.excluded)
    excluded = tuple(dict.fromkeys((*policy.excluded, *own)))
    return dataclasses.replace(policy, permitted=permitted, excluded=excluded)


@dataclasses.dataclass(frozen=True)
class IssuerChoice:
    """Who signs a new certificate: the issuer, what it may sign, and its CA now."""

    issuer: IssuerRecord | None  # None only in a registry without issuers
    policy: IssuancePolicy
    signing: CaCertificate

    def check_profile(self, profile: str) -> None:
        """Refuse a leaf profile the issuer does not issue.

        Raises:
            PolicyError: `profile` is not among the issuer's profiles."""
        if self.issuer is not None and self.issuer.profiles and profile not in self.issuer.profiles:
            raise PolicyError(
                f"issuer '{self.issuer.name}' does not issue profile "
                f"'{printable(profile, 40)}'; it issues: " + ", ".join(self.issuer.profiles),
                "choose one of those profiles, or another --issuer",
            )


def choose_issuer(
    registry: Registry, policy: IssuancePolicy, name: str | None, profile: str | None = None
) -> IssuerChoice:
    """The issuer `name` (None: the default) ready to sign `profile`.

    Raises:
        NotFound: no such issuer, or it has no active CA.
        PolicyError: the issuer is disabled, or does not issue `profile`."""
    issuer = registry.issuer(name) if name is not None or registry.issuers else None
    if issuer is not None and issuer.disabled:
        raise PolicyError(
            f"issuer '{issuer.name}' is disabled and issues no new certificates",
            f"choose another --issuer, or enable it: privca issuer enable {issuer.name}",
        )
    choice = IssuerChoice(
        issuer=issuer,
        policy=issuer_policy(policy, issuer),
        signing=registry.issuing_of(issuer.name if issuer is not None else None),
    )
    _check_under_a_trusted_root(registry, choice.signing, issuer)
    if profile is not None:
        choice.check_profile(profile)
    return choice


def _check_under_a_trusted_root(
    registry: Registry, signing: CaCertificate, issuer: IssuerRecord | None
) -> None:
    """A CA under a root retired by a rollover signs nothing more: no client trusts what
    it would sign. An issuer the rollover passed by (disabled then, or the default issuer
    of a single-tier home) keeps its old CA until `rotate issuing` gives it a new one.
    While a rollover lasts, an issuing CA still under the old root signs nothing either:
    its certificates would chain to the old root only, where every issuer's new ones
    are to chain to both (docs/issuers.md)."""
    name = issuer.name if issuer is not None else None
    if under_old_root(registry, signing):
        raise PolicyError(
            f"the issuing CA of {f'issuer {name!r}' if name else 'this CA'} "
            f"({signing.common_name}) is under the old root of the rollover under way: "
            "clients that trust only the new root would not accept what it signs",
            f"give it a CA under the new root: privca rotate issuing"
            f"{f' --issuer {name}' if name else ''}",
        )
    if not under_retired_root(registry, signing):
        return
    raise PolicyError(
        f"the issuing CA of {f'issuer {name!r}' if name else 'this CA'} ({signing.common_name}) "
        "is under a retired root: no client trusts what it would sign",
        f"give it a CA under the current root: privca rotate issuing"
        f"{f' --issuer {name}' if name else ''}",
    )


def check_inside_root(
    root: x509.Certificate, policy: IssuancePolicy, permitted: Sequence[NameSubtree]
) -> None:
    """Each subtree an issuer permits lies inside what the root and the home's policy
    permit (the root certificate's constraints are what clients enforce).

    Raises:
        PolicyError: a subtree reaches outside, with the reason."""
    root_permitted, root_excluded = subtrees_of(root)
    bounds = (IssuancePolicy(permitted=root_permitted, excluded=root_excluded), policy)
    for subtree in permitted:
        for bound in bounds:
            try:
                bound.check_subtree(subtree)
            except PolicyError as exc:
                raise PolicyError(
                    f"--permit {subtree} is not inside the root's name constraints: " + exc.message,
                    "permit only subtrees inside the root's (privca issuer show "
                    "lists an issuer's; the root's are in privca.toml [policy])",
                ) from exc


ISSUING_DAYS = profiles.ISSUING.default_days


@dataclasses.dataclass(frozen=True)
class NewIssuer:
    """What `privca issuer create` asks for."""

    name: str
    permitted: Sequence[str] = ()
    excluded: Sequence[str] = ()
    profiles: Sequence[str] = ()
    key_type: KeyType | None = None
    days: int = ISSUING_DAYS


def _check_profiles(names: Sequence[str]) -> tuple[str, ...]:
    for name in names:
        if name not in profiles.LEAF_PROFILES:
            raise InputError(
                f"profile '{printable(name, 40)}' is not a leaf profile",
                "use one of: " + ", ".join(sorted(profiles.LEAF_PROFILES)),
            )
    return tuple(dict.fromkeys(names))


def create_issuer(
    *,
    store: Store,
    registry: Registry,
    custody: HomeCustody,
    root: Callable[[], Issuer],
    policy: IssuancePolicy,
    ca_name: str,
    base_url: str,
    request: NewIssuer,
    taken: Iterable[str],
    now: dt.datetime,
) -> x509.Certificate:
    """A new named issuer and its first issuing CA, signed by the active root (its key
    kept beside the root's: an encrypted file or the token). Everything is checked before
    the root key is unlocked; the issuer and its CA are recorded in one transaction.

    Raises:
        InputError: a bad name, subtree, profile or validity. AlreadyExists: the name is
        taken. PolicyError: constraints outside the root's, or the root has expired."""
    name = check_issuer_name(request.name, taken)
    if any(i.name == name for i in registry.issuers):
        from privca.errors import AlreadyExists

        raise AlreadyExists(f"an issuer named '{name}' exists", "see privca issuer list")
    permitted = tuple(dict.fromkeys(parse_subtree(t) for t in request.permitted))
    excluded = tuple(dict.fromkeys(parse_subtree(t) for t in request.excluded))
    allowed = _check_profiles(request.profiles)
    check_ca_days(request.days, "issuing CA")
    root_ca = registry.root
    if root_ca.not_after <= now:
        raise PolicyError("the root has expired; a new issuing CA cannot be made under it")
    check_inside_root(root_ca.certificate, policy, permitted)
    record = IssuerRecord(
        name=name,
        disabled=False,
        default=False,
        permitted=tuple(str(s) for s in permitted),
        excluded=tuple(str(s) for s in excluded),
        profiles=allowed,
        created_at=now,
    )
    current = registry.active(CaRole.ISSUING)
    key_type = request.key_type or (
        key_type_of(current.certificate.public_key()) if current else DEFAULT_ISSUING_KEY
    )
    key, cert = issuing_ca(
        custody,
        key_type,
        root_ca.key_ref,
        root(),
        f"{ca_name} {name}",
        issuer_policy(policy, record),
        base_url,
        request.days,
        now,
    )
    with kept_until_recorded(custody, [key]):  # no key file without its record
        store.add_issuer(
            NewIssuerRow(name, record.permitted, record.excluded, record.profiles),
            dataclasses.replace(authority_row(CaRole.ISSUING, cert, key.key_ref), issuer=name),
            now,
        )
    return cert


__all__ = [
    "RESERVED_NAMES",
    "IssuerChoice",
    "NewIssuer",
    "check_inside_root",
    "check_issuer_name",
    "choose_issuer",
    "create_issuer",
    "issuer_policy",
]
