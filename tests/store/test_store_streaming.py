"""`stream` reads the inventory in chunks and pages by (not_after, serial), ties included."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest

from privca.errors import InputError, NotFound
from privca.store import view
from privca.store.inventory import Intent, Store


@pytest.mark.parametrize("page_size", [1, 2, 3, 7, 100], ids=lambda n: f"page-{n}")
def test_pages_cover_every_certificate_once_in_order(
    store: Store,
    make_intent: Callable[..., Intent],
    issue_records: Callable[..., list[int]],
    now: dt.datetime,
    page_size: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(view, "STREAM_CHUNK", 2)  # several fetches per page
    # Three certificates share each expiry: the serial breaks the ties.
    issue_records(*(make_intent(f"p{i}.corp.internal", days=1 + i // 3) for i in range(10)))
    everything = [r.serial for r in store.stream(now=now)]
    assert len(everything) == 10 and everything == [r.serial for r in store.find(now=now)]
    paged: list[int] = []
    after: int | None = None
    while True:
        page = [r.serial for r in store.stream(now=now, after=after, limit=page_size)]
        if not page:
            break
        paged += page
        after = page[-1]
    assert paged == everything


def test_after_an_unknown_serial_is_not_found(store: Store, now: dt.datetime) -> None:
    with pytest.raises(NotFound, match="no certificate with serial abc"):
        store.stream(now=now, after=0xABC)


def test_a_bad_status_fails_before_any_row(store: Store, now: dt.datetime) -> None:
    with pytest.raises(InputError):
        store.stream(now=now, status="nonsense")
