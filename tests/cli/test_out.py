"""--out to a directory that does not exist yet: created (0700 when it will hold private
keys) or refused naming the real path, never an internal temporary file; nothing written
and nothing issued when refused."""

from __future__ import annotations

import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from privca.errors import EnvironmentRefused
from privca.home import atomic_write
from tests.conftest import Cli, assert_user_error, write


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _csr(cli: Cli, tmp: Path) -> Path:
    result = cli("csr", "mail.corp.internal", "--out", str(tmp / "csr"))
    assert result.exit_code == 0, result.stderr
    return tmp / "csr" / "mail.corp.internal.csr"


# (id, argv after the global options with OUT for the missing path, the file expected in
# it, whether it holds a private key, a setup step that prepares inputs)
CASES: list[tuple[str, list[str], str, bool]] = [
    ("issue", ["issue", "db.corp.internal", "--out", "OUT"], "db.corp.internal.key", True),
    ("csr", ["csr", "db.corp.internal", "--out", "OUT"], "db.corp.internal.key", True),
    ("sign", ["sign", "CSR", "--out", "OUT"], "mail.corp.internal.crt", False),
    ("renew", ["renew", "web.corp.internal", "--out", "OUT"], "web.corp.internal.key", True),
    ("export-root", ["export", "root", "--out", "OUT/ca.crt"], "ca.crt", False),
    ("export-chain", ["export", "chain", "--out", "OUT/chain.pem"], "chain.pem", False),
    ("export-index", ["export", "openssl-index", "--out", "OUT"], "index.txt", False),
    ("crl", ["crl", "--out", "OUT/ca.crl"], "ca.crl", False),
    ("check", ["check", "--format", "prometheus", "--out", "OUT/p.prom"], "p.prom", False),
    ("trust-bundle", ["trust", "bundle", "--format", "pem", "--out", "OUT/b.pem"], "b.pem", False),
]


@pytest.fixture
def prepared(home_cli: Cli, tmp_path: Path) -> Callable[[list[str], str], list[str]]:
    issued = home_cli(
        "issue", "web.corp.internal", "--out", str(tmp_path / "first"),
        "--passphrase-file", str(home_cli.passphrase_file),
    )  # fmt: skip
    assert issued.exit_code == 0, issued.stderr
    csr = _csr(home_cli, tmp_path)

    def argv(template: list[str], out: str) -> list[str]:
        args = [a.replace("OUT", out) if "OUT" in a else a for a in template]
        args = [str(csr) if a == "CSR" else a for a in args]
        if args[0] in ("issue", "sign", "renew", "crl"):
            args += ["--passphrase-file", str(home_cli.passphrase_file)]
        return args

    return argv


