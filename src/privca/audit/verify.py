"""`privca audit verify`: recompute the hash chain, check every checkpoint (kept in the
store, or a copy given from elsewhere), and cross-check the inventory against the log.

All of it reads one snapshot of the store, so a change committed meanwhile by another
process is either wholly seen or not at all, and never looks like tampering.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from privca.auditing import (
    Checkpoint,
    IssuerRevocation,
    RevokedSigner,
    check_signed,
    load_checkpoint,
    revoked_signer,
)
from privca.authority import CertificateAuthority
from privca.errors import CheckFailed, InputError
from privca.issuance import public_key_sha256
from privca.registry import CaRole
from privca.store.auditlog import AuditEntry, CertificateFacts, check_chain, der_fingerprint
from privca.store.status import StoredStatus
from privca.store.view import KEY_COMPROMISE, InventoryView

ISSUE_ACTIONS = frozenset({"issued", "imported"})
REVOKE_ACTIONS = frozenset({"revoked", "revocation-reason-changed"})


_LOWER_HEX_DIGEST = re.compile(r"[0-9a-f]{64}")
_SEQ_BYTES = 8
# The top bit of a record's seq (a seq never comes near 2**63): set once a row was seen.
_SEEN = 1 << (8 * _SEQ_BYTES - 1)


_ASKED_BYTES = 8
_UNKNOWN_ASKED = bytes(_ASKED_BYTES)  # an entry that does not say (older or migrated)


def _asked_digest(issuer: object, profile: object, names: object, key: object) -> bytes:
    """8 bytes standing for what a certificate was issued as (issuer, profile, names,
    key hash): computed from the issue entry and from the row, they must be equal. A
    collision would take 2**32 tries of a forger who also controls the log's hashes."""
    text = json.dumps([issuer, profile, names, key], separators=(",", ":"))
    digest = hashlib.blake2b(text.encode(), digest_size=_ASKED_BYTES).digest()
    return digest if digest != _UNKNOWN_ASKED else b"\x01" * _ASKED_BYTES


def _kept_digest(issuer: object, profile: object) -> bytes:
    """8 bytes standing for what a tombstone keeps of what was asked (tidy drops the names
    and the key hash with the DER): the issuer and the profile."""
    return _asked_digest(issuer, profile, None, None)


def _asked_of_entry(entry: AuditEntry) -> tuple[bytes, bytes]:
    """The entry's _asked_digest and _kept_digest (_UNKNOWN_ASKED where it does not say)."""
    detail = entry.details
    fields = (detail.get("issuer"), detail.get("profile"), detail.get("names"))
    key = detail.get("key_sha256")
    if entry.actor == "migration" or None in fields[:2]:
        return _UNKNOWN_ASKED, _UNKNOWN_ASKED
    kept = _kept_digest(*fields[:2])
    if None in fields or not isinstance(key, str):
        return _UNKNOWN_ASKED, kept
    return _asked_digest(*fields, key), kept


def _issue_record(fingerprint: str | None, asked: tuple[bytes, bytes], seq: int) -> bytes:
    """(fingerprint, what was asked for, what a tombstone keeps of it, seq) as one small
    bytes object: a million of them fit in ~0.2 GB (a tuple of strings took ~0.4 GB). A
    fingerprint that is not lowercase hex, as no DER's is, is kept as no bytes, which no
    DER's fingerprint matches; None (an adopted certificate whose file was gone: a
    revocation without a DER) as no bytes too, and such a row is expected to have none."""
    text = fingerprint or ""
    digest = bytes.fromhex(text) if _LOWER_HEX_DIGEST.fullmatch(text) else b""
    return digest + asked[0] + asked[1] + seq.to_bytes(_SEQ_BYTES, "big")


def _fingerprint_of(record: bytes) -> bytes:
    return record[: -_SEQ_BYTES - 2 * _ASKED_BYTES]


def _asked_of(record: bytes) -> bytes:
    return record[-_SEQ_BYTES - 2 * _ASKED_BYTES : -_SEQ_BYTES - _ASKED_BYTES]


def _kept_of(record: bytes) -> bytes:
    return record[-_SEQ_BYTES - _ASKED_BYTES : -_SEQ_BYTES]


def _issue_seq(record: bytes) -> int:
    return int.from_bytes(record[-_SEQ_BYTES:], "big") & ~_SEEN


def _was_seen(record: bytes) -> bool:
    return bool(record[-_SEQ_BYTES] & 0x80)  # _SEEN's bit, in the seq's first byte


