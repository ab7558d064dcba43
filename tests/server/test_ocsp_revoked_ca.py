"""OCSP for the certificates of a revoked issuing CA: a client that checks only the leaf
(nginx or Caddy stapling, `openssl ocsp`) is told "revoked", dated at the CA's revocation
(cACompromise when the CA's key may be in other hands), unless the leaf was revoked
first; and an answer cached as "good" before `privca issuer revoke` is not served after."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp

from privca.authority import CertificateAuthority
from privca.publication import crl_file_of
from privca.registry import CaCertificate
from privca.server.credentials import ServeCredentials, read_credential
from privca.server.settings import ServerSettings
from privca.store.records import CertificateRecord, Revocation
from tests.conftest import PASSPHRASE, openssl, require_tool, write
from tests.server.conftest import ServedCA, free_port
from tests.server.test_app import ocsp_request
from tests.server.test_interop import pkilint
from tests.server.test_serve_process import ServeProcess

NOW = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)


def _leaf(revoked_at: dt.datetime | None = None, reason: str | None = None) -> CertificateRecord:
    return CertificateRecord(
        serial=1,
        issuer_id=2,
        status="issued" if revoked_at is None else "revoked",
        profile="server",
        names=("a.example",),
        subject="CN=a.example",
        not_before=NOW - dt.timedelta(days=30),
        not_after=NOW + dt.timedelta(days=30),
        public_key_sha256="00" * 32,
        der=None,
        created_at=NOW - dt.timedelta(days=30),
        revoked_at=revoked_at,
        revocation_reason=reason,
    )


@pytest.mark.parametrize(
    ("ca_reason", "leaf_reason"),
    [
        ("caCompromise", "caCompromise"),
        ("keyCompromise", "caCompromise"),
        ("superseded", "superseded"),
        ("cessationOfOperation", "cessationOfOperation"),
        ("affiliationChanged", "affiliationChanged"),
        ("privilegeWithdrawn", "privilegeWithdrawn"),
    ],
)
def test_a_leaf_under_a_revoked_ca_is_revoked_with_the_ca(ca_reason: str, leaf_reason: str) -> None:
    ca_revoked = NOW - dt.timedelta(days=1)
    under = _leaf().revocation_under(Revocation(ca_revoked, ca_reason), NOW)
    assert under == Revocation(ca_revoked, leaf_reason)


def test_which_revocation_a_leaf_under_a_revoked_ca_keeps() -> None:
    ca = Revocation(NOW - dt.timedelta(days=2), "caCompromise")
    first, then = NOW - dt.timedelta(days=3), NOW - dt.timedelta(days=1)
    earlier = _leaf(first, "keyCompromise")
    later = _leaf(then, "cessationOfOperation")
    assert earlier.revocation_under(ca, NOW) == Revocation(first, "keyCompromise")
    assert later.revocation_under(ca, NOW) == Revocation(ca.revoked_at, "caCompromise")
    assert later.revocation_under(None, NOW) == Revocation(then, "cessationOfOperation")
    assert _leaf().revocation_under(None, NOW) is None


def _retired_issuing(ca: CertificateAuthority) -> CaCertificate:
    """The CA that signed the fixture's leaves, no longer the default issuer's current one
    (which `issuer revoke` refuses)."""
    old = ca.registry.select(format(ca.issuing.serial_number, "x"))
    assert old is not None
    ca.rotate_issuing()
    return old


def _single(body: bytes) -> ocsp.OCSPSingleResponse:
    response = ocsp.load_der_ocsp_response(body)
    assert response.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
    return next(response.responses)


def test_a_good_answer_cached_before_the_ca_revocation_is_not_served_after(
    served_ca: ServedCA, live_server
) -> None:
    """The revocation made through another CertificateAuthority on the same home (as a
    second process would), with no poll of the store in between (a poll an hour): the
    next request must see it, as it sees a leaf's revocation."""
    ca = served_ca.ca
    old = _retired_issuing(ca)
    server = live_server(ca, ServerSettings(watch_interval=3600))
    good = ocsp_request(served_ca.good.certificate, old.certificate)
    revoked = ocsp_request(served_ca.revoked.certificate, old.certificate)
    for _ in range(2):  # the second is a cache hit
        assert _single(server.post_ocsp(good).body).certificate_status == ocsp.OCSPCertStatus.GOOD
    signer = ocsp.load_der_ocsp_response(server.post_ocsp(good).body).certificates
    assert len(signer) == 1  # a delegated responder certificate
    own = _single(server.post_ocsp(revoked).body)
    assert own.revocation_reason == x509.ReasonFlags.key_compromise

    with CertificateAuthority.open(ca.home.root, PASSPHRASE) as operator:
        entry = operator.registry.by_id(old.id)
        assert entry is not None
        done = operator.revoke_issuing_ca(entry, "keyCompromise")
    assert done.revoked.revoked_at is not None

    reply = ocsp.load_der_ocsp_response(server.post_ocsp(good).body)
    after = _single(server.post_ocsp(good).body)
    # Still signed by the responder certificate made before the revocation.
    assert reply.certificates == signer
    assert after.certificate_status == ocsp.OCSPCertStatus.REVOKED
    assert after.revocation_reason == x509.ReasonFlags.ca_compromise
    assert after.revocation_time_utc == done.revoked.revoked_at.replace(microsecond=0)
    # Revoked before its CA: its own date and reason stand.
    kept = _single(server.post_ocsp(revoked).body)
    assert kept.revocation_reason == x509.ReasonFlags.key_compromise
    assert kept.revocation_time_utc == own.revocation_time_utc


