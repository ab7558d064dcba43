"""A CA restored from an older backup publishes CRLs numbered above every CRL the lost CA
published after that backup (read back with `openssl crl -text`)."""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from tests.conftest import Cli, openssl


def _published_number(home: Path, run_cli: Cli) -> int:
    """Run `privca crl` and read the CRLNumber of the issuing CA's CRL with openssl."""
    result = run_cli("crl", "--passphrase-file", str(run_cli.passphrase_file), home=home)
    assert result.exit_code == 0, result.stderr
    crl_file = home / "crl" / "current.crl"
    text = openssl("crl", "-inform", "DER", "-in", str(crl_file), "-noout", "-text")
    assert text.returncode == 0, text.stderr
    match = re.search(r"X509v3 CRL Number:\s*\n\s*(\d+)", text.stdout)
    assert match, text.stdout
    return int(match.group(1))


def test_crl_numbers_continue_above_the_lost_cas(
    run_cli: Cli, home: Path, backup: Callable[..., Path], tmp_path: Path
) -> None:
    archive = backup()
    # After the backup, the CA goes on publishing (and revoking) before it is lost.
    published = [_published_number(home, run_cli) for _ in range(3)]
    assert published == sorted(set(published))
    shutil.rmtree(home)  # the disk dies
    time.sleep(1.1)  # and a restore takes a while (the floor's resolution is one second)

    restored = tmp_path / "restored"
    result = run_cli("restore", str(archive), "--home", str(restored))
    assert result.exit_code == 0, result.stderr
    after_restore = _published_number(restored, run_cli)
    assert after_restore > max(published)
    # And it keeps growing from there.
    assert _published_number(restored, run_cli) > after_restore


def test_a_counter_alone_would_have_gone_back(
    run_cli: Cli, home: Path, backup: Callable[..., Path], tmp_path: Path
) -> None:
    """The case the time floor exists for: the restored store's counter is older than the
    numbers the lost CA used, so counter + 1 alone would repeat one of them."""
    import sqlite3

    archive = backup()
    with sqlite3.connect(home / "privca.db") as connection:
        before = dict(connection.execute("SELECT issuer_id, number FROM crl_state"))
    published = [_published_number(home, run_cli) for _ in range(2)]
    # The floor has a resolution of one second (store/authorities.py): a real restore
    # comes seconds after the loss at the very least.
    time.sleep(1.1)
    restored = tmp_path / "restored"
    assert run_cli("restore", str(archive), "--home", str(restored)).exit_code == 0
    with sqlite3.connect(restored / "privca.db") as connection:
        counter = dict(connection.execute("SELECT issuer_id, number FROM crl_state"))
    assert counter == before
    issuing = max(counter)  # the issuing CA's id is the later one
    assert counter[issuing] + 1 <= max(published)  # what a pure counter would publish next
    assert _published_number(restored, run_cli) > max(published)


def test_the_crl_command_restore_suggests_publishes_the_restored_cas_crl(
    run_cli: Cli, home: Path, backup: Callable[..., Path], tmp_path: Path
) -> None:
    """docs/backup.md restores with $PRIVCA_HOME still naming the old home: the command the
    restore prints, typed as shown, must publish the restored CA's CRL, not the old one's."""
    import shlex

    from click.testing import CliRunner

    from privca.cli.main import cli

    archive = backup()
    restored = tmp_path / "restored"
    result = run_cli("restore", str(archive), "--home", str(restored))
    assert result.exit_code == 0, result.stderr
    said = " ".join(result.stderr.split())
    match = re.search(r"publish a CRL now: (privca [^(]*?) \(", said)
    assert match, result.stderr
    # The revoke and scan it asks for name the restored home too.
    assert f"({match.group(1).removesuffix(' crl')} revoke SERIAL)" in said, said
    assert f"`{match.group(1).removesuffix(' crl')} scan HOST:PORT`" in said, said
    words = shlex.split(match.group(1))
    old_crl = (home / "crl" / "current.crl").read_bytes()
    before = (restored / "crl" / "current.crl").read_bytes()
    typed = CliRunner().invoke(
        cli,
        words[1:],
        env={
            "PRIVCA_HOME": str(home),
            "PRIVCA_PASSPHRASE": run_cli.passphrase_file.read_text().strip(),
        },
        catch_exceptions=False,
    )
    assert typed.exit_code == 0, typed.stderr
    assert (home / "crl" / "current.crl").read_bytes() == old_crl
    assert (restored / "crl" / "current.crl").read_bytes() != before
