"""The SQL implementation of privca.acme.repository.AcmeRepository, in the CA's database.

sql.py holds AcmeStore (accounts, orders, authorizations, challenges, with the parts below
mixed in), nonces.py the replay nonces, eab.py the external account binding keys, and
rows.py what they share: the row codecs, the row lookup and transitions as SQL.

The row values and statuses are privca.acme's (repository.py, state.py): the one place
this package imports from a higher layer, as an implementation imports the protocol it
implements (pyproject.toml's import contracts name exactly these imports).
"""

from privca.store.acme.rows import Sealer
from privca.store.acme.sql import AcmeStore

__all__ = ["AcmeStore", "Sealer"]
