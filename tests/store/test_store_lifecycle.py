"""Store lifecycle: revoke, blocked keys, revoked entries, CRL numbers, supersession, counts."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable

import pytest

from privca.errors import InputError, PolicyError
from privca.store.authorities import crl_number_floor
from privca.store.inventory import Intent, RevocationOutcome, Store, reason_change
from privca.store.records import Revocation

DAY = dt.timedelta(days=1)


def test_revoke_records_date_and_reason_and_only_worsens_the_reason(
    store: Store,
    make_intent: Callable[..., Intent],
    issue_records: Callable[..., list[int]],
    now: dt.datetime,
) -> None:
    [serial] = issue_records(make_intent("a.corp.internal"))
    record, outcome = store.revoke(serial, "superseded", now, None)
    assert outcome is RevocationOutcome.REVOKED
    assert (record.status, record.revoked_at, record.revocation_reason) == (
        "revoked",
        now,
        "superseded",
    )
    _, outcome = store.revoke(serial, "superseded", now + DAY, None)
    assert outcome is RevocationOutcome.UNCHANGED and not outcome.changed
    with pytest.raises(PolicyError, match="can only change to keyCompromise"):
        store.revoke(serial, "cessationOfOperation", now + DAY, None)
    worse, outcome = store.revoke(serial, "keyCompromise", now + DAY, "ab" * 32)
    assert outcome is RevocationOutcome.REASON_CHANGED and outcome.changed
    assert (worse.revoked_at, worse.revocation_reason) == (now, "keyCompromise")
    assert store.blocked(["ab" * 32]) == {"ab" * 32}
    for better in ("superseded", "unspecified", None, "affiliationChanged"):
        with pytest.raises(PolicyError, match="already revoked \\(keyCompromise\\)"):
            store.revoke(serial, better, now + 2 * DAY, None)
    stored = store.get(serial)
    assert stored is not None and stored.status_at(now) == "revoked"
    assert (stored.revoked_at, stored.revocation_reason) == (now, "keyCompromise")


@pytest.mark.parametrize(
    ("current", "requested", "expected"),
    [
        (None, None, RevocationOutcome.UNCHANGED),
        (None, "unspecified", RevocationOutcome.UNCHANGED),
        ("superseded", "superseded", RevocationOutcome.UNCHANGED),
        ("keyCompromise", "keyCompromise", RevocationOutcome.UNCHANGED),
        (None, "keyCompromise", RevocationOutcome.REASON_CHANGED),
        ("superseded", "keyCompromise", RevocationOutcome.REASON_CHANGED),
        ("cessationOfOperation", "keyCompromise", RevocationOutcome.REASON_CHANGED),
        ("privilegeWithdrawn", "keyCompromise", RevocationOutcome.REASON_CHANGED),
        ("keyCompromise", "superseded", None),
        ("keyCompromise", None, None),
        ("superseded", "cessationOfOperation", None),
        ("superseded", "unspecified", None),
        (None, "superseded", None),
        ("superseded", "removeFromCRL", None),
    ],
    ids=lambda v: str(v),
)
def test_reason_change_table(
    current: str | None, requested: str | None, expected: RevocationOutcome | None
) -> None:
    if expected is None:
        with pytest.raises(PolicyError):
            reason_change("ab", current, requested)
    else:
        assert reason_change("ab", current, requested) is expected


def test_a_scheduled_revocation_never_downgrades_key_compromise(
    store: Store,
    make_intent: Callable[..., Intent],
    issue_records: Callable[..., list[int]],
    now: dt.datetime,
) -> None:
    """renew --revoke-old-after schedules 'superseded'; a keyCompromise that comes first
    wins, and the schedule neither overwrites it nor fires later."""
    [serial] = issue_records(make_intent("sched.corp.internal"))
    store.schedule_revocation(serial, now + DAY, now)
    store.revoke(serial, "keyCompromise", now, None)
    assert store.apply_due_revocations(now + 2 * DAY) == []
    record = store.get(serial)
    assert record is not None
    assert (record.revoked_at, record.revocation_reason) == (now, "keyCompromise")


@pytest.mark.parametrize("what", ["unknown", "pending"])
def test_revoke_needs_an_issued_certificate(
    store: Store, make_intent: Callable[..., Intent], now: dt.datetime, what: str
) -> None:
    if what == "pending":
        [serial] = store.reserve([make_intent("p.corp.internal")], now)
    else:
        serial = 0x5000_0000_0000_0000_0000_0000_0000_0001
    with pytest.raises(InputError, match="no issued certificate"):
        store.revoke(serial, None, now, None)


def test_key_compromise_blocks_the_public_key(
    store: Store,
    make_intent: Callable[..., Intent],
    issue_records: Callable[..., list[int]],
    now: dt.datetime,
) -> None:
    compromised, retired, other = (
        make_intent("a.corp.internal"),
        make_intent("b.corp.internal"),
        make_intent("c.corp.internal"),
    )
    serials = issue_records(compromised, retired, other)
    store.revoke(serials[0], "keyCompromise", now, compromised.public_key_sha256)
    store.revoke(serials[1], "cessationOfOperation", now, retired.public_key_sha256)
    hashes = [i.public_key_sha256 for i in (compromised, retired, other)]
    assert store.blocked(hashes) == {compromised.public_key_sha256}
    assert store.blocked([]) == set()
    # a second compromised certificate with the same key does not trip the primary key
    [twin] = issue_records(make_intent("a.corp.internal"))
    _, outcome = store.revoke(twin, "keyCompromise", now, compromised.public_key_sha256)
    assert outcome.changed


def test_revoked_entries_and_fingerprint(
    store: Store,
    make_intent: Callable[..., Intent],
    issue_records: Callable[..., list[int]],
    issuer_id: int,
    now: dt.datetime,
) -> None:
    live, expired, kept = issue_records(
        make_intent("live.corp.internal", days=30),
        make_intent("expired.corp.internal", days=-1, not_before=now - 10 * DAY),
        make_intent("kept.corp.internal"),
    )
    before = store.revocation_fingerprints()[issuer_id]
    store.revoke(live, "keyCompromise", now, None)
    store.revoke(expired, None, now - DAY, None)
    after = store.revocation_fingerprints()[issuer_id]
    assert before != after and after[0] == 2

    entries = store.revoked_entries(issuer_id, now)
    assert [(e.serial, e.revoked_at, e.reason) for e in entries] == [
        (live, now, "keyCompromise")
    ]  # expired certificates leave the CRL
    assert kept not in [e.serial for e in entries]
    assert store.revoked_entries(issuer_id + 100, now) == []


def test_crl_numbers_only_grow(store: Store, issuer_id: int, now: dt.datetime) -> None:
    numbers = [store.next_crl_number(issuer_id, now + i * DAY) for i in range(3)]
    # Never below the time floor (milliseconds since 1970 at thisUpdate): see authorities.py.
    assert numbers == [crl_number_floor(now + i * DAY) for i in range(3)]
    # A clock set back: the stored counter keeps the numbers growing.
    assert store.next_crl_number(issuer_id, now) == numbers[-1] + 1
    [state] = store.crl_states()
    assert (state.issuer_id, state.number) == (issuer_id, numbers[-1] + 1)
    # Reserving a number says nothing of a CRL: the dates wait for one to be signed (a
    # signing that failed used to move them, and `check` stopped calling the CRL overdue).
    assert (state.this_update, state.next_update) == (now, now)
    store.crl_signed(issuer_id, numbers[1], now + DAY, now + 8 * DAY)
    store.crl_signed(issuer_id, numbers[0], now, now + 7 * DAY)  # older: its dates do not win
    [state] = store.crl_states()
    assert (state.this_update, state.next_update) == (now + DAY, now + 8 * DAY)


def test_crl_numbers_are_unique_across_concurrent_stores(
    store: Store, open_store: Callable[[], Store], issuer_id: int, now: dt.datetime
) -> None:
    """Replicas publishing at once, including the very first CRL, never share a number."""
    stores = [open_store() for _ in range(4)]
    barrier = threading.Barrier(len(stores))
    numbers: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def publish(replica: Store) -> None:
        try:
            barrier.wait()
            for _ in range(5):
                number = replica.next_crl_number(issuer_id, now)
                with lock:
                    numbers.append(number)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=publish, args=(s,)) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    # One time floor for all (same thisUpdate), then the counter: 20 consecutive numbers.
    assert sorted(numbers) == list(range(crl_number_floor(now), crl_number_floor(now) + 20))


def test_superseded_certificates(
    store: Store,
    make_intent: Callable[..., Intent],
    issue_records: Callable[..., list[int]],
    now: dt.datetime,
) -> None:
    old, new = issue_records(make_intent("r.corp.internal"), make_intent("r.corp.internal"))
    store.mark_superseded(old, new, now)
    record = store.get(old)
    assert record is not None
    assert record.superseded_by == new and record.status_at(now) == "superseded"
    assert [r.serial for r in store.find(status="valid", now=now)] == [new]
    assert [r.serial for r in store.find(status="superseded", now=now)] == [old]


def test_counts_by_status(
    store: Store,
    make_intent: Callable[..., Intent],
    issue_records: Callable[..., list[int]],
    issuer_id: int,
    now: dt.datetime,
) -> None:
    issued = issue_records(make_intent("a.corp.internal"), make_intent("b.corp.internal"))
    store.revoke(issued[0], None, now, None)
    store.reserve([make_intent("c.corp.internal")], now)
    assert store.counts_by_status() == {
        (issuer_id, "issued"): 1,
        (issuer_id, "revoked"): 1,
        (issuer_id, "pending"): 1,
    }


def test_a_due_scheduled_revocation_is_never_pushed_back_or_redated(
    store: Store,
    make_intent: Callable[..., Intent],
    issue_records: Callable[..., list[int]],
    now: dt.datetime,
) -> None:
    """Once a renewal's grace is over the old certificate is revoked to every reader (OCSP
    and CRLs may already say so), written or not: a second renew --revoke-old-after may
    neither make it good again nor change its date. Before that, a schedule only moves
    earlier (a superseded certificate is never trusted for longer)."""
    [due, pending] = issue_records(make_intent("due.corp.internal"), make_intent("p.corp.internal"))
    store.schedule_revocation(due, now - DAY, now - 2 * DAY)
    store.schedule_revocation(pending, now + 2 * DAY, now)
    for at in (now + 30 * DAY, now - 3 * DAY, now):
        store.schedule_revocation(due, at, now)
    record = store.get(due)
    assert record is not None and record.revocation_at(now) == Revocation(now - DAY, "superseded")
    store.schedule_revocation(pending, now + 30 * DAY, now)  # later: kept as it was
    assert store.get(pending).revoke_after == now + 2 * DAY  # type: ignore[union-attr]
    store.schedule_revocation(pending, now + DAY, now)  # earlier: taken
    assert store.get(pending).revoke_after == now + DAY  # type: ignore[union-attr]
    assert store.apply_due_revocations(now) == [due]
    record = store.get(due)
    assert record is not None
    assert (record.status, record.revoked_at, record.revocation_reason) == (
        "revoked",
        now - DAY,
        "superseded",
    )


@pytest.mark.parametrize(
    ("reason", "outcome"),
    [
        ("superseded", RevocationOutcome.UNCHANGED),
        ("keyCompromise", RevocationOutcome.REASON_CHANGED),
        ("unspecified", None),
    ],
    ids=["same-reason", "key-compromise", "better-reason"],
)
def test_revoking_a_due_scheduled_revocation_follows_the_reason_rule(
    store: Store,
    make_intent: Callable[..., Intent],
    issue_records: Callable[..., list[int]],
    now: dt.datetime,
    reason: str,
    outcome: RevocationOutcome | None,
) -> None:
    """It is a revocation already (superseded, since it fell due): only keyCompromise may
    replace the reason, and the date stays the one readers were told."""
    [serial] = issue_records(make_intent("due.corp.internal"))
    store.schedule_revocation(serial, now - DAY, now - 2 * DAY)
    if outcome is None:
        with pytest.raises(PolicyError, match="already revoked"):
            store.revoke(serial, reason, now, None)
        return
    _record, got = store.revoke(serial, reason, now, None)
    assert got is outcome
    record = store.get(serial)
    assert record is not None and record.revocation_at(now) == Revocation(now - DAY, reason)
