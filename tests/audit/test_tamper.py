"""Tampering with the store behind privca's back: `audit verify` names what was changed.

Each case edits a copy of a real home's privca.db with the real `sqlite3` tool, then runs
`privca audit verify`: exit 1 and the entry (or certificate) named; the untouched home
passes. A chain rewritten with correct hashes passes on its own, and is caught by a
checkpoint file kept from before.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import pytest

from privca.store.auditlog import entry_hash
from privca.store.columns import unpack_detail
from tests.audit.conftest import copy_home, query, sqlite3_cli
from tests.conftest import Cli


def seq_of(database: Path, action: str, nth: int = 0) -> int:
    rows = query(database, f"SELECT seq FROM audit_log WHERE action = '{action}' ORDER BY seq")
    return int(rows[nth][0])


def serial_of(database: Path, action: str, nth: int = 0) -> str:
    """The hex serial of an entry (stored as its bytes since the compact store)."""
    rows = query(database, f"SELECT serial FROM audit_log WHERE action = '{action}' ORDER BY seq")
    stored = rows[nth][0]
    assert isinstance(stored, bytes), stored
    return stored.hex().lstrip("0") or "0"


def stored_serial(database: Path, action: str, nth: int = 0) -> str:
    """The serial as the certificates tables hold it: bytes, an odd digit count padded."""
    digits = serial_of(database, action, nth)
    return f"X'{digits.zfill(len(digits) + len(digits) % 2)}'"


@dataclass(frozen=True)
class Tampering:
    id: str
    statements: object  # (database) -> list of SQL statements
    expected: object  # (database before) -> fragment of the message


CASES = [
    Tampering(
        "update-entry-detail",
        lambda db: [
            "UPDATE audit_log SET detail = replace(detail, 'unspecified', 'superseded') "
            f"WHERE seq = {seq_of(db, 'revoked')}"
        ],
        lambda db: f"entry {seq_of(db, 'revoked')} (revoked) was altered",
    ),
    # The detail is stored packed (0012): an SQL text function over it makes TEXT that is
    # not UTF-8, a value may not be JSON, a byte may stand for nothing. Each is named.
    Tampering(
        "text-function-over-packed-detail",
        lambda db: [
            "UPDATE audit_log SET detail = replace(detail, 'corp', 'c0rp') "
            f"WHERE seq = {seq_of(db, 'issued')}"
        ],
        lambda db: f"entry {seq_of(db, 'issued')} (issued) was altered",
    ),
    Tampering(
        "detail-not-json",
        lambda db: [f"UPDATE audit_log SET detail = 'not json' WHERE seq = {seq_of(db, 'issued')}"],
        lambda db: f"entry {seq_of(db, 'issued')} (issued) was altered",
    ),
    Tampering(
        "detail-unknown-packed-byte",
        lambda db: [
            f"UPDATE audit_log SET detail = X'011f7b7dff' WHERE seq = {seq_of(db, 'revoked')}"
        ],
        lambda db: f"entry {seq_of(db, 'revoked')} (revoked) was altered",
    ),
    Tampering(
        "update-entry-actor",
        lambda db: [f"UPDATE audit_log SET actor = 'nobody' WHERE seq = {seq_of(db, 'issued')}"],
        lambda db: f"entry {seq_of(db, 'issued')} (issued) was altered",
    ),
    Tampering(
        "delete-middle-entry",
        lambda db: [f"DELETE FROM audit_log WHERE seq = {seq_of(db, 'issued', 1)}"],
        lambda db: f"entry {seq_of(db, 'issued', 1)} is missing",
    ),
    Tampering(
        "delete-last-entry",
        lambda db: ["DELETE FROM audit_log WHERE seq = (SELECT max(seq) FROM audit_log)"],
        lambda db: f"entry {query(db, 'SELECT max(seq) FROM audit_log')[0][0]} is missing",
    ),
    # The head row records how many entries there were: deleted with the newest entries,
    # it used to be made again from what was left, and the deletion went unseen.
    Tampering(
        "delete-head-and-last-entry",
        lambda db: [
            "DELETE FROM audit_log WHERE seq = (SELECT max(seq) FROM audit_log)",
            "DELETE FROM audit_head",
        ],
        lambda _db: "the head of the log is gone",
    ),
    Tampering(
        "swap-two-entries",
        lambda db: [
            f"UPDATE audit_log SET seq = -1 WHERE seq = {seq_of(db, 'issued')}",
            f"UPDATE audit_log SET seq = {seq_of(db, 'issued')} "
            f"WHERE seq = {seq_of(db, 'issued') + 1}",
            f"UPDATE audit_log SET seq = {seq_of(db, 'issued') + 1} WHERE seq = -1",
        ],
        lambda db: f"entry {seq_of(db, 'issued')} ",
    ),
    Tampering(
        "replace-certificate-der",
        lambda db: [
            "UPDATE certificates SET der = (SELECT der FROM certificates "
            f"WHERE serial = {stored_serial(db, 'issued', 1)}) "
            f"WHERE serial = {stored_serial(db, 'issued', 0)}"
        ],
        lambda db: f"certificate {serial_of(db, 'issued', 0)} does not match the fingerprint",
    ),
    Tampering(
        "delete-certificate-row",
        lambda db: [
            f"DELETE FROM certificate_names WHERE serial = {stored_serial(db, 'issued', 2)}",
            f"DELETE FROM certificates WHERE serial = {stored_serial(db, 'issued', 2)}",
        ],
        lambda db: (
            f"certificate {serial_of(db, 'issued', 2)} (entry {seq_of(db, 'issued', 2)}) is gone"
        ),
    ),
    Tampering(
        "revocation-undone",
        lambda db: [
            "UPDATE certificates SET status = 'issued', revoked_at = NULL, "
            f"revocation_reason = NULL WHERE serial = {stored_serial(db, 'revoked', 0)}"
        ],
        lambda db: f"certificate {serial_of(db, 'revoked', 0)} was revoked (the log says so)",
    ),
    Tampering(
        "revocation-reason-altered",
        lambda db: [
            "UPDATE certificates SET revocation_reason = 'cACompromise' "
            f"WHERE serial = {stored_serial(db, 'revoked', 0)}"
        ],
        lambda db: f"certificate {serial_of(db, 'revoked', 0)} is revoked for 'cACompromise'",
    ),
    Tampering(
        "revocation-reason-removed",
        lambda db: [
            "UPDATE certificates SET revocation_reason = NULL "
            f"WHERE serial = {stored_serial(db, 'revoked', 0)}"
        ],
        lambda db: f"certificate {serial_of(db, 'revoked', 0)} is revoked for no reason but",
    ),
    # A revocation moved later (or earlier) than the log says: relying parties that judge
    # a signature by the revocation date would take the wrong side of it.
    Tampering(
        "revocation-date-moved",
        lambda db: [
            "UPDATE certificates SET revoked_at = revoked_at + 30 * 86400 * 1000000 "
            f"WHERE serial = {stored_serial(db, 'revoked', 0)}"
        ],
        lambda db: f"certificate {serial_of(db, 'revoked', 0)} is revoked as of",
    ),
    # The columns privca finds, lists and publishes a certificate by (review of
    # 2026-12-03): each edit hid a revocation or a live certificate and the log was
    # called intact.
    Tampering(
        "revoked-row-moved-to-another-issuer",  # off its CA's CRL; OCSP said unknown
        lambda db: [
            "UPDATE certificates SET issuer_id = 1 "
            f"WHERE serial = {stored_serial(db, 'revoked', 0)}"
        ],
        lambda db: f"certificate {serial_of(db, 'revoked', 0)} no longer has the issuer",
    ),
    Tampering(
        "live-row-marked-failed",  # gone from list and check; revoke NAME hit another
        lambda db: [
            "UPDATE certificates SET status = 'failed' "
            f"WHERE serial = {stored_serial(db, 'issued', 0)}"
        ],
        lambda db: f"certificate {serial_of(db, 'issued', 0)} was signed and recorded, but",
    ),
    Tampering(
        "names-column-changed",
        lambda db: [
            "UPDATE certificates SET names = '[\"elsewhere.example\"]' "
            f"WHERE serial = {stored_serial(db, 'issued', 0)}"
        ],
        lambda db: f"certificate {serial_of(db, 'issued', 0)} no longer has the issuer",
    ),
    Tampering(
        "key-hash-changed",  # a keyCompromise of the real key would miss this one
        lambda db: [
            "UPDATE certificates SET public_key_sha256 = zeroblob(32) "
            f"WHERE serial = {stored_serial(db, 'issued', 0)}"
        ],
        lambda db: f"certificate {serial_of(db, 'issued', 0)} no longer has the issuer",
    ),
    Tampering(
        "expiry-moved",  # check went quiet; tidy would drop a live certificate
        lambda db: [
            "UPDATE certificates SET not_after = 1577836800000000 "
            f"WHERE serial = {stored_serial(db, 'issued', 0)}"
        ],
        lambda db: f"certificate {serial_of(db, 'issued', 0)} has validity dates",
    ),
    Tampering(
        "name-index-row-deleted",  # show NAME: not found
        lambda db: [
            f"DELETE FROM certificate_names WHERE serial = {stored_serial(db, 'issued', 0)}"
        ],
        lambda db: f"certificate {serial_of(db, 'issued', 0)} lists a name the name index",
    ),
    Tampering(
        "name-index-row-pointed-elsewhere",  # a name found another certificate
        lambda db: [
            f"UPDATE certificate_names SET serial = {stored_serial(db, 'issued', 1)} "
            f"WHERE serial = {stored_serial(db, 'issued', 0)}"
        ],
        lambda db: f"certificate {serial_of(db, 'issued', 0)} lists a name the name index",
    ),
    Tampering(
        "name-index-row-added",  # a lookup by that name found this certificate
        lambda db: [
            "INSERT INTO certificate_names (name, serial) VALUES "
            f"('elsewhere.example', {stored_serial(db, 'issued', 0)})"
        ],
        lambda db: f"name for certificate {serial_of(db, 'issued', 0)} that its row does not",
    ),
    Tampering(
        "revocation-scheduled-without-entry",  # revoked everywhere, nothing in the log
        lambda db: [
            "UPDATE certificates SET revoke_after = 1700000000000000 "
            f"WHERE serial = {stored_serial(db, 'issued', 0)}"
        ],
        lambda db: f"certificate {serial_of(db, 'issued', 0)} is revoked on a schedule no entry",
    ),
    Tampering(
        "successor-added",  # check went quiet about a live certificate
        lambda db: [
            f"UPDATE certificates SET superseded_by = {stored_serial(db, 'issued', 1)} "
            f"WHERE serial = {stored_serial(db, 'issued', 0)}"
        ],
        lambda db: f"certificate {serial_of(db, 'issued', 0)} has a successor the log does not",
    ),
    Tampering(
        "revocation-without-entry",
        lambda db: [
            "UPDATE certificates SET status = 'revoked', revoked_at = issued_at, "
            f"revocation_reason = 'superseded' WHERE serial = {stored_serial(db, 'issued', 0)}"
        ],
        lambda db: f"certificate {serial_of(db, 'issued', 0)} is revoked but no entry",
    ),
]


def test_an_untouched_store_passes(run_cli: Cli, audited_home: Path) -> None:
    result = run_cli("audit", "verify", "--json")
    assert result.exit_code == 0, result.stderr
    verdict = json.loads(result.stdout)
    assert verdict["intact"] is True
    assert verdict["checkpoints"] == 1
    assert verdict["certificates"] >= 4  # three leaves and the audit certificate


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_tampering_is_named(
    run_cli: Cli, audited_home: Path, tmp_path: Path, case: Tampering
) -> None:
    home = copy_home(audited_home, tmp_path / "tampered")
    database = home / "privca.db"
    expected = case.expected(database)  # type: ignore[operator]
    sqlite3_cli(database, *case.statements(database))  # type: ignore[operator]
    result = run_cli("audit", "verify", home=home)
    assert result.exit_code == 1, (result.stdout, result.stderr)
    assert expected in result.stderr, result.stderr
    assert "Traceback" not in result.output + result.stderr


def test_nothing_is_written_over_a_log_whose_head_was_deleted(
    run_cli: Cli, audited_home: Path, tmp_path: Path
) -> None:
    """A new head made from the entries left would erase the evidence that some were
    deleted: every write is refused (exit 3) until the store is repaired."""
    home = copy_home(audited_home, tmp_path / "headless")
    database = home / "privca.db"
    sqlite3_cli(
        database,
        "DELETE FROM audit_log WHERE seq = (SELECT max(seq) FROM audit_log)",
        "DELETE FROM audit_head",
    )
    before = query(database, "SELECT count(*), max(seq) FROM audit_log")
    secret = str(run_cli.passphrase_file)
    out = str(tmp_path / "out")
    refused = run_cli(
        "issue", "four.corp.internal", "--out", out, "--passphrase-file", secret, home=home
    )
    assert refused.exit_code == 3, (refused.stdout, refused.stderr)
    assert "the audit log's head row is gone" in refused.stderr
    assert "privca restore" in refused.stderr and "Traceback" not in refused.stderr
    assert query(database, "SELECT count(*), max(seq) FROM audit_log") == before
    assert query(database, "SELECT count(*) FROM audit_head") == [(0,)]
    assert not (tmp_path / "out" / "four.corp.internal.crt").exists()
    verdict = run_cli("audit", "verify", home=home)
    assert verdict.exit_code == 1 and "the head of the log is gone" in verdict.stderr


def _rewrite_chain(database: Path, drop_serial: str) -> None:
    """What an attacker who read docs/audit.md does: drop a certificate and its entry,
    re-hash everything after it, move the head, delete the stored checkpoints."""
    with sqlite3.connect(database) as connection:
        stored = bytes.fromhex(drop_serial.zfill(len(drop_serial) + len(drop_serial) % 2))
        connection.execute("DELETE FROM certificate_names WHERE serial = ?", (stored,))
        connection.execute("DELETE FROM certificates WHERE serial = ?", (stored,))
        connection.execute("DELETE FROM audit_log WHERE serial = ?", (stored,))
        connection.execute("DELETE FROM audit_checkpoints")
        rows = list(
            connection.execute(
                "SELECT seq, at, action, actor, serial, detail FROM audit_log ORDER BY seq"
            )
        )
        connection.execute("DELETE FROM audit_log")
        previous = "0" * 64
        for index, (_seq, at, action, actor, serial, detail) in enumerate(rows, start=1):
            # Stored compactly: the time in microseconds since the epoch, hex as bytes.
            when = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=at)
            document = {
                "action": action,
                "actor": actor,
                "at": when.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                "detail": json.loads(unpack_detail(detail)),  # stored packed (0012)
                "prev": previous,
                "seq": index,
                "serial": None if serial is None else serial.hex().lstrip("0") or "0",
            }
            digest = entry_hash(document)
            connection.execute(
                "INSERT INTO audit_log (seq, at, action, actor, serial, detail, hash) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (index, at, action, actor, serial, detail, bytes.fromhex(digest)),
            )
            previous = digest
        connection.execute(
            "UPDATE audit_head SET seq = ?, hash = ?", (len(rows), bytes.fromhex(previous))
        )


def test_a_kept_checkpoint_catches_a_rewritten_chain(
    run_cli: Cli, audited_home: Path, tmp_path: Path
) -> None:
    kept = tmp_path / "checkpoint-kept-elsewhere.json"
    kept.write_bytes((audited_home / "certs" / "audit-checkpoint.json").read_bytes())
    home = copy_home(audited_home, tmp_path / "rewritten")
    database = home / "privca.db"
    _rewrite_chain(database, serial_of(database, "issued", 1))
    (home / "certs" / "audit-checkpoint.json").unlink()

    alone = run_cli("audit", "verify", home=home)
    assert alone.exit_code == 0, alone.stderr  # a consistent forgery: only a copy can tell
    checked = run_cli("audit", "verify", "--checkpoint", str(kept), home=home)
    assert checked.exit_code == 1, checked.stdout
    assert "contradicts the log" in checked.stderr or "deleted" in checked.stderr
    assert str(kept) in checked.stderr


def test_a_forged_checkpoint_is_refused(run_cli: Cli, audited_home: Path, tmp_path: Path) -> None:
    """A checkpoint whose statement was edited no longer matches its signature."""
    document = json.loads((audited_home / "certs" / "audit-checkpoint.json").read_text())
    statement = json.loads(document["statement"])
    statement["entries"] -= 1
    document["statement"] = json.dumps(statement, sort_keys=True, separators=(",", ":"))
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps(document))
    result = run_cli("audit", "verify", "--checkpoint", str(forged))
    assert result.exit_code == 1
    assert "is not validly signed" in result.stderr


def test_checkpoints_after_rotate_issuing_still_verify(run_cli: Cli, audited_home: Path) -> None:
    """A rotation certifies a new audit key under the new issuing CA: a checkpoint signed
    afterwards chains to the root, and the older ones (carrying their own chain) too."""
    secret = str(run_cli.passphrase_file)
    assert run_cli("rotate", "issuing", "--passphrase-file", secret).exit_code == 0
    result = run_cli("audit", "checkpoint", "--passphrase-file", secret)
    assert result.exit_code == 0, result.stderr
    verified = run_cli("audit", "verify")
    assert verified.exit_code == 0, verified.stderr


def _flip_packed_byte(database: Path, seq: int) -> None:
    """Change one byte inside the fingerprint of a packed detail (migration 0012 stores
    it as its 32 bytes), as someone editing the file's bytes would."""
    with sqlite3.connect(database) as connection:
        [(stored,)] = connection.execute("SELECT detail FROM audit_log WHERE seq = ?", (seq,))
        assert isinstance(stored, bytes) and b"\x02" in stored, stored
        at = stored.index(b"\x02") + 5
        changed = stored[:at] + bytes([stored[at] ^ 0x01]) + stored[at + 1 :]
        connection.execute("UPDATE audit_log SET detail = ? WHERE seq = ?", (changed, seq))


