"""privca.toml: the CA's name, tiers, policy, store and URLs. Read with tomllib."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from privca import _toml
from privca._text import printable
from privca.errors import InputError, NotFound
from privca.home import atomic_write, check_private_file, read_secret_file
from privca.keys.pkcs11 import check_module_path
from privca.policy import IssuancePolicy
from privca.store.address import check_store_url
from privca.urls import check_base_url

STORE_PASSWORD_ENV = "PRIVCA_STORE_PASSWORD"

# Durations, as privca.toml and the command line write them (30d, 12h, 2w, or days), with
# ASCII blanks around the parts as always ('90 d' in a privca.toml keeps working). ASCII
# digits only: '\d' also took other scripts' digits (a second spelling of a number).
# 30 digits already overflow a timedelta; longer would reach int()'s own digit limit.
_DURATION = re.compile(r"\s*([0-9]{1,30})\s*([smhdw]?)\s*", re.ASCII)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "": 86400}
# The longest duration any command or setting takes. A timedelta holds far more (2.7
# million years), but a date does not: now + 999999999d overflowed only after `renew`
# had committed, and every /metrics of a `serve --metrics-window` like it failed. Bounded
# here, where every duration is read, any date a duration moves stays in years 1..9999
# (twice the window, as check uses for CAs, included), and nothing is committed first.
MAX_DURATION = dt.timedelta(days=36525)  # 100 years


class DurationTooLong(InputError):
    """A well-formed duration over MAX_DURATION (callers may word it as "out of range")."""


def parse_duration(text: str) -> dt.timedelta:
    """`30d`, `12h`, `2w`, or a bare number of days; at most MAX_DURATION (100 years)."""
    match = _DURATION.fullmatch(text)
    if not match:
        raise InputError(
            f"duration '{printable(text, 40)}' is not understood",
            "use a number with s, m, h, d or w, e.g. 30d",
        )
    seconds = int(match.group(1)) * _UNITS[match.group(2)]
    if seconds > MAX_DURATION.total_seconds():
        raise DurationTooLong(
            f"duration '{printable(text, 40)}' is too long",
            f"give at most 100 years ({MAX_DURATION.days}d)",
        )
    return dt.timedelta(seconds=seconds)


DEFAULT_CHECKPOINT_EVERY = 1000

# The keys each table of privca.toml may hold. Anything else is refused, not ignored: a
# misspelt key (`allow_wildcard = false`, `eab = ...` under [serve]) would otherwise leave
# the default in force without a word. Keys have only ever been added to this file.
SERVE_LIMIT_KEYS = ("max_header_bytes", "read_timeout", "keep_alive_timeout", "max_connections")
KNOWN_KEYS: dict[str, tuple[str, ...]] = {
    "ca": (
        "name", "single_tier", "encrypted_keys", "base_url", "crl_days", "root_crl_days",
        "hsm_module",
    ),
    "policy": ("permitted", "excluded", "allow_wildcards", "max_days", "key_types", "max_names"),
    "store": ("url", "password_file", "keep_expired"),
    "acme": (
        "http_01_port", "tls_alpn_01_port", "dns_resolver", "eab", "default_profile",
        "profiles", "orders_per_window", "accounts_per_window", "base_url", "validation_timeout",
        "validation_workers", "allow_loopback",
    ),
    "serve": (*SERVE_LIMIT_KEYS, "metrics_window", "metrics_certificates"),
    "audit": ("checkpoint_every",),
}  # fmt: skip
# A CRL's nextUpdate, in days from its signing: ten years is beyond any sane schedule,
# and far larger ones overflow a date.
MAX_CRL_DAYS = 3650


@dataclass(frozen=True)
class Settings:
    name: str
    single_tier: bool = False
    policy: IssuancePolicy = field(default_factory=IssuancePolicy)
    store_url: str = ""
    base_url: str = ""
    encrypted_keys: bool = True
    crl_days: int = 7
    # The root signs CRLs rarely (its key may be offline): publish for this long.
    root_crl_days: int = 180
    hsm_module: str = ""
    # A file holding the PostgreSQL password (never the password itself; see store_password).
    store_password_file: str = ""
    # The [acme] section as written (ports, resolver, eab, profiles); `privca serve` reads it.
    acme: dict[str, Any] = field(default_factory=dict)
    # The [serve] section as written (HTTP limits, metrics); `privca serve` reads it.
    serve: dict[str, Any] = field(default_factory=dict)
    # [store] keep_expired, e.g. "90d": `privca serve` tidies (store/retention.py) the
    # certificates that expired longer ago than this; "" keeps them all.
    keep_expired: str = ""
    # The [audit] section as written: checkpoint_every (entries between automatic signed
    # checkpoints; 0 turns them off, `privca audit checkpoint` still signs one).
    audit: dict[str, Any] = field(default_factory=dict)

    @property
    def audit_checkpoint_every(self) -> int:
        value = self.audit.get("checkpoint_every", DEFAULT_CHECKPOINT_EVERY)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InputError(
                f"[audit] checkpoint_every must be a whole number >= 0, not {value!r}",
                f"set it in privca.toml (default {DEFAULT_CHECKPOINT_EVERY})",
            )
        return value

    @property
    def keep_expired_for(self) -> dt.timedelta | None:
        return parse_duration(self.keep_expired) if self.keep_expired else None

    def to_toml(self) -> str:
        sections: dict[str, dict[str, Any]] = {
            "ca": {
                "name": self.name,
                "single_tier": self.single_tier,
                "encrypted_keys": self.encrypted_keys,
                "base_url": self.base_url,
                "crl_days": self.crl_days,
                "root_crl_days": self.root_crl_days,
                "hsm_module": self.hsm_module,
            },
            "policy": self.policy.to_settings(),
            "store": {"url": self.store_url, "password_file": self.store_password_file},
        }
        if self.keep_expired:
            sections["store"]["keep_expired"] = self.keep_expired
        if self.acme:
            sections["acme"] = dict(self.acme)
        if self.serve:
            sections["serve"] = dict(self.serve)
        if self.audit:
            sections["audit"] = dict(self.audit)
        lines = ["# privca CA settings. Edit with care; `privca doctor` checks them.", ""]
        for section, values in sections.items():
            lines.append(f"[{section}]")
            lines.extend(f"{key} = {_toml_value(value)}" for key, value in values.items())
            lines.append("")
        return "\n".join(lines)

    @classmethod
    def from_toml(cls, text: str, source: str) -> Settings:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise InputError(f"{source} is not valid TOML: {exc}") from exc
        ca = data.get("ca", {})
        if not isinstance(ca, dict) or not isinstance(ca.get("name"), str):
            raise InputError(f"{source} has no [ca] name", "is this a privca home?")
        try:
            _check_known_keys(data)
            store = _toml.table(data, "store")
            settings = cls(
                name=ca["name"],
                single_tier=_toml.flag(ca, "single_tier", False),
                encrypted_keys=_toml.flag(ca, "encrypted_keys", True),
                base_url=check_base_url(_toml.text(ca, "base_url", ""), f"{source} [ca] base_url"),
                crl_days=_toml.whole_number(ca, "crl_days", 7, 1, MAX_CRL_DAYS),
                root_crl_days=_toml.whole_number(ca, "root_crl_days", 180, 1, MAX_CRL_DAYS),
                hsm_module=_hsm_module(ca, source),
                policy=IssuancePolicy.from_settings(_toml.table(data, "policy")),
                store_url=_store_url(store, source),
                store_password_file=_toml.text(store, "password_file", ""),
                keep_expired=_keep_expired(store, source),
                acme=_toml.table(data, "acme"),
                serve=_toml.table(data, "serve"),
                audit=_toml.table(data, "audit"),
            )
        except ValueError as exc:
            raise InputError(
                f"{source} is invalid: {exc}",
                'correct it (TOML values: true/false, numbers, "strings", ["lists"])',
            ) from None
        return settings

    def store_password(self) -> str | None:
        """The PostgreSQL password: $PRIVCA_STORE_PASSWORD, else the [store] password_file;
        None leaves it to libpq, which reads $PGPASSFILE or ~/.pgpass itself."""
        from_env = os.environ.get(STORE_PASSWORD_ENV)
        if from_env:
            return from_env
        if self.store_password_file:
            path = Path(self.store_password_file)
            secret = read_secret_file(path, "store password file")
            try:
                return secret.decode("utf-8")
            except UnicodeDecodeError:
                # Decoding with replacement sent libpq a different password: a login
                # failure that names nothing in the file.
                raise InputError(
                    f"the store password file '{printable(str(path), 200)}' is not UTF-8 text",
                    "write the password as UTF-8 (PostgreSQL passwords are text)",
                ) from None
        return None

    def write(self, path: Path) -> None:
        atomic_write(path, self.to_toml().encode(), 0o600)

    @classmethod
    def read(cls, path: Path) -> Settings:
        """Read privca.toml, refusing one that others could read or change (it names the
        HSM module privca loads and the store it trusts)."""
        try:
            check_private_file(path, "settings file")
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise NotFound(
                f"no CA found at '{path.parent}' ({path.name} is missing)",
                "run `privca init --name NAME`, or pass --home / set $PRIVCA_HOME",
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"cannot read '{path}': {exc}") from exc
        return cls.from_toml(text, str(path))


def _check_known_keys(data: dict[str, Any]) -> None:
    """ValueError naming the first table or key privca.toml may not hold."""
    for table, values in data.items():
        if table not in KNOWN_KEYS:
            raise ValueError(f"[{printable(table, 40)}] is not a section privca knows")
        if not isinstance(values, dict):
            raise ValueError(f"[{printable(table, 40)}] must be a table")
        unknown = [key for key in values if key not in KNOWN_KEYS[table]]
        if unknown:
            raise ValueError(
                f"[{table}] {printable(unknown[0], 40)} is not a setting privca knows "
                f"(known: {', '.join(KNOWN_KEYS[table])})"
            )


def _hsm_module(ca: dict[str, Any], source: str) -> str:
    """hsm_module, which must be an absolute path: a relative one would be found from
    whatever directory a command runs in (privca.toml written by hand, or by an older
    privca that stored --hsm-module as given)."""
    module = _toml.text(ca, "hsm_module", "")
    if module:
        check_module_path(module, f"{source} [ca] hsm_module")
    return module


def _store_url(section: Any, source: str) -> str:
    url = _toml.text(section, "url", "")
    if not url:
        return ""
    try:
        return check_store_url(url)
    except InputError as exc:
        raise InputError(f"{source} [store] url: {exc.message}", exc.hint) from None


def _keep_expired(section: Any, source: str) -> str:
    value = section.get("keep_expired", "") if isinstance(section, dict) else ""
    if value in ("", None):
        return ""
    try:
        parse_duration(str(value))
    except InputError as exc:
        raise InputError(f"{source} [store] keep_expired: {exc.message}", exc.hint) from None
    return str(value)


def _toml_value(value: Any) -> str:
    # JSON string escapes are a subset of TOML basic-string escapes.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)  # e.g. 10.0 or 2.5: valid TOML floats
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        pairs = ", ".join(f"{json.dumps(str(k))} = {_toml_value(v)}" for k, v in value.items())
        return "{ " + pairs + " }" if pairs else "{}"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")
