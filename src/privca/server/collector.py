"""The garbage collector of a serving process, set once the app is built.

What a server loads before it serves (the CA, SQLAlchemy's tables and compiled statements,
cryptography, Starlette, the OCSP signers) is about a hundred thousand objects that live as
long as the process, and CPython's collector walks all of them at every full collection:
measured during an ACME run (benchmarks/README.md), one such collection paused every
thread of the server for tens to hundreds of milliseconds, and the young collections,
each after only 700 new container objects, cost about as much again per issuance. Frozen,
those objects are never walked again; and a request's objects are freed by their
reference counts long before a younger generation of 7,000 fills, so collections are
rarer and each finds less to walk. Cycles are still collected.
"""

from __future__ import annotations

import gc

# gen0 after 7,000 new container objects (CPython: 700); gen1 and gen2 after 20 of the
# generation below (CPython: 10 and 10).
THRESHOLDS = (7_000, 20, 20)


def settle() -> None:
    """Collect once, freeze what survived (it lives as long as the process) and raise
    the thresholds. Call it when the app is built, just before serving."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)


__all__ = ["THRESHOLDS", "settle"]
