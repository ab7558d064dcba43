"""Store: reserve -> complete, abandon, get, find, find_by_name, authorities.

Every test runs on SQLite and on PostgreSQL (see conftest.py).
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable

import pytest

from privca.errors import InputError, PrivcaError
from privca.store.inventory import Intent, Store

DAY = dt.timedelta(days=1)


def test_reserve_records_pending_intents_before_signing(
    store: Store, make_intent: Callable[..., Intent], now: dt.datetime
) -> None:
    intent = make_intent("web.corp.internal", "10.0.0.7", days=90)
    [serial] = store.reserve([intent], now)

    record = store.get(serial)
    assert record is not None
    assert record.status == "pending"
    assert record.status_at(now) == "pending"
    assert record.der is None
    assert record.serial == serial
    assert record.issuer_id == intent.issuer_id
    assert record.profile == intent.profile
    assert record.names == ("web.corp.internal", "10.0.0.7")
    assert record.subject == intent.subject
    assert record.public_key_sha256 == intent.public_key_sha256
    assert record.not_before == intent.not_before
    assert record.not_after == intent.not_after
    assert record.created_at == now
    for moment in (record.not_before, record.not_after, record.created_at):
        assert moment.utcoffset() == dt.timedelta(0)
    assert record.revoked_at is None and record.revocation_reason is None
    assert store.count() == 1


def test_serials_are_random_positive_127_bit_and_distinct(
    store: Store, make_intent: Callable[..., Intent], now: dt.datetime
) -> None:
    serials = store.reserve([make_intent(f"s{i}.corp.internal") for i in range(200)], now)
    assert len(set(serials)) == 200
    assert all(s.bit_length() == 127 for s in serials)
    # Not a counter: consecutive reservations are not neighbours.
    assert all(abs(a - b) > 2**64 for a, b in itertools.pairwise(serials))
    assert store.count() == 200


def test_complete_records_the_certificate(
    store: Store, make_intent: Callable[..., Intent], now: dt.datetime
) -> None:
    intents = [make_intent("a.corp.internal"), make_intent("b.corp.internal")]
    serials = store.reserve(intents, now)
    later = now + dt.timedelta(seconds=3)
    store.complete([(serials[0], b"DER-A"), (serials[1], b"DER-B")], later, intents)

    a, b = store.get(serials[0]), store.get(serials[1])
    assert a is not None and b is not None
    assert (a.status, a.der) == ("issued", b"DER-A")
    assert (b.status, b.der) == ("issued", b"DER-B")
    assert a.status_at(now) == "valid"
    assert a.status_at(a.not_after) == "expired"


def test_complete_of_nothing_is_a_no_op(store: Store, now: dt.datetime) -> None:
    store.complete([], now, [])
    assert store.count() == 0


def test_abandon_marks_pending_as_failed_and_keeps_the_serial(
    store: Store, make_intent: Callable[..., Intent], now: dt.datetime
) -> None:
    intents = [make_intent("a.corp.internal"), make_intent("b.corp.internal")]
    pending, issued = store.reserve(intents, now)
    store.complete([(issued, b"DER")], now, intents[1:])
    store.abandon([pending, issued], now, "signing failed")

    failed = store.get(pending)
    assert failed is not None
    assert failed.status == "failed" and failed.status_at(now) == "failed"
    assert failed.der is None
    # abandon only touches intents that are still pending
    kept = store.get(issued)
    assert kept is not None and kept.status == "issued" and kept.der == b"DER"
    # the failed serial is never reused: it stays in the table
    assert store.count() == 2
    store.abandon([], now, "nothing")


def test_get_unknown_serial_is_none(store: Store) -> None:
    assert store.get(0x4000_0000_0000_0000_0000_0000_0000_0001) is None


def test_find_lists_only_signed_certificates_unless_asked(
    store: Store,
    make_intent: Callable[..., Intent],
    issue_records: Callable[..., list[int]],
    now: dt.datetime,
) -> None:
    [issued] = issue_records(make_intent("issued.corp.internal"))
    [pending] = store.reserve([make_intent("pending.corp.internal")], now)
    [failed] = store.reserve([make_intent("failed.corp.internal")], now)
    store.abandon([failed], now, "test")

    assert [r.serial for r in store.find(now=now)] == [issued]
    everything = {r.serial: r.status for r in store.find(now=now, include_unsigned=True)}
    assert everything == {issued: "issued", pending: "pending", failed: "failed"}


@pytest.fixture
def mixed_inventory(
    store: Store,
    make_intent: Callable[..., Intent],
    issue_records: Callable[..., list[int]],
    now: dt.datetime,
) -> dict[str, int]:
    """soon (10 days), later (200 days), expired (-1 day), revoked (50 days), pending."""
    soon, later, expired, revoked = issue_records(
        make_intent("soon.corp.internal", days=10),
        make_intent("later.corp.internal", days=200),
        make_intent("expired.corp.internal", days=-1, not_before=now - 30 * DAY),
        make_intent("revoked.corp.internal", days=50),
    )
    store.revoke(revoked, "keyCompromise", now, None)
    [pending] = store.reserve([make_intent("pending.corp.internal", days=5)], now)
    return {
        "soon": soon,
        "later": later,
        "expired": expired,
        "revoked": revoked,
        "pending": pending,
    }


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        pytest.param(None, ["expired", "soon", "revoked", "later"], id="all-by-not-after"),
        pytest.param("valid", ["soon", "later"], id="valid"),
        pytest.param("expired", ["expired"], id="expired"),
        pytest.param("revoked", ["revoked"], id="revoked"),
    ],
)
def test_find_by_status(
    store: Store,
    mixed_inventory: dict[str, int],
    now: dt.datetime,
    status: str | None,
    expected: list[str],
) -> None:
    found = [r.serial for r in store.find(status=status, now=now)]
    assert found == [mixed_inventory[label] for label in expected]


def test_find_revoked_record_carries_revocation(
    store: Store, mixed_inventory: dict[str, int], now: dt.datetime
) -> None:
    [record] = store.find(status="revoked", now=now)
    assert record.status_at(now) == "revoked"
    assert record.revoked_at == now
    assert record.revocation_reason == "keyCompromise"


def test_find_unknown_status_is_an_input_error(store: Store, now: dt.datetime) -> None:
    with pytest.raises(InputError, match="status 'bogus'"):
        store.find(status="bogus", now=now)


@pytest.mark.parametrize(
    ("within_days", "expected"),
    [
        pytest.param(5, [], id="5-days-none"),
        pytest.param(10, ["soon"], id="10-days-boundary-included"),
        pytest.param(30, ["soon"], id="30-days"),
        pytest.param(365, ["soon", "later"], id="365-days-not-revoked-or-expired"),
    ],
)
def test_find_expiring(
    store: Store,
    mixed_inventory: dict[str, int],
    now: dt.datetime,
    within_days: int,
    expected: list[str],
) -> None:
    found = store.find(expiring_before=now + within_days * DAY, now=now)
    assert [r.serial for r in found] == [mixed_inventory[label] for label in expected]


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        pytest.param("soon", ["soon"], id="substring"),
        pytest.param("SOON.Corp", ["soon"], id="case-insensitive"),
        pytest.param("*.corp.internal", ["expired", "soon", "revoked", "later"], id="star"),
        pytest.param("l?ter", ["later"], id="question-mark"),
        pytest.param("pending", [], id="pending-not-listed"),
        pytest.param("nothing.example", [], id="no-match"),
        # LIKE's own wildcards are literal here: _ and % used to match any character(s).
        pytest.param("s_on", [], id="underscore-is-literal"),
        pytest.param("%", [], id="percent-is-literal"),
        pytest.param("\\", [], id="backslash-is-literal"),
    ],
)
def test_find_by_name_pattern(
    store: Store,
    mixed_inventory: dict[str, int],
    now: dt.datetime,
    pattern: str,
    expected: list[str],
) -> None:
    found = store.find(name_pattern=pattern, now=now)
    assert [r.serial for r in found] == [mixed_inventory[label] for label in expected]


def test_find_filters_combine(
    store: Store, mixed_inventory: dict[str, int], now: dt.datetime
) -> None:
    found = store.find(name_pattern="o", status="valid", expiring_before=now + 30 * DAY, now=now)
    assert [r.serial for r in found] == [mixed_inventory["soon"]]


def test_find_by_name_is_exact_and_newest_first(
    store: Store,
    make_intent: Callable[..., Intent],
    issue_records: Callable[..., list[int]],
    now: dt.datetime,
) -> None:
    old, new, other_name, superstring, second_san = issue_records(
        make_intent("api.corp.internal", not_before=now - 20 * DAY),
        make_intent("api.corp.internal", not_before=now - 1 * DAY),
        make_intent("web.corp.internal"),
        make_intent("xapi.corp.internal.example"),
        make_intent("www.corp.internal", "api.corp.internal", not_before=now - 10 * DAY),
    )
    [pending] = store.reserve([make_intent("api.corp.internal")], now)

    found = [r.serial for r in store.find_by_name("api.corp.internal", now)]
    assert found == [new, second_san, old]
    assert other_name not in found and superstring not in found and pending not in found
    assert store.find_by_name("corp.internal", now) == []
    assert [r.serial for r in store.find_by_name("web.corp.internal", now)] == [other_name]


def test_names_round_trip_unicode_and_ip(
    store: Store,
    make_intent: Callable[..., Intent],
    issue_records: Callable[..., list[int]],
    now: dt.datetime,
) -> None:
    names = ("xn--bcher-kva.corp.internal", "10.1.2.3", "2001:db8::1", "email:ops@corp.internal")
    [serial] = issue_records(make_intent(*names))
    record = store.get(serial)
    assert record is not None and record.names == names
    assert [r.serial for r in store.find_by_name("2001:db8::1", now)] == [serial]


def test_authorities_round_trip_and_one_active_per_role(store: Store, now: dt.datetime) -> None:
    root_until = now + 3650 * DAY
    root = store.add_authority("root", "CN=R", 0xAA, b"root", "private/root.key", root_until, now)
    old = store.add_authority(
        "issuing", "CN=I1", 0xBB, b"i1", "private/issuing.key", now + 100 * DAY, now
    )
    new = store.add_authority(
        "issuing", "CN=I2", 0xCC, b"i2", "pkcs11:token=ca;object=issuing", now + 900 * DAY, now
    )
    spare = store.add_authority(
        "issuing", "CN=I3", 0xDD, b"i3", "private/i3.key", now + DAY, now, active=False
    )

    records = store.authorities()
    assert [r.id for r in records] == [root, old, new, spare]
    by_id = {r.id: r for r in records}
    assert by_id[root].role == "root" and by_id[root].active
    assert by_id[root].common_name == "CN=R"
    assert by_id[root].serial == 0xAA and by_id[root].der == b"root"
    assert by_id[root].not_after == root_until
    assert by_id[root].not_after.utcoffset() == dt.timedelta(0)
    # a new active issuing CA retires the previous one; an inactive one changes nothing
    assert [by_id[i].active for i in (old, new, spare)] == [False, True, False]
    assert by_id[new].key_ref == "pkcs11:token=ca;object=issuing"


def test_another_store_on_the_same_database_sees_committed_records(
    store: Store,
    open_store: Callable[[], Store],
    make_intent: Callable[..., Intent],
    issue_records: Callable[..., list[int]],
    now: dt.datetime,
) -> None:
    [serial] = issue_records(make_intent("shared.corp.internal"))
    other = open_store()
    record = other.get(serial)
    assert record is not None and record.status == "issued"
    assert [a.role for a in other.authorities()] == ["issuing"]


def _orphan_intent(now: dt.datetime) -> Intent:
    return Intent(
        issuer_id=999,
        profile="server",
        names=("x.corp.internal",),
        subject="CN=x.corp.internal",
        not_before=now,
        not_after=now + DAY,
        public_key_sha256="0" * 64,
    )


def test_a_record_for_an_unknown_issuer_is_refused(store: Store, now: dt.datetime) -> None:
    """The foreign key holds on both databases (SQLite needs PRAGMA foreign_keys=ON)."""
    with pytest.raises(PrivcaError):
        store.reserve([_orphan_intent(now)], now)
    assert store.count() == 0


def test_an_unknown_issuer_is_not_reported_as_serial_exhaustion(
    store: Store, now: dt.datetime
) -> None:
    with pytest.raises(PrivcaError) as excinfo:
        store.reserve([_orphan_intent(now)], now)
    assert "serial" not in str(excinfo.value)
