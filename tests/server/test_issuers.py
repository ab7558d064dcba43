"""Each named issuer has its own CRL and OCSP service under one `privca serve`, judged by
the openssl CLI: `openssl ocsp` against each issuer's CA, `openssl crl` on
/crl/<issuer>.crl (the alias of its active issuing CA); a disabled issuer keeps both."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from privca.authority import CertificateAuthority
from privca.issuers import NewIssuer
from tests.conftest import openssl, require_tool, write
from tests.server.conftest import LiveServer, publish_root_crl

TEAMS = ("team-a", "team-b")


@pytest.fixture
def teams(make_ca: Callable[..., CertificateAuthority], tmp_path: Path) -> CertificateAuthority:
    require_tool("openssl")
    ca = make_ca(permitted=["corp.internal"])
    ca.create_issuer(NewIssuer("team-a", permitted=["a.corp.internal"]))
    ca.create_issuer(NewIssuer("team-b", permitted=["b.corp.internal"]))
    publish_root_crl(ca)
    write(tmp_path / "root.crt", ca.root.public_bytes(Encoding.PEM))
    for team in TEAMS:
        domain = team[-1] + ".corp.internal"
        good = ca.issue([f"good.{domain}"], issuer=team)
        revoked = ca.issue([f"revoked.{domain}"], issuer=team)
        ca.revoke(format(revoked.serial, "x"), "keyCompromise")
        issuing = ca.registry.issuing_of(team).certificate
        write(tmp_path / f"{team}.crt", issuing.public_bytes(Encoding.PEM))
        write(
            tmp_path / f"{team}.chain.pem",
            issuing.public_bytes(Encoding.PEM) + ca.root.public_bytes(Encoding.PEM),
        )
        write(tmp_path / f"{team}.good.crt", good.certificate_pem())
        write(tmp_path / f"{team}.revoked.crt", revoked.certificate_pem())
    return ca


def _ocsp(server: LiveServer, files: Path, team: str, leaf: str) -> str:
    done = openssl(
        "ocsp", "-issuer", str(files / f"{team}.crt"), "-cert", str(files / f"{team}.{leaf}.crt"),
        "-url", f"{server.base}/ocsp", "-CAfile", str(files / "root.crt"), "-timeout", "10",
    )  # fmt: skip
    assert "Response verify OK" in done.stderr, done.stderr
    return done.stdout


@pytest.mark.parametrize("team", TEAMS)
def test_openssl_ocsp_answers_for_each_issuer(
    teams: CertificateAuthority, live_server: Callable[..., LiveServer], tmp_path: Path, team: str
) -> None:
    server = live_server(teams)
    assert ": good" in _ocsp(server, tmp_path, team, "good")
    revoked = _ocsp(server, tmp_path, team, "revoked")
    assert ": revoked" in revoked and "Reason: keyCompromise" in revoked


@pytest.mark.parametrize("team", TEAMS)
def test_each_issuers_crl_is_served_under_its_name(
    teams: CertificateAuthority, live_server: Callable[..., LiveServer], tmp_path: Path, team: str
) -> None:
    server = live_server(teams)
    reply = server.get(f"/crl/{team}.crl")
    assert reply.status == 200
    crl = x509.load_der_x509_crl(reply.body)
    assert crl.issuer == teams.registry.issuing_of(team).certificate.subject
    path = write(tmp_path / f"{team}.crl", reply.body)
    done = openssl(
        "crl", "-in", str(path), "-inform", "DER", "-CAfile", str(tmp_path / f"{team}.chain.pem"),
        "-noout",
    )  # fmt: skip
    assert "verify OK" in done.stderr + done.stdout, done.stderr
    # Its own revoked leaf is listed, the other team's is not; the path check agrees.
    own = x509.load_pem_x509_certificate((tmp_path / f"{team}.revoked.crt").read_bytes())
    other_team = next(t for t in TEAMS if t != team)
    other = x509.load_pem_x509_certificate((tmp_path / f"{other_team}.revoked.crt").read_bytes())
    assert crl.get_revoked_certificate_by_serial_number(own.serial_number) is not None
    assert crl.get_revoked_certificate_by_serial_number(other.serial_number) is None
    pem_crl = write(tmp_path / f"{team}.crl.pem", server.get(f"/crl/{team}.pem").body)
    for leaf, ok in (("good", True), ("revoked", False)):
        verdict = openssl(
            "verify", "-x509_strict", "-crl_check", "-CAfile", str(tmp_path / f"{team}.chain.pem"),
            "-CRLfile", str(pem_crl), str(tmp_path / f"{team}.{leaf}.crt"),
        )  # fmt: skip
        assert (verdict.returncode == 0) is ok, verdict.stdout + verdict.stderr
    assert server.get(f"/ca/{team}.crt").body == (tmp_path / f"{team}.crt").read_bytes()


def test_a_disabled_issuer_keeps_its_ocsp_and_crl(
    teams: CertificateAuthority, live_server: Callable[..., LiveServer], tmp_path: Path
) -> None:
    teams.disable_issuer("team-a")
    server = live_server(teams)
    assert ": good" in _ocsp(server, tmp_path, "team-a", "good")
    assert server.get("/crl/team-a.crl").status == 200


def test_an_unknown_issuer_has_no_crl(
    teams: CertificateAuthority, live_server: Callable[..., LiveServer]
) -> None:
    server = live_server(teams)
    assert server.get("/crl/team-z.crl").status == 404


def test_metrics_label_each_series_with_its_issuer(
    teams: CertificateAuthority, live_server: Callable[..., LiveServer]
) -> None:
    text = live_server(teams).get("/metrics").body.decode()
    for team in TEAMS:
        serial = format(teams.registry.issuing_of(team).serial, "x")
        assert f'issuer_serial="{serial}",issuer_name="{team}"' in text
    assert 'issuer_name="team-a"} ' in text  # the per-certificate and total series too