def test_a_byte_changed_in_a_packed_detail_is_named(
    run_cli: Cli, audited_home: Path, tmp_path: Path
) -> None:
    home = copy_home(audited_home, tmp_path / "tampered")
    database = home / "privca.db"
    seq = seq_of(database, "issued", 1)
    _flip_packed_byte(database, seq)
    result = run_cli("audit", "verify", home=home)
    assert result.exit_code == 1, result.stdout
    assert f"entry {seq} (issued) was altered" in result.stderr, result.stderr


def test_an_entry_rewritten_with_a_matching_hash_breaks_the_next(
    run_cli: Cli, audited_home: Path, tmp_path: Path
) -> None:
    """The previous hash is not stored (0012): an entry altered with its own hash redone
    is caught by the entry after it, whose hash covers the original."""
    home = copy_home(audited_home, tmp_path / "tampered")
    database = home / "privca.db"
    seq = seq_of(database, "issued", 0)
    with sqlite3.connect(database) as connection:
        rows = {
            s: (at, action, actor, serial, unpack_detail(detail), digest)
            for s, at, action, actor, serial, detail, digest in connection.execute(
                "SELECT seq, at, action, actor, serial, detail, hash FROM audit_log "
                "WHERE seq IN (?, ?)",
                (seq - 1, seq),
            )
        }
        at, action, actor, serial, detail, _digest = rows[seq]
        names = json.loads(detail)
        names["names"] = ["evil.corp.internal"]
        forged = json.dumps(names, sort_keys=True, separators=(",", ":"))
        when = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=at)
        document = {
            "action": action,
            "actor": actor,
            "at": when.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "detail": json.loads(forged),
            "prev": rows[seq - 1][5].hex(),
            "seq": seq,
            "serial": serial.hex().lstrip("0") or "0",
        }
        connection.execute(
            "UPDATE audit_log SET detail = ?, hash = ? WHERE seq = ?",
            (forged, bytes.fromhex(entry_hash(document)), seq),
        )
    result = run_cli("audit", "verify", home=home)
    assert result.exit_code == 1, result.stdout
    assert f"entry {seq + 1} " in result.stderr, result.stderr
    assert f"or entry {seq} was rewritten" in result.stderr, result.stderr


