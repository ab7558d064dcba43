"""`privca audit verify`: recompute the hash chain, check every checkpoint (kept in the
store, or a copy given from elsewhere), and cross-check the inventory against the log.

All of it reads one snapshot of the store, so a change committed meanwhile by another
process is either wholly seen or not at all, and never looks like tampering.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from privca.auditing import Checkpoint, check_signed, load_checkpoint
from privca.authority import CertificateAuthority
from privca.errors import CheckFailed, InputError
from privca.issuance import public_key_sha256
from privca.registry import CaRole
from privca.store.auditlog import AuditEntry, CertificateFacts, check_chain, der_fingerprint
from privca.store.view import KEY_COMPROMISE, InventoryView

ISSUE_ACTIONS = frozenset({"issued", "imported"})
REVOKE_ACTIONS = frozenset({"revoked", "revocation-reason-changed"})


_LOWER_HEX_DIGEST = re.compile(r"[0-9a-f]{64}")
_SEQ_BYTES = 8
# The top bit of a record's seq (a seq never comes near 2**63): set once a row was seen.
_SEEN = 1 << (8 * _SEQ_BYTES - 1)


def _issue_record(fingerprint: str, seq: int) -> bytes:
    """(fingerprint, seq) as one small bytes object: a million of them fit in ~0.2 GB (a
    tuple of two strings took ~0.4 GB). A fingerprint that is not lowercase hex, as no
    DER's is, is kept as no bytes, which no DER's fingerprint matches."""
    digest = bytes.fromhex(fingerprint) if _LOWER_HEX_DIGEST.fullmatch(fingerprint) else b""
    return digest + seq.to_bytes(_SEQ_BYTES, "big")


def _issue_seq(record: bytes) -> int:
    return int.from_bytes(record[-_SEQ_BYTES:], "big") & ~_SEEN


def _was_seen(record: bytes) -> bool:
    return bool(record[-_SEQ_BYTES] & 0x80)  # _SEEN's bit, in the seq's first byte


def _seen(record: bytes) -> bytes:
    """The record marked as having its row: it replaces the unmarked one in the index, so
    knowing which rows were seen costs no memory beyond the index itself."""
    return record[:-_SEQ_BYTES] + (_issue_seq(record) | _SEEN).to_bytes(_SEQ_BYTES, "big")


def _strings(value: object) -> list[str]:
    """A detail's list as strings; anything else (a chain rewritten with matching hashes
    can hold any JSON) as none, which the rows it fails to explain then show."""
    return [str(item) for item in value] if isinstance(value, list) else []


@dataclass
class _Index:
    """What the log says about each certificate, gathered while the chain is walked."""

    # serial (as an int) -> _issue_record(fingerprint, seq) of its issue entry, marked
    # _seen once the inventory's row for it was checked
    issued: dict[int, bytes] = field(default_factory=dict)
    # serial -> the reason of its latest revocation entry ("" when the entry names none)
    revoked: dict[str, str] = field(default_factory=dict)
    tidied: set[str] = field(default_factory=set)
    # serial -> when its first "revoked" entry says it was revoked (the row's date must be
    # it: a later reason change keeps the first date); None when the log cannot say (a
    # scheduled revocation is dated at its schedule, an imported one by its source, a
    # migrated one by an older store's events)
    revoked_at: dict[str, dt.datetime | None] = field(default_factory=dict)
    # serial -> the time its latest "revocation-scheduled" entry set (schedules only move
    # earlier, each with an entry): a pending schedule, or a carried-out one's date
    scheduled: dict[str, dt.datetime] = field(default_factory=dict)
    hashes: dict[int, str] = field(default_factory=dict)  # at the checkpoints' seqs
    # the first entry whose stored serial is not as privca writes it: the walk stops there
    misstored: AuditEntry | None = None

    def walk(self, entries: Iterable[AuditEntry], wanted: set[int]) -> Iterator[AuditEntry]:
        for entry in entries:
            if entry.serial_form is not None:
                self.misstored = entry
                return
            yield entry
            # Reached only when check_chain asks for the next entry: this one held, so
            # its seq and detail are what was hashed (a negative seq never gets here).
            if entry.seq in wanted:
                self.hashes[entry.seq] = entry.hash
            self._note(entry)

    def _note(self, entry: AuditEntry) -> None:
        detail = entry.details
        if entry.action in ISSUE_ACTIONS and entry.serial:
            fingerprint = detail.get("fingerprint")
            if isinstance(fingerprint, str):
                self.issued[int(entry.serial, 16)] = _issue_record(fingerprint, entry.seq)
            if detail.get("status") == "revoked":
                self.revoked[entry.serial] = str(detail.get("reason") or "")
        elif entry.action in REVOKE_ACTIONS and entry.serial:
            self.revoked[entry.serial] = str(detail.get("reason") or "")
            if entry.action == "revoked":
                # Entries a migration rebuilt from an older store's events carry that
                # table's times, which privca never promised equal to the row's.
                dated: dt.datetime | None = entry.at
                if entry.actor == "migration":
                    dated = None
                elif detail.get("scheduled"):  # dated at its schedule
                    dated = self.scheduled.get(entry.serial)
                self.revoked_at.setdefault(entry.serial, dated)
        elif entry.action == "revocation-scheduled" and entry.serial:
            with contextlib.suppress(TypeError, ValueError):
                self.scheduled[entry.serial] = dt.datetime.fromisoformat(str(detail.get("at")))
        elif entry.action == "tidied":
            self.tidied.update(_strings(detail.get("serials")))
        elif entry.action == "audit-log-started":
            self.tidied.update(_strings(detail.get("tidied")))

    def first_unseen(self) -> int | None:
        """The lowest serial the log issued whose row the inventory did not have."""
        unseen = (s for s, record in self.issued.items() if not record[-_SEQ_BYTES] & 0x80)
        return min(unseen, default=None)


@dataclass(frozen=True)
class AuditVerdict:
    entries: int
    head: str
    checkpoints: int
    certificates: int
    problem: str | None

    @property
    def intact(self) -> bool:
        return self.problem is None

    def document(self) -> dict[str, object]:
        return {
            "intact": self.intact,
            "entries": self.entries,
            "head": self.head,
            "checkpoints": self.checkpoints,
            "certificates": self.certificates,
            "problem": self.problem,
        }


def _roots(ca: CertificateAuthority) -> list[x509.Certificate]:
    return [r.certificate for r in ca.registry.roots]


def _checkpoint_problem(
    checkpoint: Checkpoint,
    label: str,
    roots: Sequence[x509.Certificate],
    entries: int,
    hashes: dict[int, str],
) -> str | None:
    try:
        check_signed(checkpoint.statement, checkpoint.signature, roots, checkpoint.at)
    except CheckFailed as exc:
        return f"{label} is not validly signed: {exc.message}"
    if checkpoint.root_sha256 not in {der_fingerprint(r.public_bytes(Encoding.DER)) for r in roots}:
        return f"{label} names a root that is not this CA's"
    if checkpoint.entries > entries:
        return (
            f"{label} covers {checkpoint.entries} entries but the log has only {entries}: "
            f"entries after {entries} were deleted"
        )
    if checkpoint.entries == 0:
        return None
    if hashes.get(checkpoint.entries) != checkpoint.head:
        return (
            f"{label} contradicts the log: entry {checkpoint.entries} is not the one it signed "
            "(the chain up to it was rewritten)"
        )
    return None


def verify_audit(
    ca: CertificateAuthority, given: Sequence[tuple[str, str | bytes]] = ()
) -> AuditVerdict:
    """Check the log, its checkpoints (kept ones and `given` (label, text) copies) and the
    inventory against it; the verdict names the first problem.

    Raises:
        InputError: a given checkpoint file is not one.
    """
    return check_audit_log(ca.inventory, _roots(ca), given)


def verify_audit_of_store(inventory: InventoryView) -> AuditVerdict:
    """verify_audit for a store no home opens yet (a backup being restored): the roots
    that vouch for its checkpoints are the ones it records."""
    roots = [
        x509.load_der_x509_certificate(record.der)
        for record in inventory.authorities()
        if record.role == CaRole.ROOT
    ]
    return check_audit_log(inventory, roots)


def check_audit_log(
    inventory: InventoryView,
    roots: Sequence[x509.Certificate],
    given: Sequence[tuple[str, str | bytes]] = (),
) -> AuditVerdict:
    """verify_audit's check, over any inventory, with the roots to check checkpoints by."""
    outside = [(label, load_checkpoint(text, label)) for label, text in given]
    index = _Index()
    certificates = 0
    with inventory.audit_snapshot() as snapshot:
        kept = snapshot.checkpoints()
        stored: list[tuple[str, Checkpoint]] = []
        for row in kept:
            label = f"stored checkpoint at entry {row.seq}"
            try:
                stored.append((label, load_checkpoint(row.document, label)))
            except InputError as exc:
                return AuditVerdict(0, "", len(kept), 0, f"{label} is unreadable: {exc.message}")
        wanted = {cp.entries for _label, cp in [*stored, *outside]}
        count, head, chain_break = check_chain(index.walk(snapshot.entries(), wanted))
        checked = len(stored) + len(outside)

        def verdict(problem: str | None) -> AuditVerdict:
            return AuditVerdict(count, head, checked, certificates, problem)

        if chain_break is not None:
            return verdict(chain_break.problem)
        if index.misstored is not None:
            entry = index.misstored
            return verdict(
                f"entry {entry.seq} ({entry.action}) has its serial stored {entry.serial_form}, "
                "as privca never writes one: the row was altered"
            )
        recorded = snapshot.stored_head()
        if recorded is None and count:
            return verdict(
                "the head of the log is gone (its row was deleted): whether entries after "
                f"entry {count} were deleted too cannot be told without a checkpoint"
            )
        if recorded is not None and recorded != (count, head):
            if recorded[0] > count:
                return verdict(
                    f"entry {count + 1} is missing (deleted): the head records {recorded[0]} "
                    f"entries, the log has {count}"
                )
            return verdict(f"the head of the log does not match entry {count}")
        for label, checkpoint in [*stored, *outside]:
            found = _checkpoint_problem(checkpoint, label, roots, count, index.hashes)
            if found is not None:
                return verdict(found)
        problem: str | None = None
        barred: dict[str, str] = {}  # key hash -> a certificate the log revoked it with
        for facts in snapshot.certificate_facts():
            certificates += 1
            if problem is None:
                problem = _row_problem(facts, index)
            if index.revoked.get(facts.serial) == KEY_COMPROMISE and facts.der is not None:
                key_hash = _key_hash(facts.der)
                if key_hash is not None:
                    barred.setdefault(key_hash, facts.serial)
        if problem is None and barred:
            still_barred = snapshot.barred(barred)
            lifted = [s for key_hash, s in barred.items() if key_hash not in still_barred]
            if lifted:
                problem = (
                    f"the key of certificate {lifted[0]} was revoked for keyCompromise (the "
                    "log says so) but the store no longer bars it: the bar was lifted, and "
                    "the key can be certified again"
                )
        if problem is None and (serial := index.first_unseen()) is not None:
            problem = (
                f"certificate {serial:x} (entry {_issue_seq(index.issued[serial])}) is gone "
                "from the inventory: its row was deleted"
            )
        return verdict(problem)


