"""`rotate status` (and `--retire-old`, `doctor`) count the old hierarchy's valid
certificates in the inventory, one aggregate per CA, and say exactly what reading every
valid certificate said (the computation it replaced is kept here as the oracle), on an
inventory with every kind of row: old and new hierarchy, named issuers, a disabled issuer
that keeps its old CA, revoked, expired, superseded (with a scheduled revocation),
tidied, and OCSP responder certificates. On SQLite the count is an index search."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable, Sequence

import pytest

from privca._time import utcnow
from privca.authority import CertificateAuthority
from privca.issuers import NewIssuer
from privca.registry import Registry
from privca.rotation import RolloverStatus, old_hierarchy
from privca.store.records import CertificateRecord
from privca.x509 import profiles
from tests.cli.test_check_scale import assert_certificate_queries_use_an_index
from tests.pg import postgres_cluster, postgres_url  # noqa: F401  (fixtures)

DAY = dt.timedelta(days=1)


def status_by_reading_every_leaf(
    registry: Registry, leaves: Sequence[CertificateRecord], now: dt.datetime
) -> RolloverStatus:
    """What rollover_status computed before: `leaves` is every valid certificate of the
    inventory (`find(status="valid")`), filtered and counted in memory."""
    old_ids = old_hierarchy(registry)
    old = [
        leaf
        for leaf in leaves
        if leaf.issuer_id in old_ids
        and leaf.profile not in (profiles.OCSP_RESPONDER.name, profiles.AUDIT_SIGNER.name)
        and leaf.not_after > now
    ]
    by_issuer = Counter(
        registry.issuer_name_of(registry.by_id(leaf.issuer_id)) or "" for leaf in old
    )
    return RolloverStatus(
        roots=tuple(registry.trusted_roots),
        cross=registry.cross,
        old_leaves=len(old),
        last_old_leaf_expires=max((leaf.not_after for leaf in old), default=None),
        old_leaves_by_issuer=tuple(sorted(by_issuer.items())),
    )


def oracle(ca: CertificateAuthority, now: dt.datetime) -> RolloverStatus:
    return status_by_reading_every_leaf(
        ca.registry, ca.inventory.find(status="valid", now=now), now
    )


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def mixed(
    request: pytest.FixtureRequest, make_ca: Callable[..., CertificateAuthority]
) -> tuple[CertificateAuthority, dt.datetime]:
    """A CA made 30 days ago, rolled over now, with one row of each kind; and now."""
    now = utcnow()
    store_url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else ""
    ca = make_ca(store_url=store_url, permitted=["corp.internal"], now=now - 30 * DAY)
    ca.create_issuer(NewIssuer("team-a", permitted=["a.corp.internal"]))
    ca.create_issuer(NewIssuer("team-b", permitted=["b.corp.internal"]))
    # The old hierarchy: valid under each issuer, with different expiries.
    ca.issue(["m1.corp.internal"], days=40, now=now)
    ca.issue(["m2.corp.internal"], days=90, now=now)
    ca.issue(["a1.a.corp.internal"], issuer="team-a", days=20, now=now)
    ca.issue(["b1.b.corp.internal"], issuer="team-b", days=60, now=now)
    ca.issue(["revoked.corp.internal"], days=300, now=now)
    ca.revoke("revoked.corp.internal", "keyCompromise", now=now)
    ca.issue(["expired.corp.internal"], days=1, now=now - 2 * DAY)
    ca.issue(["tidied.corp.internal"], days=1, now=now - 9 * DAY)
    assert ca.tidy(3 * DAY, now=now) == 1
    # Renewed before the rollover: the successor is old hierarchy too; renewed with a
    # grace period: superseded now, revoked in two days.
    ca.issue(["renewed.corp.internal"], days=30, now=now - 5 * DAY)
    ca.renew("renewed.corp.internal", days=400, now=now - 4 * DAY)
    ca.issue(["grace.corp.internal"], days=30, now=now - 5 * DAY)
    ca.renew("grace.corp.internal", days=200, revoke_old_after=2 * DAY, now=now - DAY)
    ca.issue_ocsp_responder(ca.registry.issuing_of(None), days=500, now=now)
    # The audit key's certificate (a checkpoint makes it): replaced under the new issuing
    # CA at the next checkpoint, never a leaf to renew; counted, it held retirement back.
    assert ca.audit_signer(now).certificate.not_valid_after_utc > now + 365 * DAY
    ca.disable_issuer("team-b")  # keeps its old CA through the rollover
    ca.rollover_root(now=now)
    # The new hierarchy: renewed after the rollover, and new.
    ca.issue(["later.corp.internal"], days=10, now=now)
    ca.renew("later.corp.internal", days=500, now=now)
    ca.issue(["new.corp.internal"], days=700, now=now)
    ca.issue(["new.a.corp.internal"], issuer="team-a", days=700, now=now)
    ca.issue_ocsp_responder(ca.registry.issuing_of(None), days=5, now=now)
    return ca, now


def test_the_aggregate_says_what_reading_every_leaf_said(
    mixed: tuple[CertificateAuthority, dt.datetime],
) -> None:
    ca, now = mixed
    status = ca.rollover_status(now)
    # Not a comparison of two empty answers: m1, m2, the renewed one and grace's
    # successor (main), a1 (team-a), b1 (team-b, whose CA stayed old).
    assert status.old_leaves == 6
    assert dict(status.old_leaves_by_issuer) == {"main": 4, "team-a": 1, "team-b": 1}
    assert status.last_old_leaf_expires is not None
    assert status.last_old_leaf_expires - now == 396 * DAY  # renewed 4 days ago for 400
    # Before the tidied one expired, after the grace's revocation is due, after most
    # expired, after all: each moment as the oracle says.
    for moment in (now, now - 8.5 * DAY, now + 3 * DAY, now + 100 * DAY, now + 800 * DAY):
        assert ca.rollover_status(moment) == oracle(ca, moment), moment
    assert ca.rollover_status(now + 800 * DAY).last_old_leaf_expires is None


def test_per_issuer_counts_equal_the_listing(
    mixed: tuple[CertificateAuthority, dt.datetime],
) -> None:
    """The store's aggregate, over every CA of both hierarchies, against the listing."""
    ca, now = mixed
    every_ca = [a.id for a in ca.registry.authorities]
    for moment in (now, now - 8.5 * DAY, now + 3 * DAY, now + 100 * DAY):
        leaves = ca.inventory.find(status="valid", now=moment)
        counted = Counter(leaf.issuer_id for leaf in leaves)
        last = {leaf.issuer_id: leaf.not_after for leaf in leaves}  # soonest expiry first
        aggregate = ca.inventory.valid_by_issuer(every_ca, moment)
        assert {i: v.count for i, v in aggregate.items()} == dict(counted), moment
        assert {i: v.last_expiry for i, v in aggregate.items()} == last, moment
    assert ca.inventory.valid_by_issuer([], now) == {}


def test_without_a_rollover_nothing_is_counted(
    make_ca: Callable[..., CertificateAuthority],
) -> None:
    ca = make_ca()
    ca.issue(["svc.corp.internal"])
    now = utcnow()
    status = ca.rollover_status(now)
    assert not status.in_transition and status.old_leaves == 0
    assert status == oracle(ca, now)


def test_the_count_is_an_index_search(make_ca: Callable[..., CertificateAuthority]) -> None:
    ca = make_ca()
    for i in range(5):
        ca.issue([f"old{i}.corp.internal"])
    ca.rollover_root()
    ca.issue(["new.corp.internal"])
    assert ca.rollover_status().old_leaves == 5
    assert_certificate_queries_use_an_index(ca, ca.rollover_status, 1)
