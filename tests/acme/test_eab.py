"""External account binding means what it says, judged by lego (unmodified):

- a key created with `--profile P` admits orders for profile P only;
- `--max-accounts N` (default 1) bounds the accounts one key creates;
- revoking a key revokes the accounts it created: their next request is `unauthorized`;
- `privca acme eab list` shows the accounts of each key;
- the HMAC key is printed once and is not in the database: not in a copy of privca.db
  (with its -wal), not in a PostgreSQL dump.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from privca.authority import CertificateAuthority
from tests.acme.conftest import AcmeServer
from tests.acme.test_lego import lego
from tests.conftest import Cli, require_tool
from tests.pg import PostgresCluster, find_bindir, postgres_cluster  # noqa: F401  (fixture)


def eab_create(ca: CertificateAuthority, passphrase_file: Path, *args: str) -> dict[str, str]:
    result = Cli(ca.home.root, passphrase_file)("acme", "eab", "create", *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def eab_list(ca: CertificateAuthority, passphrase_file: Path) -> list[dict]:
    result = Cli(ca.home.root, passphrase_file)("acme", "eab", "list", "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def run_lego(
    server: AcmeServer, where: Path, key: dict[str, str], name: str, *, directory: str = ""
) -> subprocess.CompletedProcess[str]:
    """lego with EAB; `directory` picks a profile's directory (/acme/<profile>/directory)."""
    target = server
    if directory:
        from dataclasses import replace

        target = replace(server, url=f"{server.base}/{directory}/directory")
    http = ["--http", "--http.port", f"127.0.0.1:{server.http_port}"]
    eab = ["--eab", "--kid", key["kid"], "--hmac", key["hmac_key"]]
    return lego(target, where, [*eab, "--domains", name, *http, "run"])


def _cert(where: Path, name: str) -> x509.Certificate:
    path = where / "lego" / "certificates" / f"{name}.crt"
    return x509.load_pem_x509_certificate(path.read_bytes())


@pytest.fixture
def eab_server(start_acme: Callable[..., AcmeServer]) -> AcmeServer:
    require_tool("lego")
    return start_acme(eab="required")


def test_a_profile_bound_key_admits_only_its_profile(
    eab_server: AcmeServer, tmp_path: Path, passphrase_file: Path
) -> None:
    key = eab_create(eab_server.ca, passphrase_file, "--profile", "server-client")
    refused = run_lego(eab_server, tmp_path / "a", key, "p1.test", directory="server")
    assert refused.returncode != 0
    assert "admits only profile 'server-client'" in refused.stdout + refused.stderr
    # The same account, through the key's own profile: issued, with clientAuth.
    allowed = run_lego(eab_server, tmp_path / "a", key, "p2.test", directory="server-client")
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    usages = _cert(tmp_path / "a", "p2.test").extensions.get_extension_for_class(
        x509.ExtendedKeyUsage
    )
    assert ExtendedKeyUsageOID.CLIENT_AUTH in usages.value
    # No profile asked for: the key's profile, not the server's default ("server").
    default = run_lego(eab_server, tmp_path / "a", key, "p3.test")
    assert default.returncode == 0, default.stdout + default.stderr
    orders = eab_server.ca.acme_repository().orders()
    assert {o.profile for o in orders if o.status == "valid"} == {"server-client"}


@pytest.mark.parametrize("limit", [1, 2])
def test_max_accounts_bounds_the_accounts_one_key_creates(
    eab_server: AcmeServer, tmp_path: Path, passphrase_file: Path, limit: int
) -> None:
    args = [] if limit == 1 else ["--max-accounts", str(limit)]
    key = eab_create(eab_server.ca, passphrase_file, *args)
    for index in range(limit):
        made = run_lego(eab_server, tmp_path / f"client{index}", key, f"m{index}.test")
        assert made.returncode == 0, made.stdout + made.stderr
    # One more client (a new account key) with the same EAB key: refused.
    extra = run_lego(eab_server, tmp_path / "extra", key, "extra.test")
    assert extra.returncode != 0
    assert f"already created its {limit} account(s)" in extra.stdout + extra.stderr
    [listed] = eab_list(eab_server.ca, passphrase_file)
    assert (listed["accounts"], listed["max_accounts"]) == (limit, limit)
    assert len(listed["account_ids"]) == limit
    assert {a["status"] for a in listed["account_ids"]} == {"valid"}


