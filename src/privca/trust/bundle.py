"""Files for configuration management and MDM: the root in the shape each consumer wants.

Everything here is pure (bytes in, bytes out) and deterministic: the same root gives the
same file, so a config-management run does not report a change every time.
"""

from __future__ import annotations

import json
import os
import plistlib
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from privca.errors import InputError
from privca.trust.base import TrustAnchor
from privca.trust.java import DEFAULT_STOREPASS
from privca.trust.windows import build_gpo_instructions

PASSWORD_ENV = "PRIVCA_TRUSTSTORE_PASSWORD"
_K8S_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_PROFILE_NAMESPACE = uuid.UUID("6f1c1a4e-9b52-4f3e-9d4b-6a0b2f1f7c3d")


@dataclass(frozen=True)
class BundleOptions:
    name: str | None = None  # Kubernetes object name (default: the anchor's slug)
    namespace: str | None = None
    client_path: str | None = None  # where Firefox finds the certificate on the client
    file_name: str | None = None  # the name the instructions should use (default: suggested)
    password: str = field(default_factory=lambda: os.environ.get(PASSWORD_ENV, DEFAULT_STOREPASS))


@dataclass(frozen=True)
class BundleFile:
    data: bytes
    file_name: str
    binary: bool
    instructions: tuple[str, ...] = ()


def _pem(anchor: TrustAnchor, options: BundleOptions) -> BundleFile:
    return BundleFile(anchor.pem, f"{anchor.slug}.crt", binary=False)


def _der(anchor: TrustAnchor, options: BundleOptions) -> BundleFile:
    return BundleFile(anchor.der, f"{anchor.slug}.der", binary=True)