def _when(at: dt.datetime | None) -> str:
    return "no date" if at is None else at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _key_hash(der: bytes) -> str | None:
    """The key hash the store bars a key by, from a certificate's DER (None if it does not
    parse: the row's fingerprint check names that)."""
    try:
        return public_key_sha256(x509.load_der_x509_certificate(der).public_key())
    except ValueError:
        return None


def _row_problem(facts: CertificateFacts, index: _Index) -> str | None:
    """What is wrong with one certificate row, marking its issue record seen."""
    if facts.serial_form is not None:
        return (
            f"a certificate row has its serial stored {facts.serial_form}, as privca never "
            "writes one: the row was inserted or altered"
        )
    serial, status, der, tidied = facts.serial, facts.status, facts.der, facts.tidied
    number = int(serial, 16)
    recorded = index.issued.get(number)
    if recorded is not None:
        if _was_seen(recorded):
            return f"certificate {serial} has a second row in the inventory: a row was copied"
        index.issued[number] = _seen(recorded)
    if der is not None:
        if recorded is None:
            return f"certificate {serial} has no issue entry in the audit log"
        if bytes.fromhex(der_fingerprint(der)) != recorded[:-_SEQ_BYTES]:
            return (
                f"certificate {serial} does not match the fingerprint its issue entry "
                f"{_issue_seq(recorded)} recorded: the row was altered"
            )
    elif recorded is not None and not tidied:
        return f"certificate {serial} lost its DER: the row was altered"
    if status == "revoked" and serial not in index.revoked:
        return f"certificate {serial} is revoked but no entry of the log records it"
    if status != "revoked" and serial in index.revoked:
        return (
            f"certificate {serial} was revoked (the log says so) but its row is not: "
            "the revocation was undone in the store"
        )
    logged = index.revoked.get(serial)
    if status == "revoked" and logged and facts.reason != logged:
        held = f"'{facts.reason}'" if facts.reason else "no reason"
        return (
            f"certificate {serial} is revoked for {held} but the log recorded "
            f"'{logged}': the row was altered"
        )
    planned = index.scheduled.get(serial)
    if facts.revoke_after is not None and planned is not None and facts.revoke_after != planned:
        return (
            f"certificate {serial} has its revocation scheduled for {_when(facts.revoke_after)} "
            f"but the log scheduled it for {_when(planned)}: the row was altered"
        )
    logged_at = index.revoked_at.get(serial)
    if status == "revoked" and logged_at is not None and facts.revoked_at != logged_at:
        return (
            f"certificate {serial} is revoked as of {_when(facts.revoked_at)} but the log "
            f"recorded its revocation at {_when(logged_at)}: the row was altered"
        )
    if tidied and serial not in index.tidied:
        return f"certificate {serial} was tidied but no tidy entry names it"
    return None


__all__ = ["AuditVerdict", "verify_audit"]
