"""ACME admission (acme/admission.py): never more than `limit` jobs in the threadpool,
work on orders under way before new orders, and a cancelled waiter loses no place."""

from __future__ import annotations

import asyncio
import threading
import time

from privca.acme.admission import CONTINUES, STARTS, Admission, set_priority


def test_at_most_limit_jobs_run_and_continuing_work_goes_first() -> None:
    admission = Admission(limit=2)
    running, most = 0, 0
    lock = threading.Lock()
    finished: list[str] = []
    gate = threading.Event()

    def job(name: str) -> str:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        gate.wait(5)
        time.sleep(0.01)
        with lock:
            running -= 1
        finished.append(name)
        return name

    async def request(name: str, priority: int) -> str:
        set_priority(priority)  # each task has its own context, as each request does
        return await admission.run(job, name)

    async def main() -> list[str]:
        blockers = [asyncio.create_task(request(f"busy{i}", CONTINUES)) for i in range(2)]
        await asyncio.sleep(0.05)  # both places taken; the rest queue in this order:
        queued = [("new1", STARTS), ("new2", STARTS), ("cont1", CONTINUES), ("cont2", CONTINUES)]
        tasks = []
        for name, priority in queued:
            tasks.append(asyncio.create_task(request(name, priority)))
            await asyncio.sleep(0.01)
        gate.set()
        return await asyncio.gather(*blockers, *tasks)

    results = asyncio.run(main())
    assert sorted(results) == sorted(["busy0", "busy1", "new1", "new2", "cont1", "cont2"])
    assert most == 2
    later = [name for name in finished if not name.startswith("busy")]
    assert later.index("cont1") < later.index("new1")
    assert later.index("cont2") < later.index("new2")


def test_a_cancelled_waiter_gives_its_place_on() -> None:
    admission = Admission(limit=1)
    release = threading.Event()

    async def main() -> str:
        first = asyncio.create_task(admission.run(release.wait, 5))
        await asyncio.sleep(0.05)
        gone = asyncio.create_task(admission.run(lambda: "never"))
        last = asyncio.create_task(admission.run(lambda: "last"))
        await asyncio.sleep(0.05)
        gone.cancel()
        release.set()
        await first
        return await asyncio.wait_for(last, 5)

    assert asyncio.run(main()) == "last"
