"""CertificateAuthority: establishing, issuing with durable records, refusing bad requests."""

from __future__ import annotations

import dataclasses
import datetime as dt
import stat
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from privca._time import utcnow
from privca.authority import CertificateAuthority
from privca.errors import AlreadyExists, InputError, PolicyError, WrongPassphrase
from privca.keys.types import KeyType
from privca.store.database import sqlite_url
from privca.store.inventory import Store
from privca.x509.build import build_csr
from privca.x509.csr import inspect_csr
from privca.x509.names import parse_names
from tests.conftest import PASSPHRASE, tree_snapshot


def test_init_lays_out_the_home(ca: CertificateAuthority) -> None:
    home = ca.home
    assert stat.S_IMODE(home.private.stat().st_mode) == 0o700
    for role in ("root", "issuing"):
        key = home.key_path(role)
        assert stat.S_IMODE(key.stat().st_mode) == 0o400
        assert b"ENCRYPTED PRIVATE KEY" in key.read_bytes()
    assert home.root_cert.exists() and home.issuing_cert.exists() and home.settings.exists()
    chain = x509.load_pem_x509_certificates(home.chain.read_bytes())
    assert [c.subject for c in chain] == [ca.issuing.subject, ca.root.subject]
    assert ca.root.public_key().curve.name == "secp384r1"
    assert ca.issuing.public_key().curve.name == "secp256r1"
    basic = ca.issuing.extensions.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical and basic.value.ca and basic.value.path_length == 0
    assert ca.issuing.not_valid_after_utc <= ca.root.not_valid_after_utc


def test_single_tier_root_signs_leaves(make_ca) -> None:
    ca = make_ca(single_tier=True)
    assert not ca.home.issuing_cert.exists()
    issued = ca.issue(["db.corp.internal"])
    assert issued.certificate.issuer == ca.root.subject
    assert issued.chain == (ca.root,)


def test_init_refuses_to_overwrite(ca: CertificateAuthority) -> None:
    before = tree_snapshot(ca.home.root)
    with pytest.raises(AlreadyExists):
        CertificateAuthority.init(ca.home.root, "Other", passphrase=PASSPHRASE)
    assert tree_snapshot(ca.home.root) == before


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"root_days": 0}, "out of range"),
        ({"issuing_days": 4000, "root_days": 3650}, "exceeds the root"),
        ({"permitted": ["10.0.0.1/8"]}, "not a valid network"),
        ({"passphrase": b"short"}, "shorter than 8"),
        ({"name": ""}, "1 to 64"),
        ({"base_url": "ftp://x"}, "http"),
    ],
    ids=["zero-days", "issuing-outlives-root", "bad-cidr", "short-pass", "empty-name", "bad-url"],
)
def test_init_refuses_bad_input_and_writes_nothing(
    tmp_path: Path, kwargs: dict[str, Any], fragment: str
) -> None:
    home = tmp_path / "home"
    kwargs.setdefault("passphrase", PASSPHRASE)
    name = kwargs.pop("name", "Test CA")
    with pytest.raises(InputError) as caught:
        CertificateAuthority.init(home, name, **kwargs)
    assert fragment in caught.value.message
    assert not home.exists()


def test_issue_is_recorded_before_it_is_returned(ca: CertificateAuthority) -> None:
    issued = ca.issue(["db.corp.internal", "10.0.0.5"])
    fresh = Store(sqlite_url(ca.home.database))
    record = fresh.get(issued.serial)
    fresh.close()
    assert record is not None and record.status == "issued"
    assert record.der == issued.certificate.public_bytes(Encoding.DER)
    assert record.names == ("db.corp.internal", "10.0.0.5")


class WatchingKey(ec.EllipticCurvePrivateKey):
    """A signing key that runs a check before each signature (as an HSM wrapper would)."""

    def __init__(self, inner: ec.EllipticCurvePrivateKey, before_sign) -> None:
        self.inner = inner
        self.before_sign = before_sign

    def sign(self, data: bytes, signature_algorithm: Any) -> bytes:
        self.before_sign(data)
        return self.inner.sign(data, signature_algorithm)

    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self.inner.public_key()

    @property
    def curve(self) -> ec.EllipticCurve:
        return self.inner.curve

    @property
    def key_size(self) -> int:
        return self.inner.key_size

    def private_numbers(self) -> ec.EllipticCurvePrivateNumbers:
        return self.inner.private_numbers()

    def private_bytes(self, *args: Any) -> bytes:
        return self.inner.private_bytes(*args)

    def exchange(self, *args: Any) -> bytes:
        return self.inner.exchange(*args)

    def __copy__(self) -> WatchingKey:
        return self

    def __deepcopy__(self, memo: Any) -> WatchingKey:
        return self


def _watch_issuer(ca: CertificateAuthority, before_sign) -> None:
    issuing = ca.issuing_record()
    issuer = ca.signer(issuing)
    ca._signers[issuing.id] = dataclasses.replace(
        issuer, private_key=WatchingKey(issuer.private_key, before_sign)
    )


def test_ca_key_never_signs_without_a_committed_intent(ca: CertificateAuthority) -> None:
    """At the moment the key signs, another connection already sees the pending record."""
    observed: list[list[str]] = []

    def check(_tbs: bytes) -> None:
        other = Store(sqlite_url(ca.home.database))
        rows = other.find(now=utcnow(), include_unsigned=True)
        other.close()
        observed.append([r.status for r in rows])

    _watch_issuer(ca, check)
    ca.issue(["db.corp.internal"])
    assert observed == [["pending"]]