def test_a_lifted_key_bar_is_named(run_cli: Cli, audited_home: Path, tmp_path: Path) -> None:
    """A keyCompromise revocation bars the key (blocked_keys); deleting that row made the
    key certifiable again, and audit verify said the log was intact."""
    home = copy_home(audited_home, tmp_path / "barred")
    revoked = run_cli("revoke", "one.corp.internal", "--reason", "keyCompromise", home=home)
    assert revoked.exit_code == 0, revoked.stderr
    assert run_cli("audit", "verify", home=home).exit_code == 0
    sqlite3_cli(home / "privca.db", "DELETE FROM blocked_keys")
    result = run_cli("audit", "verify", home=home)
    assert result.exit_code == 1, (result.stdout, result.stderr)
    assert "was revoked for keyCompromise (the log says so) but the store no longer bars it" in (
        result.stderr
    )


def test_a_removed_revocation_schedule_is_named(
    run_cli: Cli, audited_home: Path, tmp_path: Path
) -> None:
    """renew --revoke-old-after schedules the old certificate's revocation; setting the
    row's revoke_after to NULL cancelled it (the old certificate stayed valid in the CRL
    and OCSP) and the log, which holds the schedule, was called intact."""
    home = copy_home(audited_home, tmp_path / "scheduled")
    out = str(tmp_path / "renewed")
    renewed = run_cli("renew", "one.corp.internal", "--out", out, "--revoke-old-after", "1d",
                      "--passphrase-file", str(run_cli.passphrase_file), home=home)  # fmt: skip
    assert renewed.exit_code == 0, renewed.stderr
    assert run_cli("audit", "verify", home=home).exit_code == 0
    old = serial_of(home / "privca.db", "revocation-scheduled")
    sqlite3_cli(home / "privca.db", "UPDATE certificates SET revoke_after = NULL")
    result = run_cli("audit", "verify", home=home)
    assert result.exit_code == 1, (result.stdout, result.stderr)
    assert f"certificate {old} had its revocation scheduled" in result.stderr, result.stderr