def _seen(record: bytes) -> bytes:
    """The record marked as having its row: it replaces the unmarked one in the index, so
    knowing which rows were seen costs no memory beyond the index itself."""
    return record[:-_SEQ_BYTES] + (_issue_seq(record) | _SEEN).to_bytes(_SEQ_BYTES, "big")


def _time_of(value: object) -> dt.datetime | None:
    """A time a detail holds as text (None if it holds none: the check it bounds is left
    out, as for entries older than it)."""
    try:
        return dt.datetime.fromisoformat(str(value)) if value is not None else None
    except ValueError:
        return None


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
    # serial -> the cutoff of the tidy entry that names it (tidy only tombstones rows that
    # expired before it); None when the entry gives none (the migration's list)
    tidied: dict[str, dt.datetime | None] = field(default_factory=dict)
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
    # key hash -> a certificate whose keyCompromise entry names it (entries since the
    # revocation entry carries the key; older ones are found through the row's DER)
    barred: dict[str, str] = field(default_factory=dict)
    # serial -> the successor its latest "superseded" entry names
    superseded: dict[str, str] = field(default_factory=dict)
    # serials revoked "on schedule" that no "revocation-scheduled" entry had scheduled
    unscheduled: set[str] = field(default_factory=set)
    # issuing CA serial -> the reason and date of its "issuing-ca-revoked" entry
    revoked_cas: dict[str, tuple[str, dt.datetime]] = field(default_factory=dict)

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
            if isinstance(fingerprint, str) or entry.action == "imported":
                self.issued[int(entry.serial, 16)] = _issue_record(
                    fingerprint if isinstance(fingerprint, str) else None,
                    _asked_of_entry(entry),
                    entry.seq,
                )
            if detail.get("status") == "revoked":
                self.revoked[entry.serial] = str(detail.get("reason") or "")
                self._note_bar(entry)
        elif entry.action in REVOKE_ACTIONS and entry.serial:
            self.revoked[entry.serial] = str(detail.get("reason") or "")
            self._note_bar(entry)
            if entry.action == "revoked":
                # Entries a migration rebuilt from an older store's events carry that
                # table's times, which privca never promised equal to the row's.
                dated: dt.datetime | None = entry.at
                if entry.actor == "migration":
                    dated = None
                elif detail.get("scheduled"):  # dated at its schedule
                    dated = self.scheduled.get(entry.serial)
                    if dated is None:
                        self.unscheduled.add(entry.serial)
                self.revoked_at.setdefault(entry.serial, dated)
        elif entry.action == "revocation-scheduled" and entry.serial:
            planned = _time_of(detail.get("at"))
            if planned is not None:
                self.scheduled[entry.serial] = planned
        elif entry.action == "issuing-ca-revoked" and entry.serial:
            self.revoked_cas[entry.serial] = (str(detail.get("reason") or ""), entry.at)
        elif entry.action == "superseded" and entry.serial:
            self.superseded[entry.serial] = str(detail.get("by") or "")
        elif entry.action == "tidied":
            cutoff = _time_of(detail.get("expired_before"))
            cutoff = cutoff if cutoff is not None and cutoff.tzinfo is not None else None
            self.tidied.update(dict.fromkeys(_strings(detail.get("serials")), cutoff))
        elif entry.action == "audit-log-started":
            self.tidied.update(dict.fromkeys(_strings(detail.get("tidied"))))

    def _note_bar(self, entry: AuditEntry) -> None:
        key = entry.details.get("key_sha256")
        # An adopted revocation whose certificate file was gone names no key ("").
        if entry.details.get("reason") == KEY_COMPROMISE and isinstance(key, str) and key:
            self.barred.setdefault(key, entry.serial or "")

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
    # The log may well be intact, but what vouched for it was signed under a CA revoked
    # for a compromise: unproven, not shown altered (an operator who has just revoked a
    # CA is not told of tampering that did not happen).
    unproven: bool = False

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
            "unproven": self.unproven,
        }


def _roots(ca: CertificateAuthority) -> list[x509.Certificate]:
    return [r.certificate for r in ca.registry.roots]


_RESIGN = "sign a new one (privca audit checkpoint): it covers every entry before it"


