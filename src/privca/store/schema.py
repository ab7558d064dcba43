"""Table definitions. Alembic migrations under migrations/ create and evolve them."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from privca.store.columns import CompressedDer, HexBytes, Instant, PackedDetail, UtcDateTime

# The Alembic head this code expects; a test pins it to the migration scripts.
SCHEMA_REVISION = "0016_ca_revocation_clock"

metadata = sa.MetaData()

# Random values (key hashes, serials) are indexed by their first 8 bytes, not all of them
# (migration 0012): 8 random bytes single out one row among billions, at a third of the
# index's size for a hash. A query compares the prefix (to seek) and then the whole value
# (PrefixIndex.match), so a shared prefix costs a few more rows read, never a wrong row. An
# index on an expression serves only a query that spells the same expression, hence SQL
# text, the same on SQLite and PostgreSQL.
PREFIX_BYTES = 8


@dataclass(frozen=True)
class PrefixIndex:
    """An index of a bytes column's first PREFIX_BYTES, and the condition that seeks it."""

    name: str
    table: str
    column: str

    def index(self) -> sa.Index:
        return sa.Index(self.name, sa.text(f"substr({self.column}, 1, {PREFIX_BYTES})"))

    def match(self, column: sa.ColumnElement[str], value: str) -> sa.ColumnElement[bool]:
        """`column == value` (a hex string), seeking this index."""
        stored = bytes.fromhex(value if len(value) % 2 == 0 else "0" + value)
        prefix = sa.literal_column(
            f"substr({self.table}.{self.column}, 1, {PREFIX_BYTES})", sa.LargeBinary
        )
        # The whole value through a CAST: given `column = ?`, SQLite propagates the value
        # into substr(column, ...), which then no longer matches the index's expression.
        whole = sa.cast(column, sa.LargeBinary) == sa.literal(stored, sa.LargeBinary)
        return sa.and_(prefix == stored[:PREFIX_BYTES], whole)


KEY_HASH_INDEX = PrefixIndex("ix_certificates_public_key", "certificates", "public_key_sha256")
AUDIT_SERIAL_INDEX = PrefixIndex("ix_audit_log_serial", "audit_log", "serial")


