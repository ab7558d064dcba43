"""Adopting a runbook CA straight into a PostgreSQL inventory (for replicated serving)."""

from __future__ import annotations

import json

from tests.adopt.conftest import Runbook
from tests.conftest import Cli
from tests.pg import postgres_cluster, postgres_url  # noqa: F401  (fixtures)


def test_import_into_postgresql(run_cli: Cli, runbook: Runbook, postgres_url: str) -> None:  # noqa: F811
    args = runbook.import_args(
        "--new-passphrase-file", str(run_cli.passphrase_file), "--store-url", postgres_url
    )
    result = run_cli(*args)
    assert result.exit_code == 0, result.stderr
    assert not (run_cli.home / "privca.db").exists()
    listed = json.loads(run_cli("list", "--json").output)
    assert any("db.corp.internal" in doc["names"] for doc in listed)
    # A second CA may not move into the same database.
    again = run_cli(*args, home=run_cli.home.parent / "second")
    assert again.exit_code == 2 and "already holds a CA" in again.stderr
    assert not (run_cli.home.parent / "second").exists()
