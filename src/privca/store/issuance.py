"""Issuance in the inventory: two commits around every signature.

`reserve` records the intent (serial, names, profile) before the CA key signs, `complete`
records the signed certificate before anything is returned, `abandon` marks the intents
whose signing failed. Serials are random and unique by the primary key, never reused.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable, Sequence

import sqlalchemy as sa

from privca.errors import StoreUnavailable
from privca.store.auditlog import der_fingerprint
from privca.store.database import Database, driver_message
from privca.store.names import insert_certificates
from privca.store.records import Intent
from privca.store.schema import certificates
from privca.store.serials import random_serial
from privca.store.status import StoredStatus
from privca.store.view import InventoryView
from privca.x509.encoding import serial_hex

SERIAL_RETRIES = 5


def _pending_row(serial: int, intent: Intent, now: dt.datetime) -> dict[str, object]:
    return {
        "serial": serial_hex(serial),
        "issuer_id": intent.issuer_id,
        "status": StoredStatus.PENDING.value,
        "profile": intent.profile,
        "names": json.dumps(list(intent.names)),
        "subject": intent.subject,
        "not_before": intent.not_before,
        "not_after": intent.not_after,
        "public_key_sha256": intent.public_key_sha256,
        "der": None,
        "created_at": now,
    }


def _asked_for(intent: Intent) -> dict[str, object]:
    """What an intent asked for, as an `issued` entry's detail carries it."""
    return {
        "issuer": intent.issuer_id,
        "profile": intent.profile,
        "names": list(intent.names),
        "key_sha256": intent.public_key_sha256,
    }


# Built once: a statement built per call costs SQLAlchemy a new cache key every time.
_COMPLETE = (
    certificates.update()
    .where(certificates.c.serial == sa.bindparam("s"))
    .values(
        status=StoredStatus.ISSUED.value,
        der=sa.bindparam("d"),
        issued_at=sa.bindparam("now"),
    )
)


class IssuanceWrites:
    """The writes of issuance, over the Store's database."""

    database: Database

    def reserve(
        self,
        intents: Sequence[Intent],
        now: dt.datetime,
        serial_source: Callable[[], int] = random_serial,
    ) -> list[int]:
        """Commit one pending row per intent and return their serials.

        A serial collision (the primary key) retries the whole batch with fresh serials.
        """
        for _attempt in range(SERIAL_RETRIES):
            serials = [serial_source() for _ in intents]
            if len(set(serials)) != len(serials):
                continue
            rows = [_pending_row(s, i, now) for s, i in zip(serials, intents, strict=True)]
            try:
                # Not flushed to disk: nothing is signed under these serials until
                # `complete`'s durable commit, which flushes this one with it (the WAL is
                # one sequence); a reservation lost in a power cut lost no certificate.
                with self.database.change(now, durable=False) as change:
                    insert_certificates(change, rows)
            except sa.exc.IntegrityError as exc:
                if InventoryView(self.database).any_serial_taken(serials):
                    continue  # a collision: draw new serials
                raise StoreUnavailable(
                    f"the inventory refused the new records: {driver_message(exc)}",
                    "is the issuing CA recorded in this store? (privca doctor)",
                ) from exc
            return serials
        raise StoreUnavailable(
            f"could not find an unused serial in {SERIAL_RETRIES} attempts",
            "this should be impossible with 127 random bits; check the serial source",
        )

    def complete(
        self,
        signed: Iterable[tuple[int, bytes]],
        now: dt.datetime,
        intents: Sequence[Intent],
    ) -> None:
        """Record the signed certificates; only then may they be returned or written.

        `intents` are those `reserve` recorded for `signed`, in the same order: the audit
        entries take names, profile and key from them (the caller holds them; reading the
        rows back would cost a query per issuance)."""
        rows = [(serial_hex(serial), der) for serial, der in signed]
        if not rows:
            return
        if len(intents) != len(rows):
            raise ValueError("complete: one intent per signed certificate")
        params = [{"s": hex_serial, "d": der, "now": now} for hex_serial, der in rows]
        with self.database.change(now) as change:
            change.execute(_COMPLETE, params)
            asked = [_asked_for(intent) for intent in intents]
            # The audit entries of signed certificates: what was asked for and the
            # fingerprint of the DER that was handed out.
            change.record_all(
                ("issued", hex_serial, {"fingerprint": der_fingerprint(der)} | detail)
                for (hex_serial, der), detail in zip(rows, asked, strict=True)
            )

    def abandon(self, serials: Iterable[int], now: dt.datetime, reason: str) -> None:
        """Mark intents whose signing failed; their serials are never reused."""
        hexes = [serial_hex(s) for s in serials]
        if not hexes:
            return
        with self.database.change(now) as change:
            change.execute(
                certificates.update()
                .where(
                    certificates.c.serial.in_(hexes),
                    certificates.c.status == StoredStatus.PENDING.value,
                )
                .values(status=StoredStatus.FAILED.value)
            )
            change.record_all(("failed", h, {"reason": reason}) for h in hexes)

    def mark_superseded(self, old: int, new: int, now: dt.datetime) -> bool:
        """Record that `new` replaces `old` (renew, ACME `replaces`, serve's own) unless
        something replaced `old` already: one conditional UPDATE, so of two processes
        renewing one certificate at once only one marks it. Whether it was marked now."""
        c = certificates.c
        with self.database.change(now) as change:
            marked = change.execute(
                certificates.update()
                .where(c.serial == serial_hex(old), c.superseded_by.is_(None))
                .values(superseded_by=serial_hex(new))
            ).rowcount
            if marked:
                change.record("superseded", old, {"by": serial_hex(new)})
        return bool(marked)


__all__ = ["SERIAL_RETRIES", "IssuanceWrites", "random_serial"]
