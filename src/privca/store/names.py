"""The one place certificate rows enter the inventory, each with its names indexed.

`certificates.names` keeps a certificate's names as a JSON list, in their order;
`certificate_names` holds the same names one per row, so a lookup by name is an index
seek. Every insertion goes through `insert_certificates` so the two never disagree.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from privca.store.database import Change
from privca.store.schema import certificate_names, certificates


def insert_certificates(change: Change, rows: Sequence[dict[str, object]]) -> None:
    """Insert certificate rows (`names` a JSON list) and one name row per distinct name."""
    if not rows:
        return
    change.execute(certificates.insert(), list(rows))
    name_rows = [
        {"name": name, "serial": row["serial"]}
        for row in rows
        for name in dict.fromkeys(json.loads(str(row["names"])))
    ]
    if name_rows:
        change.execute(certificate_names.insert(), name_rows)


__all__ = ["insert_certificates"]