@pytest.fixture
def processes() -> Iterator[list[ServeProcess]]:
    started: list[ServeProcess] = []
    yield started
    for process in started:
        if process.process.poll() is None:
            process.terminate()


def test_a_revoked_ca_signs_its_answers_itself_and_no_new_certificate(
    served_ca: ServedCA, live_server, tmp_path: Path
) -> None:
    """A server started after the revocation: the revoked CA's answers are signed with its
    own key (which clients accept, as they accept no other but a responder it certified),
    and no responder certificate is made under it. The current CA's are delegated."""
    ca = served_ca.ca
    old = _retired_issuing(ca)
    revocation = ca.revoke_issuing_ca(old, "caCompromise").revoked
    server = live_server(ca)
    body = server.post_ocsp(ocsp_request(served_ca.good.certificate, old.certificate)).body
    reply = ocsp.load_der_ocsp_response(body)
    single = _single(body)
    assert single.certificate_status == ocsp.OCSPCertStatus.REVOKED
    assert single.revocation_reason == x509.ReasonFlags.ca_compromise
    assert pkilint("lint_ocsp_response", str(write(tmp_path / "revoked.ocsp", body))) == []
    assert single.revocation_time_utc == revocation.revoked_at
    assert reply.certificates == []
    key = old.certificate.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    assert reply.signature_hash_algorithm is not None
    key.verify(reply.signature, reply.tbs_response_bytes, ec.ECDSA(reply.signature_hash_algorithm))
    assert not ServeCredentials(ca).responder_path(old).exists()
    current = ca.issue(["current.example"])
    fresh = ocsp.load_der_ocsp_response(
        server.post_ocsp(ocsp_request(current.certificate, ca.issuing)).body
    )
    assert len(fresh.certificates) == 1
    assert _single(fresh.public_bytes(Encoding.DER)).certificate_status == (
        ocsp.OCSPCertStatus.GOOD
    )


def _openssl_ocsp(served: ServedCA, server: ServeProcess, leaf: str) -> str:
    result = openssl(
        "ocsp",
        "-issuer",
        served.path("issuing.crt"),
        "-cert",
        served.path(leaf),
        "-url",
        f"{server.base}/ocsp",
        "-CAfile",
        served.path("root.crt"),
    )
    assert result.returncode == 0, result.stderr
    assert "Response verify OK" in result.stderr, result.stderr
    return str(result.stdout)