def test_failed_signing_leaves_a_failed_record_and_no_reuse(ca: CertificateAuthority) -> None:
    def explode(_tbs: bytes) -> None:
        raise RuntimeError("HSM went away")

    _watch_issuer(ca, explode)
    with pytest.raises(RuntimeError):
        ca.issue(["db.corp.internal"])
    rows = ca.inventory.find(now=utcnow(), include_unsigned=True)
    assert [r.status for r in rows] == ["failed"]
    assert ca.certificates() == []


def test_name_outside_constraints_refuses_whole_request_and_adds_no_row(make_ca) -> None:
    ca = make_ca(permitted=["corp.internal", "10.0.0.0/8"])
    with pytest.raises(PolicyError, match=r"db\.corp\.example"):
        ca.issue(["ok.corp.internal", "db.corp.example"])
    assert ca.inventory.count() == 0


def test_csr_with_the_ca_public_key_is_refused(ca: CertificateAuthority) -> None:
    issuing_key = ca.signer(ca.issuing_record()).private_key
    request = inspect_csr(build_csr(issuing_key, parse_names(["db.corp.internal"])))
    with pytest.raises(PolicyError, match="public key of the issuing CA"):
        ca.sign_requests([request])
    assert ca.inventory.count() == 0


def test_validity_beyond_the_issuing_ca_is_refused(make_ca) -> None:
    ca = make_ca(issuing_days=100, root_days=200)
    with pytest.raises(PolicyError, match="outlive the issuing CA"):
        ca.issue(["db.corp.internal"], days=365)
    issued = ca.issue(["db.corp.internal"])  # the default is capped silently
    assert issued.certificate.not_valid_after_utc <= ca.issuing.not_valid_after_utc


def test_wrong_passphrase_writes_no_record(ca: CertificateAuthority) -> None:
    reopened = CertificateAuthority.open(ca.home.root, b"not the passphrase")
    with pytest.raises(WrongPassphrase):
        reopened.issue(["db.corp.internal"])
    assert reopened.inventory.count() == 0
    reopened.close()


def test_passphrase_is_asked_only_when_signing(ca: CertificateAuthority) -> None:
    asked: list[int] = []

    def source() -> bytes:
        asked.append(1)
        return PASSPHRASE

    reopened = CertificateAuthority.open(ca.home.root, source)
    assert reopened.certificates() == []
    assert asked == []
    reopened.issue(["db.corp.internal"])
    reopened.issue(["db2.corp.internal"])
    assert asked == [1]
    reopened.close()


@pytest.mark.parametrize(
    ("profile", "usages"),
    [
        ("server", [ExtendedKeyUsageOID.SERVER_AUTH]),
        ("client", [ExtendedKeyUsageOID.CLIENT_AUTH]),
        ("server-client", [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
    ],
)
def test_profiles_decide_extensions(ca: CertificateAuthority, profile: str, usages) -> None:
    cert = ca.issue(["svc.corp.internal"], profile=profile).certificate
    ext = cert.extensions
    assert list(ext.get_extension_for_class(x509.ExtendedKeyUsage).value) == usages
    basic = ext.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical and not basic.value.ca
    key_usage = ext.get_extension_for_class(x509.KeyUsage)
    assert key_usage.critical and key_usage.value.digital_signature
    assert not key_usage.value.key_cert_sign
    aki = ext.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    ski = ca.issuing.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    assert aki == ski
    assert 0 < cert.serial_number < 2**127 and cert.serial_number.bit_length() == 127


def test_san_is_critical_when_subject_is_empty(ca: CertificateAuthority) -> None:
    cert = ca.issue(["10.0.0.5"]).certificate
    assert len(cert.subject) == 0
    assert cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).critical


def test_rsa_leaf_may_encipher(ca: CertificateAuthority) -> None:
    cert = ca.issue(["svc.corp.internal"], key_type=KeyType.RSA_2048).certificate
    assert cert.extensions.get_extension_for_class(x509.KeyUsage).value.key_encipherment


def test_verify_reports_each_problem(ca: CertificateAuthority, make_ca) -> None:
    issued = ca.issue(["db.corp.internal"])
    report, status = ca.verify(
        issued.certificate, name="db.corp.internal", private_key=issued.private_key
    )
    assert report.ok and status == "valid"
    report, _ = ca.verify(issued.certificate, name="other.corp.internal")
    assert report.problems == (
        "name other.corp.internal is not in the certificate (it has: db.corp.internal)",
    )
    report, _ = ca.verify(issued.certificate, private_key=KeyType.EC_P256.generate())
    assert not report.ok and "key" in report.problems[0]
    foreign = make_ca(name="Foreign CA")
    report, status = foreign.verify(issued.certificate)
    assert report.problems == ("not issued by this CA (issuer: CN=Test Internal CA Issuing CA)",)
    assert status == "unknown"
    later = utcnow() + dt.timedelta(days=800)
    report, status = ca.verify(issued.certificate, now=later)
    assert not report.ok and status == "expired"


def test_lookup_by_serial_and_name(ca: CertificateAuthority) -> None:
    issued = ca.issue(["db.corp.internal"])
    assert ca.lookup(format(issued.serial, "x")).serial == issued.serial
    assert ca.lookup("DB.corp.internal").serial == issued.serial
    with pytest.raises(InputError, match="no certificate"):
        ca.lookup("nothing.corp.internal")


def test_list_filters(ca: CertificateAuthority) -> None:
    short = ca.issue(["short.corp.internal"], days=10)
    ca.issue(["long.corp.internal"], days=400)
    assert [r.serial for r in ca.certificates(expiring_within=dt.timedelta(days=30))] == [
        short.serial
    ]
    assert len(ca.certificates(status="valid")) == 2
    assert [r.names for r in ca.certificates(name_pattern="long")] == [("long.corp.internal",)]
