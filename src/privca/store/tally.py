"""Certificate counts kept up to date by the database itself (SQLite), for /metrics.

Counting a million certificates by issuer, profile and status means walking a million
index entries: about a second on SQLite, on every scrape. So on SQLite, triggers on the
certificates table keep `certificate_tally`: how many rows there are per issuer, profile,
stored status, superseded or not, and day of expiry. Every write path is covered,
whatever code makes it (issuance, revocation, imports, restore, bulk updates), because
the database does it in the same transaction; SQLite has one writer at a time, so the
few counter rows are no point of contention.

The day of expiry is what lets time pass without writes: a group that expires before
today is expired, one that expires after today is not, and only today's certificates
are counted from the table itself (an index range of one day). PostgreSQL counts from
its covering index instead (store/metrics.py): replicas writing at once would queue on
shared counter rows.

The table is not in schema.metadata: it is derived, never copied by backup or restore
(a restore's inserts fill it through the triggers), and it exists on SQLite only.
"""

from __future__ import annotations

import sqlalchemy as sa

# Microseconds in a day: not_after is an integer of microseconds on SQLite (columns.py).
DAY = 86_400_000_000

tally_metadata = sa.MetaData()

certificate_tally = sa.Table(
    "certificate_tally",
    tally_metadata,
    sa.Column("issuer_id", sa.Integer, primary_key=True),
    sa.Column("profile", sa.String(32), primary_key=True),
    sa.Column("status", sa.String(16), primary_key=True),
    sa.Column("superseded", sa.Boolean, primary_key=True),
    sa.Column("expiry_day", sa.Integer, primary_key=True),
    sa.Column("n", sa.Integer, nullable=False),
    sqlite_with_rowid=False,
)

_KEY = "issuer_id, profile, status, superseded, expiry_day"


def _key_of(row: str) -> str:
    return (
        f"{row}.issuer_id, {row}.profile, {row}.status, {row}.superseded_by IS NOT NULL, "
        f"{row}.not_after / {DAY}"
    )


def _add(row: str) -> str:
    return (
        f"INSERT INTO certificate_tally ({_KEY}, n) VALUES ({_key_of(row)}, 1) "
        f"ON CONFLICT ({_KEY}) DO UPDATE SET n = n + 1;"
    )


def _remove(row: str) -> str:
    return (
        f"UPDATE certificate_tally SET n = n - 1 WHERE issuer_id = {row}.issuer_id "
        f"AND profile = {row}.profile AND status = {row}.status "
        f"AND superseded = ({row}.superseded_by IS NOT NULL) "
        f"AND expiry_day = {row}.not_after / {DAY};"
    )


# The statements migration 0011 runs on SQLite (and the tests, to check them).
SQLITE_TRIGGERS = (
    f"CREATE TRIGGER certificate_tally_insert AFTER INSERT ON certificates BEGIN {_add('NEW')} END",
    "CREATE TRIGGER certificate_tally_delete AFTER DELETE ON certificates "
    f"BEGIN {_remove('OLD')} END",
    "CREATE TRIGGER certificate_tally_update "
    "AFTER UPDATE OF issuer_id, profile, status, superseded_by, not_after ON certificates "
    "WHEN OLD.issuer_id IS NOT NEW.issuer_id OR OLD.profile IS NOT NEW.profile "
    "OR OLD.status IS NOT NEW.status OR OLD.not_after IS NOT NEW.not_after "
    "OR (OLD.superseded_by IS NULL) IS NOT (NEW.superseded_by IS NULL) "
    f"BEGIN {_remove('OLD')} {_add('NEW')} END",
)
SQLITE_BACKFILL = (
    f"INSERT INTO certificate_tally ({_KEY}, n) "
    f"SELECT issuer_id, profile, status, superseded_by IS NOT NULL, not_after / {DAY}, "
    "count(*) FROM certificates GROUP BY 1, 2, 3, 4, 5"
)


__all__ = ["DAY", "SQLITE_BACKFILL", "SQLITE_TRIGGERS", "certificate_tally", "tally_metadata"]
