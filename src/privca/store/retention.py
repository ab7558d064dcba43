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
from cryptography import x509

from privca.errors import EnvironmentRefused, InputError
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
        sa.select(c.serial, c.names, c.der)
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
                for row in found:
                    _check_expired(str(row.serial), row.der, expired_before)
                serials = [str(row.serial) for row in found]
                # By primary key: certificate_names has no index on serial alone.
                pairs = [
                    {"n": name, "s": str(row.serial)}
                    for row in found
                    for name in dict.fromkeys(json.loads(row.names))
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


def _check_expired(serial: str, der: bytes | None, expired_before: dt.datetime) -> None:
    """Refuse to tombstone a certificate its own DER does not call expired long enough:
    the row was picked by its not_after column, which someone with the database can move
    into the past to have tidy drop a live (revoked) certificate's record for good."""
    if der is None:
        return
    try:
        not_after = x509.load_der_x509_certificate(der).not_valid_after_utc
    except ValueError:
        not_after = None
    if not_after is None or not_after >= expired_before:
        raise EnvironmentRefused(
            f"certificate {serial}'s row says it expired long ago but its certificate "
            "does not: the row was altered, and tidy left the inventory as it was",
            "run `privca audit verify`, and restore the store from a backup",
        )


__all__ = ["TIDY_BATCH", "RetentionWrites"]