def build_java_truststore(anchor: TrustAnchor, password: str) -> bytes:
    """A PKCS#12 truststore (a trusted certificate entry, no key) that keytool/JSSE read."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.serialization import pkcs12

    encryption = (
        serialization.PrivateFormat.PKCS12.encryption_builder()
        .kdf_rounds(10_000)
        .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
        .hmac_hash(hashes.SHA256())
        .build(password.encode())
    )
    if not hasattr(pkcs12, "serialize_java_truststore"):  # cryptography < 45
        return _keytool_truststore(anchor, password)
    entry = pkcs12.PKCS12Certificate(anchor.certificate, anchor.slug.encode())
    return pkcs12.serialize_java_truststore([entry], encryption)


def _keytool_truststore(anchor: TrustAnchor, password: str) -> bytes:
    import tempfile
    from pathlib import Path

    from privca.trust.commands import run
    from privca.trust.java import build_import_argv, find_keytool, storepass_env

    with tempfile.TemporaryDirectory(prefix="privca-truststore-") as scratch:
        path = Path(scratch) / "truststore.p12"
        argv = build_import_argv(find_keytool(), path, anchor.slug, new=True)
        run(argv, input_bytes=anchor.pem, env=storepass_env(password))
        return path.read_bytes()


def _p12_truststore(anchor: TrustAnchor, options: BundleOptions) -> BundleFile:
    name = options.file_name or f"{anchor.slug}-truststore.p12"
    return BundleFile(
        build_java_truststore(anchor, options.password),
        name,
        binary=True,
        instructions=(
            f"java -Djavax.net.ssl.trustStore={name} -Djavax.net.ssl.trustStoreType=PKCS12 "
            "-Djavax.net.ssl.trustStorePassword=<the password: "
            f"${PASSWORD_ENV} when written, default {DEFAULT_STOREPASS}> ...",
            "this truststore holds only the root: JSSE then trusts no public CA",
        ),
    )


def build_mobileconfig(anchor: TrustAnchor) -> bytes:
    """A configuration profile with one com.apple.security.root payload (macOS, iOS)."""
    fingerprint = anchor.sha256.hex()
    label = anchor.certificate.subject.rfc4514_string()
    payload = {
        "PayloadType": "com.apple.security.root",
        "PayloadVersion": 1,
        "PayloadIdentifier": f"privca.trust.{anchor.slug}.root",
        "PayloadUUID": str(uuid.uuid5(_PROFILE_NAMESPACE, f"root:{fingerprint}")).upper(),
        "PayloadDisplayName": label,
        "PayloadCertificateFileName": f"{anchor.slug}.cer",
        "PayloadContent": anchor.der,
    }
    profile = {
        "PayloadType": "Configuration",
        "PayloadVersion": 1,
        "PayloadIdentifier": f"privca.trust.{anchor.slug}",
        "PayloadUUID": str(uuid.uuid5(_PROFILE_NAMESPACE, f"profile:{fingerprint}")).upper(),
        "PayloadDisplayName": f"Trust {label}",
        "PayloadDescription": f"Installs the root CA {label} (SHA-256 {fingerprint}).",
        "PayloadScope": "System",
        "PayloadContent": [payload],
    }
    return plistlib.dumps(profile, fmt=plistlib.FMT_XML, sort_keys=True)


def _mobileconfig(anchor: TrustAnchor, options: BundleOptions) -> BundleFile:
    return BundleFile(
        build_mobileconfig(anchor),
        f"{anchor.slug}.mobileconfig",
        binary=False,
        instructions=(
            "deploy it through MDM (Jamf, Intune, Kandji...): the root is then fully trusted",
            "installed by hand, iOS also needs Settings > General > About > "
            "Certificate Trust Settings > enable full trust",
        ),
    )


def _firefox_policy(anchor: TrustAnchor, options: BundleOptions) -> BundleFile:
    client_path = options.client_path or f"{anchor.slug}.crt"
    policy = {
        "policies": {
            "Certificates": {"ImportEnterpriseRoots": True, "Install": [client_path]},
        }
    }
    return BundleFile(
        (json.dumps(policy, indent=2, sort_keys=True) + "\n").encode(),
        "policies.json",
        binary=False,
        instructions=(
            "put policies.json in /etc/firefox/policies/ (Linux), "
            "Firefox.app/Contents/Resources/distribution/ (macOS) or "
            r"C:\Program Files\Mozilla Firefox\distribution\ (Windows)",
            f"put the root (privca trust bundle --format pem) at {client_path}; a bare file "
            "name is searched in /usr/lib/mozilla/certificates and ~/.mozilla/certificates",
            "ImportEnterpriseRoots makes Firefox also trust roots in the Windows/macOS store",
        ),
    )


def _k8s_name(value: str, what: str) -> str:
    if not _K8S_NAME.match(value):
        raise InputError(
            f"{what} '{value}' is not a valid Kubernetes name",
            "use lowercase letters, digits, '-' and '.', starting and ending alphanumeric",
        )
    return value


def _yaml_literal(text: str, indent: int) -> list[str]:
    pad = " " * indent
    return [pad + line for line in text.strip("\n").split("\n")]


def build_configmap(anchor: TrustAnchor, name: str, namespace: str | None) -> bytes:
    lines = ["apiVersion: v1", "kind: ConfigMap", "metadata:", f"  name: {name}"]
    if namespace:
        lines.append(f"  namespace: {namespace}")
    lines += [
        "  labels:",
        "    app.kubernetes.io/managed-by: privca",
        "data:",
        f"  {anchor.slug}.crt: |",
        *_yaml_literal(anchor.pem.decode("ascii"), 4),
    ]
    return ("\n".join(lines) + "\n").encode()


def _configmap(anchor: TrustAnchor, options: BundleOptions) -> BundleFile:
    name = _k8s_name(options.name or anchor.slug, "name")
    namespace = options.namespace and _k8s_name(options.namespace, "namespace")
    return BundleFile(
        build_configmap(anchor, name, namespace),
        f"{name}-configmap.yaml",
        binary=False,
        instructions=(
            "kubectl apply -f it; mount the key as a file (e.g. subPath into "
            f"/usr/local/share/ca-certificates/{anchor.slug}.crt) or point "
            "NODE_EXTRA_CA_CERTS/SSL_CERT_FILE at it",
        ),
    )


def build_trust_manager_bundle(anchor: TrustAnchor, name: str) -> bytes:
    """A cert-manager trust-manager Bundle: the public CAs plus the root, in every namespace."""
    lines = [
        "apiVersion: trust.cert-manager.io/v1alpha1",
        "kind: Bundle",
        "metadata:",
        f"  name: {name}",
        "spec:",
        "  sources:",
        "    - useDefaultCAs: true",
        "    - inLine: |",
        *_yaml_literal(anchor.pem.decode("ascii"), 8),
        "  target:",
        "    configMap:",
        "      key: ca-certificates.crt",
    ]
    return ("\n".join(lines) + "\n").encode()


def _trust_manager(anchor: TrustAnchor, options: BundleOptions) -> BundleFile:
    name = _k8s_name(options.name or anchor.slug, "name")
    return BundleFile(
        build_trust_manager_bundle(anchor, name),
        f"{name}-bundle.yaml",
        binary=False,
        instructions=(
            "kubectl apply -f it where trust-manager runs; it writes a ConfigMap "
            f"'{name}' (key ca-certificates.crt) into every namespace",
        ),
    )


def _windows(anchor: TrustAnchor, options: BundleOptions) -> BundleFile:
    name = options.file_name or f"{anchor.slug}.cer"
    return BundleFile(
        anchor.der, name, binary=True, instructions=tuple(build_gpo_instructions(name))
    )


BUILDERS: dict[str, Callable[[TrustAnchor, BundleOptions], BundleFile]] = {
    "pem": _pem,
    "der": _der,
    "p12-truststore": _p12_truststore,
    "mobileconfig": _mobileconfig,
    "firefox-policy": _firefox_policy,
    "k8s-configmap": _configmap,
    "trust-manager": _trust_manager,
    "windows": _windows,
}
FORMATS = tuple(BUILDERS)


def build_bundle(anchor: TrustAnchor, output_format: str, options: BundleOptions) -> BundleFile:
    try:
        builder = BUILDERS[output_format]
    except KeyError:
        raise InputError(
            f"unknown bundle format '{output_format}'", f"choose from: {', '.join(FORMATS)}"
        ) from None
    return builder(anchor, options)
