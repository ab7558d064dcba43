"""Retention: `privca tidy` turns certificates that expired long ago into tombstones.

A tombstone is the certificate's row with its serial, issuer, profile, stored status,
validity dates and revocation (date and reason) kept, and its names, subject, public key
hash and DER dropped (`tidied_at` set). Keeping the row in place is what keeps the rule
that a serial is never reused (the primary key still holds it), what `revoke`/OCSP know
about it (a revoked serial stays revoked), and the `issued_total`/`revoked_total`
counters of /metrics monotonic. What goes is what makes the inventory big: the DER and
the name index rows. Pending and failed intents are left alone (no certificate exists).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import sqlalchemy as sa

from privca.errors import InputError
from privca.store.database import Database
from privca.store.schema import certificate_names, certificates
from privca.store.status import StoredStatus

# Rows turned into tombstones per transaction: a writer never holds the lock for long.
TIDY_BATCH = 1000


def _candidates(expired_before: dt.datetime) -> sa.Select[Any]:
    """Expired before the cutoff and not yet tidied: a range of the expiry index (which
    includes the earlier tombstones, read and skipped: one hourly walk, not per request)."""
    c = certificates.c
    return (
        sa.select(c.serial, c.names)
        .where(
            c.not_after < expired_before,
            c.tidied_at.is_(None),
            c.status.in_((StoredStatus.ISSUED.value, StoredStatus.REVOKED.value)),
        )
        .order_by(c.not_after, c.serial)
    )


class RetentionWrites:
    """The writes of `privca tidy`, over the Store's database."""

    database: Database

    def count_tidy(self, expired_before: dt.datetime) -> int:
        """How many certificates `tidy(expired_before, ...)` would turn into tombstones."""
        with self.database.read() as connection:
            count = sa.select(sa.func.count()).select_from(_candidates(expired_before).subquery())
            return int(connection.execute(count).scalar() or 0)

    def tidy(self, expired_before: dt.datetime, now: dt.datetime) -> int:
        """Tombstone every certificate whose notAfter is before `expired_before`, in
        batches of TIDY_BATCH per transaction; returns how many."""
        if expired_before > now:
            raise InputError(
                "tidy only removes certificates that have already expired",
                "give a duration of zero or more, e.g. --expired-for 90d",
            )
        done = 0
        while True:
            with self.database.change(now) as change:
                found = change.execute(_candidates(expired_before).limit(TIDY_BATCH)).all()
                if not found:
                    return done
                rows = [tuple(row) for row in found]
                serials = [str(serial) for serial, _names in rows]
                # By primary key: certificate_names has no index on serial alone.
                pairs = [
                    {"n": name, "s": serial}
                    for serial, names in rows
                    for name in dict.fromkeys(json.loads(names))
                ]
                if pairs:
                    change.execute(
                        certificate_names.delete().where(
                            certificate_names.c.name == sa.bindparam("n"),
                            certificate_names.c.serial == sa.bindparam("s"),
                        ),
                        pairs,
                    )
                change.execute(
                    certificates.update()
                    .where(certificates.c.serial.in_(serials))
                    .values(
                        names="[]",
                        subject="",
                        public_key_sha256="",
                        der=None,
                        tidied_at=now,
                    )
                )
                change.record(
                    "tidied", None, {"serials": serials, "expired_before": str(expired_before)}
                )
            done += len(serials)


__all__ = ["TIDY_BATCH", "RetentionWrites"]
