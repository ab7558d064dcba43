"""A whole CA on each store: init, issue, sign, reopen, look up; PostgreSQL leaves no privca.db."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from privca.authority import CertificateAuthority
from privca.store.database import sqlite_url
from privca.x509.build import build_csr
from privca.x509.csr import inspect_csr
from privca.x509.encoding import der_certificate
from privca.x509.names import parse_names
from tests.conftest import PASSPHRASE


@pytest.fixture
def ca_store_url(backend: str, request: pytest.FixtureRequest) -> str:
    """'' (the default: SQLite in the home) or a fresh PostgreSQL database."""
    return "" if backend == "sqlite" else request.getfixturevalue("postgres_url")


def test_init_issue_and_reopen(
    make_ca: Callable[..., CertificateAuthority], ca_store_url: str, backend: str
) -> None:
    ca = make_ca(store_url=ca_store_url)
    home = ca.home.root
    assert ca.home.database.exists() == (backend == "sqlite")
    assert ca.settings.store_url == ca_store_url
    assert [a.role for a in ca.inventory.authorities()] == ["root", "issuing"]

    issued = ca.issue(["web.corp.internal", "10.0.0.8"])
    record = ca.inventory.get(issued.serial)
    assert record is not None
    assert record.status == "issued"
    assert record.der == der_certificate(issued.certificate)
    assert record.names == ("web.corp.internal", "10.0.0.8")
    ca.close()

    with CertificateAuthority.open(home, PASSPHRASE) as reopened:
        assert reopened.settings.store_url == ca_store_url
        assert reopened.lookup("web.corp.internal").serial == issued.serial
        _report, status = reopened.verify(issued.certificate, name="web.corp.internal")
        assert status == "valid"
        second = reopened.issue(["api.corp.internal"])
        assert {r.serial for r in reopened.certificates()} == {issued.serial, second.serial}
        assert reopened.certificates(status="valid", name_pattern="api")[0].serial == (
            second.serial
        )
    assert ca.home.database.exists() == (backend == "sqlite")


def test_sign_requests_records_every_certificate(
    make_ca: Callable[..., CertificateAuthority], ca_store_url: str
) -> None:
    ca = make_ca(store_url=ca_store_url)
    requests = [
        inspect_csr(
            build_csr(ec.generate_private_key(ec.SECP256R1()), parse_names([f"s{i}.corp.internal"]))
        )
        for i in range(20)
    ]
    issued = ca.sign_requests(requests)
    assert len({c.serial for c in issued}) == 20
    for item in issued:
        record = ca.inventory.get(item.serial)
        assert record is not None and record.status == "issued"
        assert record.der == der_certificate(item.certificate)
    assert ca.inventory.count() == 20
    assert ca.inventory.find(
        now=dt.datetime.now(dt.UTC), include_unsigned=True
    ) == ca.inventory.find(now=dt.datetime.now(dt.UTC))


@pytest.mark.postgres
def test_a_postgresql_ca_home_has_no_database_file_and_names_its_store(
    make_ca: Callable[..., CertificateAuthority], postgres_cluster: object, tmp_path: Path
) -> None:
    from tests.pg import PostgresCluster

    assert isinstance(postgres_cluster, PostgresCluster)
    with postgres_cluster.database() as url:
        # the short form an operator types is accepted too (psycopg 3 is implied)
        short = url.replace("postgresql+psycopg://", "postgresql://")
        ca = make_ca(home=tmp_path / "pg-home", store_url=short)
        issued = ca.issue(["db.corp.internal"])
        ca.close()
        home = tmp_path / "pg-home"
        assert not (home / "privca.db").exists()
        assert not list(home.glob("privca.db*"))
        assert short in (home / "privca.toml").read_text()
        with CertificateAuthority.open(home, PASSPHRASE) as reopened:
            assert reopened.inventory.get(issued.serial) is not None
            assert reopened.inventory.database.url == short


def test_two_cas_on_separate_stores_do_not_see_each_other(
    make_ca: Callable[..., CertificateAuthority], ca_store_url: str, tmp_path: Path
) -> None:
    first = make_ca(store_url=ca_store_url)
    second = make_ca(store_url=sqlite_url(tmp_path / "elsewhere.db"))
    issued = first.issue(["only-first.corp.internal"])
    assert second.inventory.get(issued.serial) is None
    assert second.inventory.count() == 0