def test_the_bar_of_a_tidied_compromised_key_is_still_checked(
    run_cli: Cli, audited_home: Path, tmp_path: Path
) -> None:
    """Once tidy dropped a keyCompromise certificate's DER, the bar on its key could be
    deleted unseen (the check took the key from the DER): the revocation entry now
    carries the key hash."""
    from privca._time import utcnow
    from privca.authority import CertificateAuthority

    home = copy_home(audited_home, tmp_path / "tidied")
    revoked = run_cli("revoke", "one.corp.internal", "--reason", "keyCompromise", home=home)
    assert revoked.exit_code == 0, revoked.stderr
    ca = CertificateAuthority.open(home)
    try:
        assert ca.tidy(dt.timedelta(0), now=utcnow() + dt.timedelta(days=800)) >= 1
    finally:
        ca.close()
    assert query(home / "privca.db", "SELECT count(*) FROM certificates WHERE der IS NULL")[0][0]
    assert run_cli("audit", "verify", home=home).exit_code == 0
    sqlite3_cli(home / "privca.db", "DELETE FROM blocked_keys")
    result = run_cli("audit", "verify", home=home)
    assert result.exit_code == 1, (result.stdout, result.stderr)
    assert "the store no longer bars it" in result.stderr, result.stderr


def test_tidy_believes_the_certificate_not_a_moved_expiry(
    run_cli: Cli, audited_home: Path, tmp_path: Path
) -> None:
    """tidy picked rows by their not_after column: moved into the past, it had privca
    itself tombstone a live revoked certificate (OCSP then said unknown) with a genuine
    `tidied` entry, and putting the date back left nothing for audit verify to see."""
    home = copy_home(audited_home, tmp_path / "moved")
    database = home / "privca.db"
    revoked = stored_serial(database, "revoked")
    sqlite3_cli(
        database, f"UPDATE certificates SET not_after = 1577836800000000 WHERE serial = {revoked}"
    )
    before = query(database, "SELECT count(*) FROM certificates WHERE der IS NULL")
    result = run_cli("tidy", "--expired-for", "90d", home=home)
    assert result.exit_code == 3, (result.stdout, result.stderr)
    assert "does not: the row was altered" in result.stderr, result.stderr
    assert query(database, "SELECT count(*) FROM certificates WHERE der IS NULL") == before
    assert not query(database, "SELECT seq FROM audit_log WHERE action = 'tidied'")


