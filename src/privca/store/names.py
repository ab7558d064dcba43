"""The one place certificate rows enter the inventory, each with its names indexed.

`certificates.names` keeps a certificate's names as a JSON list, in their order;
`certificate_names` holds the same names one per row, so a lookup by name is an index
seek. Every insertion goes through `insert_certificates` so the two never disagree.

The subject privca gives a certificate is "CN=" + its first name; such a subject is not
stored (NULL) but rebuilt from the names when read (`subject_of`): a few dozen bytes per
row of a million. Any other subject, an empty one included, is stored as it is.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from privca.store.database import Change
from privca.store.schema import certificate_names, certificates


def _default_subject(names: Sequence[str]) -> str | None:
    return "CN=" + names[0] if names else None


def stored_subject(subject: str, names: Sequence[str]) -> str | None:
    """What the `subject` column holds: NULL for the subject `subject_of` rebuilds."""
    return None if subject == _default_subject(names) else subject


def subject_of(stored: str | None, names: Sequence[str]) -> str:
    """The subject of a row, from its `subject` column and its names."""
    return stored if stored is not None else _default_subject(names) or ""


def insert_certificates(change: Change, rows: Sequence[dict[str, object]]) -> None:
    """Insert certificate rows (`names` a JSON list) and one name row per distinct name."""
    if not rows:
        return
    names = [json.loads(str(row["names"])) for row in rows]
    change.execute(
        certificates.insert(),
        [
            {**row, "subject": stored_subject(str(row["subject"]), listed)}
            for row, listed in zip(rows, names, strict=True)
        ],
    )
    name_rows = [
        {"name": name, "serial": row["serial"]}
        for row, listed in zip(rows, names, strict=True)
        for name in dict.fromkeys(listed)
    ]
    if name_rows:
        change.execute(certificate_names.insert(), name_rows)


__all__ = ["insert_certificates", "stored_subject", "subject_of"]