def _checkpoints_problem(
    checkpoints: Sequence[tuple[str, Checkpoint]],
    roots: Sequence[x509.Certificate],
    index: _Index,
    entries: int,
) -> tuple[str, bool] | None:
    """The first checkpoint that does not hold, and whether it only leaves the log
    unproven. One signed under an issuing CA revoked for a compromise proves nothing by
    itself (the key signs any time, over a rewritten chain too); it is let be only when
    one whose key is not suspect covers as many entries or more, since that one vouches
    for the whole chain up to it."""
    revocations = {
        int(serial, 16): IssuerRevocation(reason, at)
        for serial, (reason, at) in index.revoked_cas.items()
    }
    suspect: list[tuple[str, Checkpoint, RevokedSigner]] = []
    vouched = 0  # entries covered by a checkpoint whose key is not suspect
    for label, checkpoint in checkpoints:
        try:
            path = check_signed(checkpoint.statement, checkpoint.signature, roots, checkpoint.at)
        except CheckFailed as exc:
            return f"{label} is not validly signed: {exc.message}", False
        found = _statement_problem(checkpoint, label, roots, entries, index.hashes)
        if found is not None:
            return found, False
        revoked = revoked_signer(path, revocations, checkpoint.at)
        if revoked is not None and revoked.too_late:
            return revoked.problem(label, _RESIGN), True
        if revoked is not None and revoked.compromised:
            suspect.append((label, checkpoint, revoked))
        else:
            vouched = max(vouched, checkpoint.entries)
    for label, checkpoint, revoked in suspect:
        if checkpoint.entries > vouched:
            return revoked.problem(label, _RESIGN), True
    return None


