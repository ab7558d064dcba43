"""serve settles the garbage collector once its app is built (server/collector.py)."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from privca.server.collector import THRESHOLDS, settle


@pytest.fixture
def restored_collector() -> Iterator[None]:
    thresholds, enabled = gc.get_threshold(), gc.isenabled()
    # Off, so that only settle()'s own collection can free the test's cycle.
    gc.disable()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)
    if enabled:
        gc.enable()


@pytest.mark.usefixtures("restored_collector")
def test_settle_freezes_what_lives_and_collects_less_often() -> None:
    class Cycle:
        def __init__(self) -> None:
            self.me = self

    garbage = Cycle()
    collected = weakref.ref(garbage)
    del garbage
    assert collected() is not None  # a cycle: its reference count alone never frees it
    before = gc.get_freeze_count()
    settle()
    # Everything alive at that point (this test process's modules, at the least) is frozen,
    # and the cycle made above was collected first, not frozen with the rest.
    assert gc.get_freeze_count() > max(before, 10_000)
    assert collected() is None
    assert gc.get_threshold() == THRESHOLDS
    # Cycles made after it are still collected.
    later = Cycle()
    collected = weakref.ref(later)
    del later
    gc.collect()
    assert collected() is None
