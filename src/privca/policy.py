"""IssuancePolicy: which names, keys and lifetimes the CA will certify. One frozen value."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from privca import _toml
from privca._text import printable
from privca.errors import InputError, PolicyError
from privca.keys.types import KeyType, key_type_of
from privca.x509.names import NameSubtree, SubjectName, host_of, is_ip_address, parse_subtree

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

DEFAULT_LEAF_KEY_TYPES = (
    KeyType.EC_P256,
    KeyType.EC_P384,
    KeyType.RSA_2048,
    KeyType.RSA_3072,
    KeyType.RSA_4096,
)


DEFAULT_MAX_NAMES = 100
# What privca.toml may set: a leaf's validity (100 years: beyond, dates overflow) and the
# names in one certificate (far above what a TLS client accepts in one).
MAX_LEAF_DAYS = 36500
MAX_NAMES_SETTING = 100_000


@dataclass(frozen=True)
class IssuancePolicy:
    """The rules every request is checked against before the CA key is touched.

    `permitted`/`excluded` are the subtrees the CA certificates' name constraints are built
    from (privca.x509.constraints): DNS domains bind DNS names and the hosts of email and
    URI names alike, IP networks bind addresses. A name type the permitted subtrees do not
    cover is refused here and made unverifiable in the certificates, so nothing is issued
    that a constraint-checking client would reject, and nothing a thief signs gets through.
    """

    permitted: tuple[NameSubtree, ...] = ()
    excluded: tuple[NameSubtree, ...] = ()
    allow_wildcards: bool = True
    max_days: int = 825
    key_types: tuple[KeyType, ...] = DEFAULT_LEAF_KEY_TYPES
    # A certificate with thousands of names is a denial of service on every handshake.
    max_names: int = DEFAULT_MAX_NAMES

    @classmethod
    def build(
        cls,
        permitted: Iterable[str] = (),
        excluded: Iterable[str] = (),
        **kwargs: Any,
    ) -> IssuancePolicy:
        """A policy from subtree texts as `privca init --permit/--exclude` takes them.

        Raises:
            InputError: a subtree is neither a DNS domain nor a network (or carries a
                zone id); also TypeError for a keyword IssuancePolicy does not have.
        """
        return cls(
            permitted=tuple(dict.fromkeys(parse_subtree(t) for t in permitted)),
            excluded=tuple(dict.fromkeys(parse_subtree(t) for t in excluded)),
            **kwargs,
        )

    @property
    def constrained(self) -> bool:
        """Whether any permitted or excluded subtree is set. Raises nothing."""
        return bool(self.permitted or self.excluded)

    def _permits_kind(self, kind: str) -> tuple[NameSubtree, ...]:
        return tuple(s for s in self.permitted if s.kind == kind)

    def check_name(self, name: SubjectName) -> None:
        """Refuse a name the policy does not allow.

        Raises:
            PolicyError: a wildcard when wildcards are off; a DNS name, address, or the
                host of an email or URI name outside the permitted or inside an excluded
                subtree; a URI whose host is an IP address while constraints are set.
        """
        if name.is_wildcard and not self.allow_wildcards:
            raise PolicyError(
                f"name '{name}' is a wildcard and the policy does not allow wildcards",
                "list each host name, or set allow_wildcards = true in privca.toml",
            )
        if name.kind == "ip":
            self._check_ip(name.value, shown=str(name))
            return
        if name.kind == "dns":
            self._check_dns(name.value, shown=str(name), wildcard=name.is_wildcard)
            return
        host = host_of(name)
        if host is None:
            return
        if name.kind == "uri" and is_ip_address(host):
            if self.constrained:
                # RFC 5280 4.2.1.10: URI constraints name hosts by domain only, so no
                # constraint can hold such a URI to the permitted networks.
                raise PolicyError(
                    f"name '{printable(str(name))}' has an IP address as its host, which "
                    "name constraints cannot bind",
                    "use a DNS name as the URI's host",
                )
            return
        self._check_dns(host, shown=printable(str(name)), wildcard=False)

    def _check_dns(self, host: str, *, shown: str, wildcard: bool) -> None:
        dns_permits = self._permits_kind("dns")
        if self.permitted and not any(s.contains_dns(host) for s in dns_permits):
            allowed = ", ".join(str(s) for s in dns_permits) or "none (only IP networks)"
            raise PolicyError(
                f"name '{shown}' is outside the permitted DNS subtrees: {allowed}",
                "request names under a permitted domain",
            )
        for subtree in self.excluded:
            if subtree.contains_dns(host):
                raise PolicyError(f"name '{shown}' is inside the excluded subtree '{subtree}'")
            # '*.corp.internal' would also match 'secret.corp.internal' at a client.
            if wildcard and subtree.kind == "dns" and subtree.value.endswith(host[1:]):
                raise PolicyError(
                    f"wildcard '{shown}' would cover the excluded subtree '{subtree}'",
                    "list the host names instead of a wildcard",
                )

    def _check_ip(self, address: str, *, shown: str) -> None:
        ip_permits = self._permits_kind("ip")
        if self.permitted and not any(s.contains_ip(address) for s in ip_permits):
            allowed = ", ".join(str(s) for s in ip_permits) or "none (only DNS domains)"
            raise PolicyError(
                f"address '{shown}' is outside the permitted networks: {allowed}",
                "request an address inside a permitted network",
            )
        for subtree in self.excluded:
            if subtree.contains_ip(address):
                raise PolicyError(f"address '{shown}' is inside the excluded network '{subtree}'")

    def check_subtree(self, subtree: NameSubtree) -> None:
        """Refuse a subtree (a narrower CA's --permit) that is not wholly inside this
        policy: a domain must be a name the policy admits (so is everything below it, as
        excluded subtrees stay binding down the chain), a network must have its first and
        last address inside one permitted network.

        Raises:
            PolicyError: the subtree reaches outside the permitted or into an excluded one.
        """
        if subtree.kind == "dns":
            self._check_dns(subtree.value, shown=subtree.value, wildcard=False)
            return
        network = subtree.network
        first, last = str(network.network_address), str(network.broadcast_address)
        ip_permits = self._permits_kind("ip")
        if self.permitted and not any(
            s.contains_ip(first) and s.contains_ip(last) for s in ip_permits
        ):
            allowed = ", ".join(str(s) for s in ip_permits) or "none (only DNS domains)"
            raise PolicyError(
                f"network '{subtree}' is outside the permitted networks: {allowed}",
                "permit a network inside one of them",
            )
        for excluded in self.excluded:
            if excluded.kind == "ip" and network.overlaps(excluded.network):
                raise PolicyError(f"network '{subtree}' overlaps the excluded network '{excluded}'")

    def check_names(self, names: Iterable[SubjectName]) -> None:
        """One bad name refuses the whole request; so do more names than `max_names`.

        Raises:
            PolicyError: more than `max_names` names, or any name `check_name` refuses.
        """
        names = list(names)
        if len(names) > self.max_names:
            raise PolicyError(
                f"{len(names)} names in one certificate exceed the policy maximum of "
                f"{self.max_names}",
                "split them over several certificates, or raise max_names under [policy] "
                "in privca.toml",
            )
        for name in names:
            self.check_name(name)

    def check_public_key(self, public_key: PublicKeyTypes) -> KeyType:
        """The key's type, if the policy allows it.

        Raises:
            PolicyError: a key of a type, size, curve or RSA exponent privca never
                certifies (see `key_type_of`), or a type not in `key_types`.
        """
        key_type = key_type_of(public_key)
        if key_type not in self.key_types:
            raise PolicyError(
                f"key type {key_type.value} is not allowed by the policy",
                "allowed: " + ", ".join(k.value for k in self.key_types),
            )
        return key_type

    def check_days(self, days: int) -> None:
        """Refuse a validity period the policy does not allow.

        Raises:
            InputError: `days` is zero or negative.
            PolicyError: `days` exceeds `max_days`.
        """
        if days <= 0:
            raise InputError(f"validity of {days} days is not positive", "give --days 1 or more")
        if days > self.max_days:
            raise PolicyError(
                f"validity of {days} days exceeds the policy maximum of {self.max_days} days",
                f"use --days {self.max_days} or less",
            )

    def check_not_after(
        self, not_after: dt.datetime, issuer_not_after: dt.datetime, days: int
    ) -> None:
        """Refuse a certificate that would outlive its issuer (`days` is for the message).

        Raises:
            PolicyError: `not_after` is later than `issuer_not_after`.
        """
        if not_after > issuer_not_after:
            raise PolicyError(
                f"validity of {days} days would outlive the issuing CA, which expires "
                f"{issuer_not_after:%Y-%m-%d}",
                "use fewer --days, or rotate the issuing CA (privca rotate issuing)",
            )

    def to_settings(self) -> dict[str, Any]:
        """The [policy] section of privca.toml, as `from_settings` reads it. Raises nothing."""
        return {
            "permitted": [str(s) for s in self.permitted],
            "excluded": [str(s) for s in self.excluded],
            "allow_wildcards": self.allow_wildcards,
            "max_days": self.max_days,
            "key_types": [k.value for k in self.key_types],
            "max_names": self.max_names,
        }

    @classmethod
    def from_settings(cls, data: dict[str, Any]) -> IssuancePolicy:
        """The policy a [policy] section of privca.toml describes.

        Raises:
            InputError: a subtree, key type or value in the section is invalid (wrong
                type, unknown key type, max_names not a whole number of at least 1).
        """
        default_types = tuple(k.value for k in DEFAULT_LEAF_KEY_TYPES)
        try:
            return cls.build(
                permitted=_toml.texts(data, "permitted", ()),
                excluded=_toml.texts(data, "excluded", ()),
                allow_wildcards=_toml.flag(data, "allow_wildcards", True),
                max_days=_toml.whole_number(data, "max_days", 825, 1, MAX_LEAF_DAYS),
                key_types=tuple(
                    KeyType.parse(k) for k in _toml.texts(data, "key_types", default_types)
                ),
                max_names=_toml.whole_number(
                    data, "max_names", DEFAULT_MAX_NAMES, 1, MAX_NAMES_SETTING
                ),
            )
        except (TypeError, ValueError) as exc:
            raise InputError(
                f"the [policy] section of privca.toml is invalid: {exc}",
                'correct it in privca.toml (TOML values: true/false, numbers, ["lists"])',
            ) from exc