authorities = sa.Table(
    "authorities",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("role", sa.String(16), nullable=False),  # root | issuing | cross
    sa.Column("common_name", sa.String(255), nullable=False),
    sa.Column("serial", sa.String(40), nullable=False),
    sa.Column("der", sa.LargeBinary, nullable=False),
    sa.Column("key_ref", sa.String(1024), nullable=False),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("not_after", UtcDateTime(), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    # The named issuer an issuing CA certificate belongs to (migration 0011_issuers);
    # NULL for roots and cross-certificates.
    sa.Column("issuer", sa.String(63), nullable=True),
    # Set when the CA certificate is revoked (migration 0015_ca_revocation): the root that
    # signed it lists it on its CRL. Only issuing CA certificates are ever revoked.
    sa.Column("revoked_at", UtcDateTime(), nullable=True),
    sa.Column("revocation_reason", sa.String(32), nullable=True),
)

# Named issuers: each a lineage of issuing CA certificates under the root (authorities
# rows of role issuing carrying its name). Subtrees and profiles are JSON lists of text;
# empty permitted: the home's policy; empty profiles: every leaf profile.
issuers = sa.Table(
    "issuers",
    metadata,
    sa.Column("name", sa.String(63), primary_key=True),
    sa.Column("disabled", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("is_default", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("permitted", sa.Text, nullable=False, server_default="[]"),
    sa.Column("excluded", sa.Text, nullable=False, server_default="[]"),
    sa.Column("profiles", sa.Text, nullable=False, server_default="[]"),
    sa.Column("created_at", UtcDateTime(), nullable=False),
)

certificates = sa.Table(
    "certificates",
    metadata,
    # Lowercase hex, no leading zeros: unique across the CA, never reused. The compact
    # types (store/columns.py, migration 0011) keep a million rows under a gigabyte.
    sa.Column("serial", HexBytes(serial=True), primary_key=True),
    sa.Column("issuer_id", sa.Integer, sa.ForeignKey("authorities.id"), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # pending | issued | failed | revoked
    sa.Column("profile", sa.String(32), nullable=False),
    sa.Column("names", sa.Text, nullable=False),  # JSON list of strings
    # NULL when it is "CN=" + the first name, as privca makes it (store/names.py)
    sa.Column("subject", sa.String(1024), nullable=True),
    sa.Column("not_before", Instant(), nullable=False),
    sa.Column("not_after", Instant(), nullable=False),
    sa.Column("public_key_sha256", HexBytes(serial=False), nullable=False),
    sa.Column("der", CompressedDer(), nullable=True),
    sa.Column("created_at", Instant(), nullable=False),
    sa.Column("issued_at", Instant(), nullable=True),
    sa.Column("revoked_at", Instant(), nullable=True),
    sa.Column("revocation_reason", sa.String(32), nullable=True),
    sa.Column("superseded_by", HexBytes(serial=True), nullable=True),
    # When set, the certificate is revoked (superseded) at that time: renew's grace period.
    sa.Column("revoke_after", Instant(), nullable=True),
    # Set by `privca tidy`: the certificate expired long ago and only its tombstone is left
    # (serial, issuer, status, dates, revocation); names, subject, key hash and DER are gone.
    sa.Column("tidied_at", Instant(), nullable=True),
    sa.Index("ix_certificates_not_after", "not_after"),
    KEY_HASH_INDEX.index(),  # lookups by key hash: KEY_HASH_INDEX.match
    # Only the few rows with a scheduled revocation (migration 0011): most have none.
    sa.Index(
        "ix_certificates_revoke_after",
        "revoke_after",
        sqlite_where=sa.text("revoke_after IS NOT NULL"),
        postgresql_where=sa.text("revoke_after IS NOT NULL"),
    ),
    # /metrics (migration 0006_serve_indexes)
    sa.Index(
        "ix_certificates_metrics", "issuer_id", "profile", "status", "not_after", "superseded_by"
    ),
    # also serves (issuer_id, status) alone, so that index went (migration 0011)
    sa.Index("ix_certificates_issuer_status_not_after", "issuer_id", "status", "not_after"),
)

# Each name of each certificate, so a lookup by name is an index seek (migration 0007).
# The JSON `certificates.names` keeps the order the certificate lists them in.
certificate_names = sa.Table(
    "certificate_names",
    metadata,
    sa.Column("name", sa.String(1024), primary_key=True),
    sa.Column(
        "serial",
        HexBytes(serial=True),
        sa.ForeignKey("certificates.serial", ondelete="CASCADE"),
        primary_key=True,
    ),
    # The rows are their primary key: no rowid table beside it on SQLite (a third less).
    sqlite_with_rowid=False,
)

# One row per CA that publishes CRLs: the last CRLNumber used, so numbers only grow,
# whatever the clock does and however many processes or replicas publish.
crl_state = sa.Table(
    "crl_state",
    metadata,
    sa.Column("issuer_id", sa.Integer, sa.ForeignKey("authorities.id"), primary_key=True),
    sa.Column("number", sa.BigInteger, nullable=False),
    sa.Column("this_update", UtcDateTime(), nullable=False),
    sa.Column("next_update", UtcDateTime(), nullable=False),
    # The newest CRL a server signed for this CA, and the revocation fingerprint it was
    # built against (migration 0013_crl_published): replicas serve it when it is newer
    # than their own, so CRL numbers never go backwards across them. NULL until then.
    sa.Column("published_number", sa.BigInteger, nullable=True),
    sa.Column("published_der", sa.LargeBinary, nullable=True),
    sa.Column("published_basis", sa.String(255), nullable=True),
)

# Public keys revoked for keyCompromise: never certified again.
blocked_keys = sa.Table(
    "blocked_keys",
    metadata,
    sa.Column("public_key_sha256", sa.String(64), primary_key=True),
    sa.Column("serial", sa.String(40), nullable=True),
    sa.Column("at", UtcDateTime(), nullable=False),
)

# The condition of the partial index below; a query repeats it word for word, so that
# SQLite (which does not reason about bound values) uses the index.
SETTINGS_CHANGED = "action = 'settings-changed'"

# The audit log (store/auditlog.py owns its encoding and hashing): every change of state,
# appended in the change's transaction, each entry chained to the one before by its hash.
# It replaced the `events` table (migration 0009_audit_log): one record of what happened.
audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column(
        "seq",
        sa.BigInteger().with_variant(sa.Integer, "sqlite"),
        primary_key=True,
        autoincrement=False,
    ),
    # Compact forms (store/columns.py, migrations 0011 and 0012); the records keep hex,
    # datetimes and the detail's canonical text, so what is hashed does not depend on how
    # it is stored.
    sa.Column("at", Instant(), nullable=False),
    sa.Column("action", sa.String(48), nullable=False),
    sa.Column("actor", sa.String(255), nullable=False),
    sa.Column("serial", HexBytes(serial=True), nullable=True),
    sa.Column("detail", PackedDetail(), nullable=False),  # canonical JSON object, packed
    # The entry's own hash. The previous entry's hash, which the entry's hash covers, is
    # not stored again (migration 0012): it is the hash of the row before.
    sa.Column("hash", HexBytes(serial=False), nullable=False),
    AUDIT_SERIAL_INDEX.index(),  # `audit log --serial`: AUDIT_SERIAL_INDEX.match
    # No index on `at`: `audit log --since` walks the log in seq order anyway, and the
    # backup summary's newest time is one scan per backup (migration 0011 dropped it).
    # The one query by action is the last settings change, on every start: an index of
    # those few rows, not of every action (migration 0012).
    sa.Index(
        "ix_audit_log_settings",
        "seq",
        sqlite_where=sa.text(SETTINGS_CHANGED),
        postgresql_where=sa.text(SETTINGS_CHANGED),
    ),
)

# The head of the chain, one row (id 1): locked by each append so writers stay linear.
audit_head = sa.Table(
    "audit_head",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("hash", HexBytes(serial=False), nullable=False),
)

# Signed checkpoints (privca/auditing.py): the statement as signed and its CMS signature.
audit_checkpoints = sa.Table(
    "audit_checkpoints",
    metadata,
    sa.Column(
        "seq",
        sa.BigInteger().with_variant(sa.Integer, "sqlite"),
        primary_key=True,
        autoincrement=False,
    ),
    sa.Column("head_hash", sa.String(64), nullable=False),
    sa.Column("at", UtcDateTime(), nullable=False),
    sa.Column("document", sa.Text, nullable=False),  # the checkpoint file's JSON
)

# ACME (store/acme.py holds their queries) ------------------------------------------------

acme_accounts = sa.Table(
    "acme_accounts",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    # RFC 7638 thumbprint (base64url SHA-256) of the account key: one account per key.
    sa.Column("thumbprint", sa.String(64), nullable=False),
    sa.Column("jwk", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # valid | deactivated | revoked
    sa.Column("contact", sa.Text, nullable=False),  # JSON list
    sa.Column("eab_kid", sa.String(64), nullable=True),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Index("ux_acme_accounts_thumbprint", "thumbprint", unique=True),
    sa.Index("ix_acme_accounts_eab_kid", "eab_kid"),
)

acme_orders = sa.Table(
    "acme_orders",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("account_id", sa.String(64), sa.ForeignKey("acme_accounts.id"), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("profile", sa.String(32), nullable=False),
    sa.Column("identifiers", sa.Text, nullable=False),  # JSON [{"type", "value"}]
    sa.Column("not_before", UtcDateTime(), nullable=True),
    sa.Column("not_after", UtcDateTime(), nullable=True),
    sa.Column("expires", UtcDateTime(), nullable=False),
    sa.Column("error", sa.Text, nullable=True),  # JSON problem document
    sa.Column("certificate_serial", sa.String(40), nullable=True),
    sa.Column("replaces", sa.String(255), nullable=True),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    # The issuer whose directory the order came through (NULL: the default issuer).
    sa.Column("issuer", sa.String(63), nullable=True),
    sa.Index("ix_acme_orders_account_created", "account_id", "created_at"),
    # The hourly purge's (migration 0014): only orders that are not valid, by expiry.
    sa.Index(
        "ix_acme_orders_unfinished_expires",
        "expires",
        sqlite_where=sa.text("status != 'valid'"),
        postgresql_where=sa.text("status != 'valid'"),
    ),
)

acme_authorizations = sa.Table(
    "acme_authorizations",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("order_id", sa.String(64), sa.ForeignKey("acme_orders.id"), nullable=False),
    sa.Column("account_id", sa.String(64), nullable=False),
    sa.Column("identifier_type", sa.String(8), nullable=False),  # dns | ip
    sa.Column("identifier_value", sa.String(255), nullable=False),
    sa.Column("wildcard", sa.Boolean, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("expires", UtcDateTime(), nullable=False),
    sa.Index("ix_acme_authorizations_order", "order_id"),
)

acme_challenges = sa.Table(
    "acme_challenges",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column(
        "authorization_id",
        sa.String(64),
        sa.ForeignKey("acme_authorizations.id"),
        nullable=False,
    ),
    sa.Column("type", sa.String(16), nullable=False),
    sa.Column("token", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("validated", UtcDateTime(), nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Index("ix_acme_challenges_authorization", "authorization_id"),
)

# A nonce proves itself (acme/nonces.py: expiry and HMAC under the shared key), so handing
# one out writes nothing; spending one inserts it here, and the primary key makes a second
# spend, on any replica, fail. Rows go once the nonce has expired anyway.
acme_spent_nonces = sa.Table(
    "acme_spent_nonces",
    metadata,
    sa.Column("value", sa.String(64), primary_key=True),
    sa.Column("expires", UtcDateTime(), nullable=False),
    sa.Index("ix_acme_spent_nonces_expires", "expires"),
)

# The HMAC key of the nonces, one row, shared by every replica through the store.
acme_nonce_keys = sa.Table(
    "acme_nonce_keys",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("secret", sa.LargeBinary(64), nullable=False),
    sa.Column("created", UtcDateTime(), nullable=False),
)

acme_eab_keys = sa.Table(
    "acme_eab_keys",
    metadata,
    sa.Column("kid", sa.String(64), primary_key=True),
    # The HMAC key must be kept to verify bindings, so it is kept sealed (keys/sealing.py):
    # a copy of the database or a dump does not reveal it. Shown to the operator once.
    sa.Column("sealed_hmac_key", sa.Text, nullable=True),
    # Only keys made before migration 0005, until privca seals them: see seal_plaintext_keys.
    sa.Column("plaintext_hmac_key", sa.String(128), nullable=True),
    sa.Column("label", sa.String(255), nullable=False),
    sa.Column("profile", sa.String(32), nullable=True),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("revoked_at", UtcDateTime(), nullable=True),
    sa.Column("accounts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("max_accounts", sa.Integer, nullable=False, server_default="1"),
    # The only issuer its accounts may order from, when set (migration 0011_issuers).
    sa.Column("issuer", sa.String(63), nullable=True),
)