def test_revoking_a_key_revokes_its_accounts(
    eab_server: AcmeServer, tmp_path: Path, passphrase_file: Path
) -> None:
    key = eab_create(eab_server.ca, passphrase_file, "--max-accounts", "2")
    other = eab_create(eab_server.ca, passphrase_file)
    assert run_lego(eab_server, tmp_path / "a", key, "r1.test").returncode == 0
    assert run_lego(eab_server, tmp_path / "b", other, "r2.test").returncode == 0

    result = Cli(eab_server.ca.home.root, passphrase_file)("acme", "eab", "revoke", key["kid"])
    assert result.exit_code == 0 and "1 account(s) it created revoked" in result.output

    # The same lego account asks again: every request of a revoked account is refused.
    again = run_lego(eab_server, tmp_path / "a", key, "r3.test")
    assert again.returncode != 0
    assert "unauthorized" in again.stdout + again.stderr
    assert "the account is revoked" in again.stdout + again.stderr
    # The other key's account is untouched.
    assert run_lego(eab_server, tmp_path / "b", other, "r4.test").returncode == 0

    listed = {k["kid"]: k for k in eab_list(eab_server.ca, passphrase_file)}
    assert listed[key["kid"]]["revoked_at"]
    assert [a["status"] for a in listed[key["kid"]]["account_ids"]] == ["revoked"]
    assert [a["status"] for a in listed[other["kid"]]["account_ids"]] == ["valid"]


def _forms(hmac_key: str) -> list[bytes]:
    """Every way the key could sit in a file: base64url as shown, raw, plain base64, hex."""
    raw = base64.urlsafe_b64decode(hmac_key + "=" * (-len(hmac_key) % 4))
    return [hmac_key.encode(), raw, base64.b64encode(raw), base64.b64encode(raw).rstrip(b"="),
            raw.hex().encode()]  # fmt: skip


def test_a_copy_of_privca_db_does_not_reveal_an_eab_key(
    ca: CertificateAuthority, passphrase_file: Path, tmp_path: Path
) -> None:
    key = eab_create(ca, passphrase_file, "--label", "copied")
    # What a thief copies: the database and its WAL, as they are on disk right now.
    copy = tmp_path / "stolen"
    copy.mkdir()
    for path in ca.home.database_files:
        if path.exists():
            shutil.copy(path, copy / path.name)
    blob = b"".join(p.read_bytes() for p in copy.iterdir())
    assert b"kid-" in blob  # the copy does hold the EAB rows
    for form in _forms(key["hmac_key"]):
        assert form not in blob
    # ...while the CA itself still verifies bindings with it.
    store = ca.acme_repository()
    assert store.eab_secret(key["kid"]) == _forms(key["hmac_key"])[1]
    assert oct(ca.home.eab_sealing_key.stat().st_mode & 0o777) == "0o400"


@pytest.mark.postgres
def test_a_postgresql_dump_does_not_reveal_an_eab_key(
    make_ca: Callable[..., CertificateAuthority],
    postgres_cluster: PostgresCluster,  # noqa: F811
    passphrase_file: Path,
) -> None:
    bindir = find_bindir()
    assert bindir is not None
    with postgres_cluster.database() as url:
        ca = make_ca(store_url=url)
        key = eab_create(ca, passphrase_file)
        dbname = url.rsplit("/", 1)[1]
        dump = subprocess.run(
            [str(bindir / "pg_dump"), "-h", "127.0.0.1", "-p", str(postgres_cluster.port),
             "-U", "postgres", "--inserts", dbname],
            capture_output=True,
            timeout=60,
        )  # fmt: skip
        assert dump.returncode == 0, dump.stderr
        assert key["kid"].encode() in dump.stdout
        for form in _forms(key["hmac_key"]):
            assert form not in dump.stdout
        ca.close()


def test_a_plaintext_key_from_an_older_store_is_sealed_when_the_home_is_opened(
    make_ca: Callable[..., CertificateAuthority], tmp_path: Path
) -> None:
    """The migration path: a store from before 0005_custody held HMAC keys in plaintext.
    Opening the home with this version seals them and leaves no plaintext in the file."""
    import datetime as dt
    import secrets

    import sqlalchemy as sa
    from alembic import command
    from alembic.config import Config

    import privca.store.database as database
    from tests.conftest import PASSPHRASE

    ca = make_ca()
    home = ca.home.root
    ca.close()
    # Several keys, as a real store would have: freed record space is what keeps old bytes.
    legacy = {
        f"kid-legacy-{i}": base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
        for i in range(20)
    }
    engine = database.create_engine(database.sqlite_url(home / "privca.db"))
    config = Config()
    config.set_main_option("script_location", str(Path(database.__file__).parent / "migrations"))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0004")
        for kid, key in legacy.items():
            connection.execute(
                sa.text(
                    "INSERT INTO acme_eab_keys (kid, hmac_key, label, created_at, accounts) "
                    "VALUES (:kid, :k, 'legacy', :t, 0)"
                ),
                {"kid": kid, "k": key, "t": dt.datetime.now(dt.UTC)},
            )
    engine.dispose()
    assert all(key.encode() in (home / "privca.db").read_bytes() for key in legacy.values())

    with CertificateAuthority.open(home, PASSPHRASE) as reopened:
        store = reopened.acme_repository()
        for kid, key in legacy.items():
            assert store.eab_secret(kid) == _forms(key)[1]
    blob = b"".join(p.read_bytes() for p in reopened.home.database_files if p.exists())
    assert b"kid-legacy-0" in blob
    for key in legacy.values():
        for form in _forms(key):
            assert form not in blob
