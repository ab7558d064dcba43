"""A store from before the audit log (0007, with its `events` table) is migrated: its
events become the first entries, in order, issue events carry the fingerprint of the DER
the store holds, and `audit verify` finds the migrated store intact."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from cryptography.hazmat.primitives.serialization import Encoding

import privca.store.database as database_module
from privca.audit.verify import verify_audit
from privca.authority import CertificateAuthority
from tests.conftest import PASSPHRASE


def _downgrade_to_0007(db: Path) -> None:
    config = Config()
    migrations = Path(database_module.__file__).parent / "migrations"
    config.set_main_option("script_location", str(migrations))
    engine = sa.create_engine(f"sqlite:///{db}")
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0007_names_and_tidy")
    engine.dispose()


def test_an_older_store_keeps_its_history(
    make_ca: Callable[..., CertificateAuthority],
) -> None:
    ca = make_ca()
    one = ca.issue(["one.corp.internal"])
    two = ca.issue(["two.corp.internal"])
    ca.revoke(format(two.serial, "x"), "superseded")
    home = ca.home.root
    ca.close()
    db = home / "privca.db"
    _downgrade_to_0007(db)
    with sqlite3.connect(db) as connection:  # what privca before the log wrote
        rows = [
            ("2026-01-01 00:00:00.000000", "issued", format(one.serial, "x"), None),
            ("2026-01-01 00:00:01.000000", "issued", format(two.serial, "x"), None),
            ("2026-01-01 00:00:02.000000", "revoked", format(two.serial, "x"), "superseded"),
        ]
        connection.executemany(
            "INSERT INTO events (at, action, serial, detail) VALUES (?, ?, ?, ?)", rows
        )
    with CertificateAuthority.open(home, PASSPHRASE) as reopened:
        with reopened.inventory.audit_snapshot() as log:
            entries = list(log.entries())
        migrated = [e for e in entries if e.actor == "migration"]
        assert [e.action for e in migrated] == [
            "issued",
            "issued",
            "revoked",
            "audit-log-started",
        ]
        der = one.certificate.public_bytes(Encoding.DER)
        assert migrated[0].details["fingerprint"] == hashlib.sha256(der).hexdigest()
        verdict = verify_audit(reopened)
        assert verdict.intact, verdict.problem
