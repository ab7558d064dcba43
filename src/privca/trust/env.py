"""Environment variables for runtimes that ignore the OS trust store.

Two kinds, and the difference matters:

- NODE_EXTRA_CA_CERTS adds to Node's built-in roots, and LEGO_CA_CERTIFICATES adds to the
  system pool when LEGO_CA_SYSTEM_CERT_POOL=true (alone it replaces the pool): these
  point at the root itself.
- REQUESTS_CA_BUNDLE, SSL_CERT_FILE and CURL_CA_BUNDLE replace the CA file: pointing them
  at the root alone would stop public sites from verifying, so they point at a bundle of
  the system CAs plus the root (the system bundle itself once the root is installed there).
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from privca._text import printable
from privca.trust.base import TrustAnchor
from privca.trust.linux import bundle_holds

SYSTEM_BUNDLES = (
    Path("/etc/ssl/certs/ca-certificates.crt"),  # Debian, Ubuntu, Alpine, Arch
    Path("/etc/pki/tls/certs/ca-bundle.crt"),  # RHEL, Fedora
    Path("/etc/ssl/ca-bundle.pem"),  # openSUSE
    Path("/etc/ssl/cert.pem"),  # macOS, Alpine, BSDs
)
FORMATS = ("shell", "systemd", "json")


@dataclass(frozen=True)
class EnvVar:
    name: str
    value: str
    why: str


def find_system_bundle(candidates: Sequence[Path] = SYSTEM_BUNDLES) -> Path | None:
    return next((path for path in candidates if path.is_file()), None)


def build_combined_bundle(system_bundle: bytes, anchor: TrustAnchor) -> bytes:
    """The system CAs followed by the root (once: an existing copy is not repeated)."""
    if anchor.pem in system_bundle:
        return system_bundle
    separator = b"" if not system_bundle or system_bundle.endswith(b"\n") else b"\n"
    return system_bundle + separator + anchor.pem


def build_env_vars(root_pem: Path, replacing_bundle: Path | None) -> list[EnvVar]:
    """The variables to set; the replacing ones only when a complete bundle exists."""
    found = [
        EnvVar("NODE_EXTRA_CA_CERTS", str(root_pem), "Node.js: added to its built-in roots"),
        EnvVar("LEGO_CA_CERTIFICATES", str(root_pem), "lego: the root (see next line)"),
        EnvVar(
            "LEGO_CA_SYSTEM_CERT_POOL",
            "true",
            "lego: add to the system pool; without it LEGO_CA_CERTIFICATES replaces the pool",
        ),
    ]
    if replacing_bundle is not None:
        bundle = str(replacing_bundle)
        found += [
            EnvVar(
                "REQUESTS_CA_BUNDLE",
                bundle,
                "Python requests, certbot: replaces certifi's bundle (system CAs + root)",
            ),
            EnvVar(
                "SSL_CERT_FILE",
                bundle,
                "OpenSSL-based runtimes (Python ssl, httpx, Ruby): replaces the default CA file",
            ),
            EnvVar("CURL_CA_BUNDLE", bundle, "curl: replaces its CA bundle"),
        ]
    return found


def missing_bundle_comment(bundle: Path) -> list[str]:
    return [
        "REQUESTS_CA_BUNDLE, SSL_CERT_FILE and CURL_CA_BUNDLE replace the CA list, so they",
        f"need a bundle of the system CAs plus this root; {bundle} does not exist yet:",
        "write it with `privca trust env --write-bundle` (rerun when the system CAs change),",
        "or install the root in the system store (`privca trust install --stores system`).",
    ]


def _systemd_quote(value: str) -> str:
    # A line break would end the directive and start another (systemd reads C escapes).
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")
    escaped = escaped.replace("\n", "\\n").replace("\r", "\\r")
    return f'"{escaped}"'


def render(variables: Sequence[EnvVar], comments: Sequence[str], output_format: str) -> str:
    if output_format == "json":
        return json.dumps({v.name: v.value for v in variables}, indent=2) + "\n"
    # Comments carry the root's subject and file paths: a line break in either would end
    # the comment, and `eval "$(privca trust env ca.crt)"` would run the rest as a command.
    lines = [f"# {printable(comment)}" for comment in comments]
    if output_format == "systemd":
        lines.append("[Service]")
    for variable in variables:
        lines.append(f"# {printable(variable.why)}")
        if output_format == "systemd":
            lines.append(f"Environment={_systemd_quote(f'{variable.name}={variable.value}')}")
        else:
            lines.append(f"export {variable.name}={shlex.quote(variable.value)}")
    return "\n".join(lines) + "\n"


def replacing_bundle_for(anchor: TrustAnchor, bundle: Path, system: Path | None) -> Path | None:
    """The bundle the replacing variables should name, or None if none is complete.

    Once the root is in the system bundle, that bundle is the one that stays current.
    """
    if system is not None and bundle_holds(system, anchor.der):
        return system
    if bundle_holds(bundle, anchor.der):
        return bundle
    return None