def _openssl_time(moment: dt.datetime) -> str:
    """A time as `openssl ocsp` prints it (ASN1_TIME_print: "Jun  1 12:00:00 2026 GMT")."""
    return f"{moment:%b} {moment.day:2d} {moment:%H:%M:%S %Y} GMT"


def test_openssl_against_privca_serve_before_and_after_issuer_revoke(
    served_ca: ServedCA, passphrase_file: Path, tmp_path: Path, processes
) -> None:
    """`privca serve` and `privca issuer revoke` as operators run them, `openssl ocsp` as
    the client: the answer cached as good turns revoked without a restart."""
    require_tool("openssl")
    require_tool("curl")
    ca = served_ca.ca
    old = _retired_issuing(ca)
    server = ServeProcess(served_ca, passphrase_file, tmp_path / "serve")
    processes.append(server)
    before = _openssl_ocsp(served_ca, server, "good.crt")
    assert before.splitlines()[0].endswith(": good"), before
    own = _openssl_ocsp(served_ca, server, "revoked.crt")
    assert "Reason: keyCompromise" in own
    # Asked again: the same signed answer, from the cache.
    assert _openssl_ocsp(served_ca, server, "good.crt") == before

    done = subprocess.run(
        [
            sys.executable, "-m", "privca", "--home", str(ca.home.root), "issuer", "revoke",
            format(old.serial, "x"), "--reason", "caCompromise",
            "--passphrase-file", str(passphrase_file),
        ],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    ca.refresh()
    revoked = ca.registry.by_id(old.id)
    assert revoked is not None and revoked.revoked_at is not None

    after = _openssl_ocsp(served_ca, server, "good.crt")
    assert after.splitlines()[0].endswith(": revoked"), after
    assert "Reason: cACompromise" in after
    assert f"Revocation Time: {_openssl_time(revoked.revoked_at)}" in after
    # The leaf revoked before its CA keeps its own time and reason.
    assert _revocation_lines(_openssl_ocsp(served_ca, server, "revoked.crt")) == (
        _revocation_lines(own)
    )
    # Restarted, serve signs the revoked CA's answers with its key: openssl accepts them.
    assert server.terminate()[0] == 0
    again = ServeProcess(served_ca, passphrase_file, tmp_path / "serve-again")
    processes.append(again)
    assert _revocation_lines(_openssl_ocsp(served_ca, again, "good.crt")) == (
        _revocation_lines(after)
    )


def _revocation_lines(text: str) -> list[str]:
    """openssl's answer without its This/Next Update lines (re-signed answers move them)."""
    return [line for line in text.splitlines() if "Update" not in line]


def _ocsp_reply(served: ServedCA, server: ServeProcess, tmp: Path) -> tuple[str, bytes]:
    """`openssl ocsp` about the good leaf of the revoked CA: its text and the response."""
    respout = tmp / "response.der"
    result = openssl(
        "ocsp",
        "-issuer",
        served.path("issuing.crt"),
        "-cert",
        served.path("good.crt"),
        "-url",
        f"{server.base}/ocsp",
        "-CAfile",
        served.path("root.crt"),
        "-respout",
        str(respout),
    )
    return result.stdout + result.stderr, respout.read_bytes() if respout.exists() else b""


def _serve(served: ServedCA, passphrase_file: Path, tmp: Path) -> subprocess.CompletedProcess:
    """`privca serve` expected to stop by itself (a refusal at start)."""
    return subprocess.run(
        [
            sys.executable, "-m", "privca", "--home", str(served.ca.home.root), "serve",
            "--listen", f"127.0.0.1:{free_port()}", "--no-tls",
            "--passphrase-file", str(passphrase_file),
        ],
        capture_output=True, text=True, timeout=60, cwd=tmp,
    )  # fmt: skip


def test_serve_answers_for_a_revoked_ca_whose_key_was_destroyed(
    served_ca: ServedCA, passphrase_file: Path, tmp_path: Path, processes
) -> None:
    """After `privca issuer revoke` the operator destroys the CA's key file: serve still
    starts. The responder certificate the CA certified before its revocation (a key of its
    own) signs its "revoked" answers, which openssl accepts; once that one is gone, nobody
    can sign for the CA and its certificates are answered unauthorized (RFC 6960 2.3).
    The CA's last CRL is still served as it was signed; the current CA is unaffected."""
    require_tool("openssl")
    require_tool("curl")
    ca = served_ca.ca
    old = _retired_issuing(ca)
    last_crl = ca.crl(old, days=7).public_bytes(Encoding.DER)
    write(crl_file_of(ca.home, old.serial), last_crl)
    first = ServeProcess(served_ca, passphrase_file, tmp_path / "serve")
    processes.append(first)
    assert "good" in _ocsp_reply(served_ca, first, tmp_path)[0]
    assert first.terminate()[0] == 0
    kept = read_credential(ServeCredentials(ca).responder_path(old))
    assert kept is not None  # certified by the CA before its revocation

    done = subprocess.run(
        [
            sys.executable, "-m", "privca", "--home", str(ca.home.root), "issuer", "revoke",
            format(old.serial, "x"), "--reason", "keyCompromise",
            "--passphrase-file", str(passphrase_file),
        ],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    key = ca.key_file(old)
    assert key is not None
    key.unlink()

    kept_signs = ServeProcess(served_ca, passphrase_file, tmp_path / "kept")
    processes.append(kept_signs)
    text, der = _ocsp_reply(served_ca, kept_signs, tmp_path)
    assert "Response verify OK" in text and ": revoked" in text, text
    assert "Reason: cACompromise" in text, text
    assert [c.serial_number for c in ocsp.load_der_ocsp_response(der).certificates] == [kept.serial]
    crl = kept_signs.curl(f"/crl/{old.serial:x}.crl")
    assert crl.returncode == 0 and crl.stdout == last_crl
    code, log = kept_signs.terminate()
    assert code == 0
    assert f"({old.serial:x}) was revoked and its key destroyed" in log, log
    assert f"responder certificate {kept.serial:x}" in log, log
    assert str(key) not in log and key.name not in log

    kept.path.unlink()  # or expired: nothing can certify a successor
    unsigned = ServeProcess(served_ca, passphrase_file, tmp_path / "unsigned")
    processes.append(unsigned)
    text, _ = _ocsp_reply(served_ca, unsigned, tmp_path)
    assert "Responder Error: unauthorized (6)" in text, text
    assert not kept.path.exists()  # no responder certificate issued under a revoked CA
    current = ca.issue(["current.example"])
    write(tmp_path / "current.crt", current.certificate_pem())
    write(tmp_path / "current-ca.crt", ca.issuing.public_bytes(Encoding.PEM))
    result = openssl(
        "ocsp", "-issuer", str(tmp_path / "current-ca.crt"), "-cert",
        str(tmp_path / "current.crt"), "-url", f"{unsigned.base}/ocsp",
        "-CAfile", served_ca.path("root.crt"),
    )  # fmt: skip
    assert "Response verify OK" in result.stderr and ": good" in result.stdout, result
    code, log = unsigned.terminate()
    assert code == 0
    assert log.count("was revoked and its key destroyed") == 1, log
    assert "answered unauthorized" in log and str(key) not in log


def test_serve_still_refuses_a_missing_key_of_a_ca_not_revoked(
    served_ca: ServedCA, passphrase_file: Path, tmp_path: Path
) -> None:
    """The key of a CA whose certificates are still trusted has not been destroyed on
    purpose: its loss stops serve at start, as before."""
    ca = served_ca.ca
    old = _retired_issuing(ca)
    key = ca.key_file(old)
    assert key is not None
    key.unlink()
    refused = _serve(served_ca, passphrase_file, tmp_path)
    assert refused.returncode == 3, refused.stderr
    assert "does not exist" in refused.stderr and "Traceback" not in refused.stderr
