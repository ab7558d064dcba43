"""Store credentials stay out of argv and files, on a real PostgreSQL that wants a password.

The test cluster (tests/pg.py) gets a role that must authenticate with scram-sha-256 (or
md5) over TCP. `--store-url` with a password is refused before anything happens; the
password comes from --store-password-file (kept in privca.toml as a path),
$PRIVCA_STORE_PASSWORD, or libpq's own $PGPASSFILE / ~/.pgpass; it never shows up in
privca.toml, the output or errors of any command, the server's log or /health. A malformed
URL is one line and exit 2, not an internal error.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import Cli, assert_user_error, tree_snapshot, write
from tests.pg import (
    PostgresCluster,
    free_port,
    postgres_cluster,  # noqa: F401  (fixture)
)

PASSWORD = "s3cret-Pg-pw-7781"


@dataclass
class PasswordDatabase:
    role: str
    database: str
    url: str  # without the password
    cluster: PostgresCluster

    def pgpass_line(self, password: str = PASSWORD) -> str:
        return f"127.0.0.1:{self.cluster.port}:{self.database}:{self.role}:{password}\n"


@pytest.fixture(params=["scram-sha-256", "md5"])
def password_db(
    request: pytest.FixtureRequest,
    postgres_cluster: PostgresCluster,  # noqa: F811
) -> Iterator[PasswordDatabase]:
    role, database = postgres_cluster.add_password_role(PASSWORD, request.param)
    yield PasswordDatabase(
        role, database, postgres_cluster.url_for(role, database), postgres_cluster
    )
    postgres_cluster.drop_database(database)


@pytest.fixture
def cli(run_cli: Cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Cli:
    """No password source but the ones a test sets: no PG* variables, an empty HOME."""
    for name in ("PGPASSWORD", "PGPASSFILE", "PRIVCA_STORE_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    home_dir = tmp_path / "user-home"
    home_dir.mkdir()
    monkeypatch.setenv("HOME", str(home_dir))
    return run_cli


def _init(cli: Cli, url: str, *extra: str):
    return cli("init", "--name", "PG CA", "--passphrase-file", str(cli.passphrase_file),
               "--store-url", url, *extra)  # fmt: skip


def _nowhere_shows(cli: Cli, *outputs: str) -> None:
    for text in outputs:
        assert PASSWORD not in text
    for path in cli.home.rglob("*") if cli.home.exists() else ():
        if path.is_file():
            assert PASSWORD.encode() not in path.read_bytes(), path


@pytest.mark.postgres
def test_a_password_in_the_url_is_refused_before_anything_happens(
    cli: Cli, password_db: PasswordDatabase
) -> None:
    with_password = password_db.url.replace("@", f":{PASSWORD}@", 1)
    result = _init(cli, with_password)
    assert_user_error(result, "carries a password")
    assert "~/.pgpass" in result.stderr and "PRIVCA_STORE_PASSWORD" in result.stderr
    assert PASSWORD not in result.stderr + result.stdout
    assert not cli.home.exists()


@pytest.mark.postgres
def test_no_password_anywhere_is_exit_3_and_nothing_is_left(
    cli: Cli, password_db: PasswordDatabase
) -> None:
    result = _init(cli, password_db.url)
    assert result.exit_code == 3, result.output
    assert "password" in result.stderr
    assert len([line for line in result.stderr.splitlines() if line.strip()]) <= 2
    assert not cli.home.exists()
    # The hint says where the password goes, not to check a URL that was right.
    assert "hint: put the password in ~/.pgpass" in result.stderr
    assert "$PRIVCA_STORE_PASSWORD" in result.stderr
    assert "check the store URL" not in result.stderr


@pytest.mark.postgres
def test_password_file_is_recorded_as_a_path_and_used_by_every_command(
    cli: Cli, password_db: PasswordDatabase, tmp_path: Path
) -> None:
    secret = write(tmp_path / "pg-password", PASSWORD + "\n", 0o600)
    result = _init(cli, password_db.url, "--store-password-file", str(secret))
    assert result.exit_code == 0, result.output
    settings = (cli.home / "privca.toml").read_text()
    assert f'password_file = "{secret}"' in settings
    assert f'url = "{password_db.url}"' in settings
    issued = cli("issue", "db.example", "--out", str(tmp_path / "o"),
                 "--passphrase-file", str(cli.passphrase_file))  # fmt: skip
    assert issued.exit_code == 0, issued.output
    listed = cli("list", "--json")
    assert listed.exit_code == 0 and "db.example" in listed.output
    _nowhere_shows(cli, result.output, issued.output, listed.output)

    # The password file is a secret file: others reading it is refused like a passphrase.
    os.chmod(secret, 0o644)
    assert_user_error(cli("list"), f"chmod 600 '{secret}'", code=3)
    os.chmod(secret, 0o600)
    if os.geteuid() == 0:  # ...and so is one another user owns (it used to be accepted)
        os.chown(secret, 65534, -1)
        assert_user_error(cli("list"), f"chown 0 '{secret}'", code=3)
        os.chown(secret, 0, -1)

    # A wrong password: exit 3, one line, the password (right or wrong) never echoed.
    secret.write_text("wrong-" + PASSWORD)
    failed = cli("list")
    assert failed.exit_code == 3, failed.output
    assert "password authentication failed" in failed.stderr
    assert "hint: put the password in ~/.pgpass" in failed.stderr
    # `list` has no --store-password-file: the hint says where the file is named instead.
    assert "[store] password_file" in failed.stderr
    assert len([line for line in failed.stderr.splitlines() if line.strip()]) <= 2
    assert PASSWORD not in failed.stderr

    # Not UTF-8: named as such, exit 2 (decoding it with replacement used to send libpq
    # another password, and the failure named nothing in the file).
    secret.write_bytes(PASSWORD.encode() + b"\xff\n")
    assert_user_error(cli("list"), "is not UTF-8 text")


@pytest.mark.postgres
def test_password_from_the_environment(
    cli: Cli, password_db: PasswordDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PRIVCA_STORE_PASSWORD", PASSWORD)
    result = _init(cli, password_db.url)
    assert result.exit_code == 0, result.output
    assert 'password_file = ""' in (cli.home / "privca.toml").read_text()
    assert cli("list").exit_code == 0
    monkeypatch.delenv("PRIVCA_STORE_PASSWORD")
    assert cli("list").exit_code == 3  # nothing else knows it
    _nowhere_shows(cli, result.output)


@pytest.mark.postgres
@pytest.mark.parametrize("where", ["PGPASSFILE", "~/.pgpass"])
def test_password_from_libpq_password_files(
    cli: Cli,
    password_db: PasswordDatabase,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    where: str,
) -> None:
    if where == "PGPASSFILE":
        passfile = write(tmp_path / "my-pgpass", password_db.pgpass_line(), 0o600)
        monkeypatch.setenv("PGPASSFILE", str(passfile))
    else:
        write(Path(os.environ["HOME"]) / ".pgpass", password_db.pgpass_line(), 0o600)
    result = _init(cli, password_db.url)
    assert result.exit_code == 0, result.output
    assert cli("list").exit_code == 0
    _nowhere_shows(cli, result.output)


@pytest.mark.postgres
def test_serve_health_and_log_never_show_the_password(
    cli: Cli, password_db: PasswordDatabase, tmp_path: Path
) -> None:
    secret = write(tmp_path / "pg-password", PASSWORD + "\n", 0o600)
    assert _init(cli, password_db.url, "--store-password-file", str(secret)).exit_code == 0
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PRIVCA_", "PG"))}
    server = subprocess.Popen(
        [sys.executable, "-m", "privca", "--home", str(cli.home), "serve", "--no-tls",
         "--listen", f"127.0.0.1:{port}", "--passphrase-file", str(cli.passphrase_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                    health = r.read().decode()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(server.communicate()[1].decode()) from None
                time.sleep(0.1)
        assert PASSWORD not in health
        # argv of the running server, as `ps` shows it
        cmdline = Path(f"/proc/{server.pid}/cmdline").read_bytes()
        assert PASSWORD.encode() not in cmdline
    finally:
        server.send_signal(signal.SIGTERM)
        out, err = server.communicate(timeout=20)
    assert PASSWORD.encode() not in out + err


MALFORMED = [
    ("non-numeric-port", "postgresql://privca@db.example:abc/privca", "invalid port"),
    ("port-too-big", "postgresql://privca@db.example:99999/privca", "outside 1-65535"),
    ("port-zero", "postgresql://privca@db.example:0/privca", "outside 1-65535"),
    ("password", "postgresql://privca:hunter2@db.example/privca", "carries a password"),
    ("empty-password", "postgresql://privca:@db.example/privca", "carries a password"),
    ("password-param", "postgresql://privca@db.example/privca?password=hunter2", "password"),
    ("other-database", "mysql://privca@db.example/privca", "neither PostgreSQL nor SQLite"),
    ("not-a-url", "db.example", "malformed"),
    ("no-database", "postgresql://privca@db.example", "names no database"),
]


@pytest.mark.parametrize(("url", "fragment"), [pytest.param(u, f, id=i) for i, u, f in MALFORMED])
def test_malformed_store_urls_are_one_line_exit_2(cli: Cli, url: str, fragment: str) -> None:
    result = _init(cli, url)
    assert_user_error(result, fragment)
    assert "hunter2" not in result.stderr
    assert not cli.home.exists()


# Every form a password can take in a store URL; each used to be echoed in the refusal
# (a '/' in it, a percent-encoded key) or reach the driver (PASSWORD=, then exit 3 with a
# "restore from a backup" hint). The secret is always "S3cr" + something.
PASSWORD_FORMS = [
    ("slash", "postgresql://u:S3cr/et@h:5432/db"),
    ("at-sign", "postgresql://u:S3cr@et@h/db"),
    ("question-mark", "postgresql://u:S3cr?et@h/db"),
    ("hash", "postgresql://u:S3cr#et@h/db"),
    ("colon-slashes", "postgresql://u:S3cr://et@h/db"),
    ("percent-encoded", "postgresql://u:S3cr%2Fet@h/db"),
    ("no-user", "postgresql://:S3cret@h/db"),
    ("param", "postgresql://u@h/db?password=S3cret"),
    ("param-upper", "postgresql://u@h/db?PASSWORD=S3cret"),
    ("param-mixed", "postgresql://u@h/db?sslmode=require&PassWord=S3cret"),
    ("param-encoded-key", "postgresql://u@h/db?pass%77ord=S3cret"),
    ("param-encoded-all", "postgresql://u@h/db?%70%61%73%73%77%6F%72%64=S3cret"),
    ("param-with-at", "postgresql://u@h/db?password=S3cr@et"),
    ("param-with-amp", "postgresql://u@h/db?password=S3cr&et=x"),
    ("sslpassword", "postgresql://u@h/db?sslpassword=S3cret"),
    ("driver", "postgresql+psycopg://u:S3cr/et@h/db"),
    ("bad-port-too", "postgresql://u:S3cr/et@h:abc/db"),
]


@pytest.mark.parametrize("url", [pytest.param(u, id=i) for i, u in PASSWORD_FORMS])
def test_no_form_of_a_password_in_the_url_is_used_or_shown(cli: Cli, url: str) -> None:
    result = _init(cli, url)
    assert result.exit_code == 2, result.output
    assert_user_error(result, "store URL")
    assert "S3cr" not in result.stderr + result.stdout
    assert "et@" not in result.stderr and "/et" not in result.stderr
    assert not cli.home.exists()


@pytest.mark.parametrize("url", [pytest.param(u, id=i) for i, u in PASSWORD_FORMS])
def test_hide_passwords_hides_every_form(url: str) -> None:
    from privca.store.address import hide_passwords

    shown = hide_passwords(url)
    assert "S3cr" not in shown and "***" in shown, shown
    assert shown.startswith(url.partition("://")[0] + "://")


def test_hide_passwords_keeps_a_url_without_one() -> None:
    from privca.store.address import hide_passwords

    for url in (
        "postgresql://privca@db.example:5432/privca?sslmode=require",
        "sqlite:////srv/ca/privca.db",
        "postgresql://h/db?passfile=/etc/privca/pgpass",
    ):
        assert hide_passwords(url) == url


def test_an_unknown_parameter_is_not_called_a_damaged_file(cli: Cli) -> None:
    """libpq refuses the option before connecting; the hint was SQLite's "restore the CA
    from a backup", which would send an operator to replace a healthy store."""
    result = _init(cli, f"postgresql://u@127.0.0.1:{free_port()}/db?sslmod=require")
    assert_user_error(result, 'invalid connection option "sslmod"', code=3)
    assert "restore" not in result.stderr and "store URL's parameters" in result.stderr
    assert not cli.home.exists()


def test_a_password_or_bad_url_in_privca_toml_is_refused_at_open(cli: Cli) -> None:
    assert cli("init", "--name", "X", "--passphrase-file", str(cli.passphrase_file)).exit_code == 0
    settings = cli.home / "privca.toml"
    text = settings.read_text()
    before = tree_snapshot(cli.home)
    for url, fragment in (
        ("postgresql://privca:hunter2@db.example/privca", "carries a password"),
        ("postgresql://privca:hun/ter2@db.example/privca", "carries a password"),
        ("postgresql://privca@db.example/privca?PASSWORD=hunter2", "carries a password"),
        ("postgresql://privca@db.example/privca?pass%77ord=hunter2", "carries a password"),
        ("postgresql://privca@db.example:abc/privca", "invalid port"),
    ):
        # "\nurl": the [store] line, not [ca] base_url (which ends the same)
        settings.write_text(text.replace('\nurl = ""', f'\nurl = "{url}"'))
        result = cli("list")
        assert_user_error(result, fragment)
        assert "privca.toml [store] url" in result.stderr
        assert "hunter2" not in result.stderr and "ter2" not in result.stderr
    settings.write_text(text)
    assert tree_snapshot(cli.home) == before
