"""Admission for ACME work: at most `limit` jobs of ACME requests run in the threadpool at
once, the rest wait on the event loop, and work that continues an order already under way
goes before work that starts a new one.

Why: in a renewal storm every host's requests used to enter the shared threadpool at once
and interleave, so every order took about as long as the whole storm, and OCSP, CRLs and
health waited behind them for a thread. Bounded, the pool keeps threads for those; and
ordered, orders finish one after another (queueing) instead of all together at the end.
"""

from __future__ import annotations

import asyncio
import contextvars
import heapq
import itertools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from starlette.concurrency import run_in_threadpool

P = ParamSpec("P")
T = TypeVar("T")

ACME_JOBS = 4  # at once; SQLite takes one writer at a time anyway, Python one core
CONTINUES = 0  # a request about an account's existing order, authorization, challenge...
STARTS = 1  # newAccount, newOrder: new work waits while work under way is queued

_priority: contextvars.ContextVar[int] = contextvars.ContextVar(
    "privca_acme_priority", default=CONTINUES
)


def set_priority(priority: int) -> None:
    """The priority of the ACME jobs of the request being handled (this task's context)."""
    _priority.set(priority)


class Admission:
    def __init__(self, limit: int = ACME_JOBS) -> None:
        self.limit = limit
        self._running = 0
        self._waiting: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    async def run(self, function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """`function(*args)` in the threadpool once a place is free."""
        await self._enter()
        try:
            return await run_in_threadpool(function, *args, **kwargs)
        finally:
            self._leave()

    async def _enter(self) -> None:
        if self._running < self.limit and not self._waiting:
            self._running += 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (_priority.get(), next(self._order), waiter))
        try:
            await waiter  # _leave hands its place over: _running already counts this job
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._leave()  # handed a place, then cancelled: pass it on
            raise

    def _leave(self) -> None:
        while self._waiting:
            _, _, waiter = heapq.heappop(self._waiting)
            if not waiter.done():
                waiter.set_result(None)
                return
        self._running -= 1


__all__ = ["ACME_JOBS", "CONTINUES", "STARTS", "Admission", "set_priority"]