def _statement_problem(
    checkpoint: Checkpoint,
    label: str,
    roots: Sequence[x509.Certificate],
    entries: int,
    hashes: dict[int, str],
) -> str | None:
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

    The checkpoint the home publishes (certs/audit-checkpoint.json) is checked too when
    it is newer than every stored one: a privca.db replaced by an older copy of itself
    (its log shorter, its checkpoints older) contradicts it.

    Raises:
        InputError: a given checkpoint file is not one.
    """
    published: tuple[str, bytes] | None = None
    with contextlib.suppress(FileNotFoundError):
        path = ca.home.audit_checkpoint
        published = (f"the home's published checkpoint ({path})", path.read_bytes())
    return check_audit_log(ca.inventory, _roots(ca), given, published)


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
    published: tuple[str, str | bytes] | None = None,
) -> AuditVerdict:
    """verify_audit's check, over any inventory, with the roots to check checkpoints by
    (`published`: the home's own copy, checked when no stored checkpoint is the same)."""
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
        if published is not None:
            label, text = published
            try:
                copy = load_checkpoint(text, label)
            except InputError as exc:
                return AuditVerdict(0, "", len(kept), 0, f"{label} is unreadable: {exc.message}")
            if all((cp.entries, cp.head) != (copy.entries, copy.head) for _l, cp in stored):
                outside.append((label, copy))
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
        found = _checkpoints_problem([*stored, *outside], roots, index, count)
        if found is not None:
            problem_text, unproven = found
            return replace(verdict(problem_text), unproven=unproven)
        problem: str | None = None
        barred = dict(index.barred)  # key hash -> a certificate the log revoked it with
        for facts in snapshot.certificate_facts():
            certificates += 1
            if problem is None:
                problem = _row_problem(facts, index)
            if index.revoked.get(facts.serial) == KEY_COMPROMISE and facts.der is not None:
                key_hash = _key_hash(facts.der)
                if key_hash is not None:
                    barred.setdefault(key_hash, facts.serial)
        if problem is None:
            problem = snapshot.name_rows_problem()
        if problem is None:
            problem = _revoked_ca_problem(index.revoked_cas, snapshot.revoked_authorities())
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


def _revoked_ca_problem(
    logged: dict[str, tuple[str, dt.datetime]], stored: dict[str, tuple[str, dt.datetime, bool]]
) -> str | None:
    """A CA revocation the log and the authorities table disagree on: one undone, moved or
    weakened lets the root's next CRL drop a compromised CA (or the CA sign again); one
    made by hand never went through privca."""
    for serial, (reason, at) in sorted(logged.items()):
        if serial not in stored:
            return (
                f"the log revoked issuing CA {serial} ({reason}) but its row is no longer "
                "revoked: the revocation was undone, and the root's next CRL would not list it"
            )
        row_reason, row_at, active = stored[serial]
        if row_reason != reason or row_at != at:
            return (
                f"issuing CA {serial}'s row says revoked on {_when(row_at)} "
                f"({row_reason or 'no reason'}), its revocation entry on {_when(at)} "
                f"({reason}): the row was altered"
            )
        if active:
            return (
                f"issuing CA {serial} is revoked but its row makes it active again: the row "
                "was altered, and it would sign"
            )
    unlogged = sorted(set(stored) - set(logged))
    if unlogged:
        return (
            f"issuing CA {unlogged[0]} is revoked in its row, but no entry revoked it: the "
            "row was altered"
        )
    return None


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
        if bytes.fromhex(der_fingerprint(der)) != _fingerprint_of(recorded):
            return (
                f"certificate {serial} does not match the fingerprint its issue entry "
                f"{_issue_seq(recorded)} recorded: the row was altered"
            )
    elif recorded is not None and _fingerprint_of(recorded) and not tidied:
        return f"certificate {serial} lost its DER: the row was altered"
    if recorded is not None:
        found = _recorded_row_problem(facts, recorded, index.tidied.get(serial))
        if found is not None:
            return found
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
    if planned is None and (facts.revoke_after is not None or serial in index.unscheduled):
        return (
            f"certificate {serial} is revoked on a schedule no entry of the log set: the "
            "row was altered"
        )
    if (facts.superseded_by or "") != index.superseded.get(serial, ""):
        return (
            f"certificate {serial} has a successor the log does not record "
            f"({facts.superseded_by or 'none'} for {index.superseded.get(serial) or 'none'}): "
            "the row was altered"
        )
    if planned is not None and facts.revoke_after is None and status != "revoked":
        return (
            f"certificate {serial} had its revocation scheduled for {_when(planned)} (the "
            "log says so) but its row holds neither the schedule nor the revocation: the "
            "schedule was removed"
        )
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


def _recorded_row_problem(
    facts: CertificateFacts, recorded: bytes, tidied_before: dt.datetime | None
) -> str | None:
    """What is wrong with the columns of a row the log issued, against what both carry:
    its status; what it was issued as (the entry's issuer, profile, names and key: a
    tombstone keeps the issuer and profile, an adopted revocation whose file was gone all
    four); its dates (the DER's while it is kept; once tidied, before the cutoff of the
    tidy that dropped it). Lookups, CRLs, OCSP, `check` and `tidy` read these columns, not
    the DER: a moved issuer took a revocation off its CA's CRL (and moved who answers for
    a tombstoned serial), a changed date silenced `check` or let `tidy` drop a live
    revoked certificate."""
    serial = facts.serial
    if facts.status not in (StoredStatus.ISSUED.value, StoredStatus.REVOKED.value):
        return (
            f"certificate {serial} was signed and recorded, but its row says "
            f"'{facts.status}': the row was altered"
        )
    if facts.tidied:
        found = _tombstone_problem(facts, _kept_of(recorded), tidied_before)
    else:
        found = _asked_problem(facts, _asked_of(recorded))
    return found or _dates_problem(facts)


def _asked_problem(facts: CertificateFacts, asked: bytes) -> str | None:
    if asked == _UNKNOWN_ASKED:
        return None
    try:
        names: object = json.loads(facts.names or "")
    except ValueError:
        names = None
    if _asked_digest(facts.issuer_id, facts.profile, names, facts.key_sha256) != asked:
        return (
            f"certificate {facts.serial} no longer has the issuer, profile, names or key its "
            "issue entry recorded: the row was altered"
        )
    return None


def _tombstone_problem(
    facts: CertificateFacts, kept: bytes, tidied_before: dt.datetime | None
) -> str | None:
    if kept != _UNKNOWN_ASKED and _kept_digest(facts.issuer_id, facts.profile) != kept:
        return (
            f"certificate {facts.serial} (tidied) no longer has the issuer or profile its "
            "issue entry recorded: the row was altered"
        )
    after = facts.not_after
    if tidied_before is not None and after is not None and after >= tidied_before:
        return (
            f"certificate {facts.serial} (tidied) expires on {_when(after)}, but the tidy "
            f"that dropped it took only what expired before {_when(tidied_before)}: the "
            "row was altered"
        )
    return None


def _dates_problem(facts: CertificateFacts) -> str | None:
    if facts.der is None or facts.not_before is None or facts.not_after is None:
        return None
    try:
        cert = x509.load_der_x509_certificate(facts.der)
    except ValueError:
        return f"certificate {facts.serial} does not parse: the row was altered"
    # The DER keeps whole seconds; a row may keep the microseconds it was asked for.
    held = (facts.not_before.replace(microsecond=0), facts.not_after.replace(microsecond=0))
    if held != (cert.not_valid_before_utc, cert.not_valid_after_utc):
        return (
            f"certificate {facts.serial} has validity dates its certificate does not say "
            f"({_when(facts.not_after)} for {_when(cert.not_valid_after_utc)}): the row "
            "was altered"
        )
    return None


__all__ = ["AuditVerdict", "verify_audit"]
