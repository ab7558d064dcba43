"""Every bundle format parses with the consumer's own parser and holds the same root."""

from __future__ import annotations

import json
import plistlib
import subprocess
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs12

from privca.errors import InputError
from privca.trust import TrustAnchor, read_anchor
from privca.trust.bundle import FORMATS, BundleOptions, build_bundle
from tests.trust.support import TestCA, require_tool


@pytest.fixture
def anchor(root_ca: TestCA) -> TrustAnchor:
    return read_anchor(root_ca.path)


def test_pem_and_der(anchor: TrustAnchor) -> None:
    pem = build_bundle(anchor, "pem", BundleOptions())
    der = build_bundle(anchor, "der", BundleOptions())
    assert x509.load_pem_x509_certificate(pem.data) == anchor.certificate
    assert x509.load_der_x509_certificate(der.data) == anchor.certificate
    assert der.binary and not pem.binary


def test_p12_truststore_loads_in_cryptography_and_keytool(
    anchor: TrustAnchor, tmp_path: Path
) -> None:
    produced = build_bundle(anchor, "p12-truststore", BundleOptions(password="s3cret"))
    loaded = pkcs12.load_pkcs12(produced.data, b"s3cret")
    assert loaded.key is None
    [entry] = loaded.additional_certs
    assert entry.certificate == anchor.certificate
    assert entry.friendly_name == anchor.slug.encode()
    require_tool("keytool")
    path = tmp_path / produced.file_name
    path.write_bytes(produced.data)
    listing = subprocess.run(
        [
            "keytool",
            "-list",
            "-keystore",
            str(path),
            "-storetype",
            "PKCS12",
            "-storepass",
            "s3cret",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert f"{anchor.slug}, " in listing and "trustedCertEntry" in listing


def test_mobileconfig_has_a_root_payload_and_is_reproducible(anchor: TrustAnchor) -> None:
    produced = build_bundle(anchor, "mobileconfig", BundleOptions())
    profile = plistlib.loads(produced.data)
    assert profile["PayloadType"] == "Configuration"
    [payload] = profile["PayloadContent"]
    assert payload["PayloadType"] == "com.apple.security.root"
    assert x509.load_der_x509_certificate(payload["PayloadContent"]) == anchor.certificate
    assert payload["PayloadUUID"] != profile["PayloadUUID"]
    assert build_bundle(anchor, "mobileconfig", BundleOptions()).data == produced.data


def test_firefox_policy(anchor: TrustAnchor) -> None:
    produced = build_bundle(
        anchor, "firefox-policy", BundleOptions(client_path="/etc/firefox/root.crt")
    )
    certificates = json.loads(produced.data)["policies"]["Certificates"]
    assert certificates == {"ImportEnterpriseRoots": True, "Install": ["/etc/firefox/root.crt"]}
    assert produced.file_name == "policies.json"


def test_k8s_configmap_literal_block_loads_back_to_the_root(anchor: TrustAnchor) -> None:
    produced = build_bundle(anchor, "k8s-configmap", BundleOptions(namespace="kube-system"))
    document = yaml.safe_load(produced.data)
    assert document["kind"] == "ConfigMap"
    assert document["metadata"] == {
        "name": anchor.slug,
        "namespace": "kube-system",
        "labels": {"app.kubernetes.io/managed-by": "privca"},
    }
    pem = document["data"][f"{anchor.slug}.crt"]
    assert x509.load_pem_x509_certificate(pem.encode()) == anchor.certificate


def test_trust_manager_bundle_adds_the_root_to_the_default_cas(anchor: TrustAnchor) -> None:
    document = yaml.safe_load(build_bundle(anchor, "trust-manager", BundleOptions()).data)
    assert document["kind"] == "Bundle"
    defaults, inline = document["spec"]["sources"]
    assert defaults == {"useDefaultCAs": True}
    assert x509.load_pem_x509_certificate(inline["inLine"].encode()) == anchor.certificate


def test_windows_is_a_der_cer_with_the_commands(anchor: TrustAnchor) -> None:
    produced = build_bundle(anchor, "windows", BundleOptions())
    assert produced.file_name.endswith(".cer")
    assert x509.load_der_x509_certificate(produced.data) == anchor.certificate
    assert any("certutil -addstore -f Root" in line for line in produced.instructions)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (BundleOptions(name="Bad_Name"), "not a valid Kubernetes name"),
        (BundleOptions(namespace="x\n  evil: 1"), "not a valid Kubernetes name"),
    ],
    ids=["name", "namespace-injection"],
)
def test_kubernetes_names_are_checked(
    anchor: TrustAnchor, options: BundleOptions, message: str
) -> None:
    with pytest.raises(InputError, match=message):
        build_bundle(anchor, "k8s-configmap", options)


def test_formats_match_the_cli_choices() -> None:
    from privca.cli.trust import bundle_command

    [choice] = [p for p in bundle_command.params if p.name == "output_format"]
    assert tuple(choice.type.choices) == FORMATS  # type: ignore[attr-defined]