@pytest.mark.parametrize(
    ("template", "produced", "holds_key"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_missing_out_directory_is_created(
    home_cli: Cli, prepared, tmp_path: Path, template: list[str], produced: str, holds_key: bool
) -> None:
    out = tmp_path / "new" / "deeper"
    result = home_cli(*prepared(template, str(out)))
    assert result.exit_code == 0, result.stdout + result.stderr
    assert (out / produced).is_file()
    if holds_key:
        assert _mode(out) == 0o700
        assert _mode(out / produced) == 0o600
    assert ".tmp" not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("template", "produced", "holds_key"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_out_under_a_file_is_refused_with_the_real_path(
    home_cli: Cli, prepared, tmp_path: Path, template: list[str], produced: str, holds_key: bool
) -> None:
    blocker = write(tmp_path / "blocker", "a file, not a directory")
    out = blocker / "sub"
    args = prepared(template, str(out))
    before = home_cli("list", "--all", "--json").stdout
    result = home_cli(*args)
    assert_user_error(result, str(blocker))
    assert ".tmp" not in result.stderr
    assert blocker.read_text() == "a file, not a directory"
    assert home_cli("list", "--all", "--json").stdout == before  # nothing issued


@pytest.mark.parametrize(
    ("template", "produced", "holds_key"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
@pytest.mark.parametrize("where", ["out", "under-out"])
def test_out_through_a_dangling_symbolic_link_is_refused_before_anything_is_issued(
    home_cli: Cli,
    prepared,
    tmp_path: Path,
    template: list[str],
    produced: str,
    holds_key: bool,
    where: str,
) -> None:
    """A link to nothing looks like a missing directory, yet cannot be made one: the
    certificate used to be recorded (valid, its key written nowhere) before the mkdir
    failed with exit 2."""
    link = tmp_path / "dangling"
    link.symlink_to(tmp_path / "nowhere")
    out = link if where == "out" else link / "sub"
    before = home_cli("list", "--all", "--json").stdout
    result = home_cli(*prepared(template, str(out)))
    assert_user_error(result, str(link))  # "a symbolic link to nothing" (or "not a directory")
    assert home_cli("list", "--all", "--json").stdout == before  # nothing issued
    assert not (tmp_path / "nowhere").exists()


@pytest.mark.parametrize("command", ["issue", "renew"])
def test_a_directory_where_a_file_goes_is_refused_even_with_force(
    home_cli: Cli, prepared, tmp_path: Path, command: str
) -> None:
    """The certificate used to be recorded and its key and certificate written, and then
    the write of the chain failed (exit 3): now nothing is done."""
    out = tmp_path / "partial"
    name = "db.corp.internal" if command == "issue" else "web.corp.internal"
    (out / f"{name}.chain.pem").mkdir(parents=True)
    template = [command, name, "--out", "OUT", "--force"]
    before = home_cli("list", "--all", "--json").stdout
    result = home_cli(*prepared(template, str(out)))
    assert_user_error(result, f"{name}.chain.pem")
    assert sorted(p.name for p in out.iterdir()) == [f"{name}.chain.pem"]
    assert home_cli("list", "--all", "--json").stdout == before


def test_a_home_whose_database_file_is_gone_is_refused_not_emptied(
    home_cli: Cli, tmp_path: Path
) -> None:
    """SQLite would make a new, empty privca.db: the CA would forget what it issued and
    revoked, and its audit log, and go on (list said nothing, doctor "No findings")."""
    database = home_cli.home / "privca.db"
    kept = tmp_path / "privca.db.kept"
    database.rename(kept)
    for argv in (["list"], ["doctor"], ["check"]):
        result = home_cli(*argv)
        assert result.exit_code == 3, (argv, result.stdout, result.stderr)
        assert "privca.db is missing" in result.stderr and "privca restore" in result.stderr
        assert "Traceback" not in result.stderr
        assert not database.exists()
    kept.rename(database)
    assert home_cli("list").exit_code == 0


def test_a_home_whose_database_file_was_overwritten_is_refused(home_cli: Cli) -> None:
    """Junk where privca.db was: the environment's fault (exit 3) with what to do, not an
    internal error (exit 70)."""
    database = home_cli.home / "privca.db"
    for extra in ("-wal", "-shm"):
        (home_cli.home / f"privca.db{extra}").unlink(missing_ok=True)
    database.write_bytes(b"not a database at all\n" * 100)
    result = home_cli("list")
    assert result.exit_code == 3, (result.stdout, result.stderr)
    assert "file is not a database" in result.stderr and "privca restore" in result.stderr
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr


def test_atomic_write_names_the_target_not_its_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "missing" / "ca.crt"
    with pytest.raises(EnvironmentRefused) as raised:
        atomic_write(target, b"x")
    assert str(target) in raised.value.message
    assert ".tmp" not in raised.value.message


def test_a_dangling_link_where_a_file_goes_needs_force(home_cli: Cli, tmp_path: Path) -> None:
    """README: anything in the way, a link included, needs --force. A link to nothing was
    replaced without it (exists() follows the link and said no)."""
    out = tmp_path / "d"
    out.mkdir()
    link = out / "x.corp.internal.crt"
    link.symlink_to(tmp_path / "nowhere")
    secret = ["--passphrase-file", str(home_cli.passphrase_file)]
    result = home_cli("issue", "x.corp.internal", "--out", str(out), *secret)
    assert_user_error(result, "already exists")
    assert link.is_symlink()
    forced = home_cli("issue", "x.corp.internal", "--out", str(out), "--force", *secret)
    assert forced.exit_code == 0, forced.stderr
    assert not link.is_symlink() and link.is_file()