def test_an_older_copy_of_the_store_contradicts_the_homes_published_checkpoint(
    run_cli: Cli, audited_home: Path, tmp_path: Path
) -> None:
    """privca.db replaced by an older copy of itself (a rollback: a later revocation
    gone) passed, its log and stored checkpoints being consistent among themselves; the
    checkpoint the home published after them says more entries were there."""
    home = copy_home(audited_home, tmp_path / "rolled-back")
    database = home / "privca.db"
    older = tmp_path / "older.db"
    sqlite3_cli(database, f".backup '{older}'")
    revoked = run_cli("revoke", "one.corp.internal", "--reason", "keyCompromise", home=home)
    assert revoked.exit_code == 0, revoked.stderr
    made = run_cli("audit", "checkpoint", "--passphrase-file", str(run_cli.passphrase_file),
                   home=home)  # fmt: skip
    assert made.exit_code == 0, made.stderr
    assert run_cli("audit", "verify", home=home).exit_code == 0
    for suffix in ("-wal", "-shm"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    older.chmod(0o600)
    older.replace(database)
    result = run_cli("audit", "verify", home=home)
    assert result.exit_code == 1, (result.stdout, result.stderr)
    assert "the home's published checkpoint" in result.stderr, result.stderr
    assert "were deleted" in result.stderr


def test_a_forged_schedule_carried_out_by_crl_is_still_named(
    run_cli: Cli, audited_home: Path, tmp_path: Path
) -> None:
    """`privca crl` writes a due schedule down as a `revoked` entry; one forged in the row
    came out of it as a logged revocation, dated before the certificate was issued."""
    home = copy_home(audited_home, tmp_path / "laundered")
    database = home / "privca.db"
    serial = serial_of(database, "issued", 0)
    sqlite3_cli(
        database,
        "UPDATE certificates SET revoke_after = 1700000000000000 "
        f"WHERE serial = {stored_serial(database, 'issued', 0)}",
    )
    crl = run_cli("crl", "--passphrase-file", str(run_cli.passphrase_file), home=home)
    assert crl.exit_code == 0, crl.stderr
    result = run_cli("audit", "verify", home=home)
    assert result.exit_code == 1, (result.stdout, result.stderr)
    assert f"certificate {serial} is revoked on a schedule no entry" in result.stderr
