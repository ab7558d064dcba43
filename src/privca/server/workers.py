"""`privca serve --workers N`: N processes accepting on one listening socket; and
`--publish-listen`: one more process serving the publication listener alone.

One Python process uses one core for its request handling (the GIL), so concurrent ACME
clients queue behind each other on a multi-core machine. The parent binds the socket,
proves the keys, obtains the TLS certificate and does the once-per-start work, then forks
the workers; each builds its own app and store engine and serves the inherited socket
(the kernel hands each new connection to one of them). The parent only supervises:
SIGTERM, SIGINT or SIGHUP stops every worker gracefully; a worker that stops on its own
stops the others too, and serve exits 3 (a supervisor such as systemd restarts it).

With --publish-listen the parent forks one more child, the publication process, that
serves OCSP, CRLs and CA certificates on a plain-HTTP socket of its own, so revocation
checks never wait for the GIL or a core behind ACME and TLS work. It is supervised like
a worker (its end stops serve, exit 3), also with --workers 1: then the parent forks one
worker and the publication process and supervises both, rather than serving itself.

Forking rather than starting fresh interpreters keeps the unlocked CA keys in memory
without asking for the passphrase again. Nothing that must not cross a fork may be open
when it happens: the caller releases the store's pooled connections first (SQLite
forbids carrying a connection into a child), and no thread has started yet.

Each worker is a replica as docs/ha.md describes them, over the same store: every
background job of serve is either per process (the store watch, OCSP signer, TLS
certificate reload) or safe to run in several (scheduled revocations and tidy write the
same rows whoever runs them; an audit checkpoint falls due by the store's count; the
server certificate's renewal takes the credentials lock; CRL numbers come from the
store's counter).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import re
import signal
import sys
import time
import traceback
from collections.abc import Callable

from privca.errors import EnvironmentRefused, InputError, PrivcaError

MAX_WORKERS = 64
# The index of the publication process among the children (workers are 1..count).
PUBLICATION = 0
# How long stopped workers get to finish (uvicorn's own graceful shutdown is 5 s) before
# they are killed, so that serve always exits and its port is free for the next start.
STOP_GRACE_SECONDS = 30.0
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
# The signals that stop serve; blocked while forking, so that none is lost in between.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)

log = logging.getLogger("privca.server")


def parse_workers(text: str) -> int:
    """--workers: a number from 1 to MAX_WORKERS, or `auto` (one per usable CPU)."""
    value = text.strip().lower()
    if value == "auto":
        return max(1, min(MAX_WORKERS, len(os.sched_getaffinity(0))))
    # ASCII digits only: str.isdigit() also takes '²' (which int() refuses) and other
    # scripts' digits.
    if re.fullmatch(r"[0-9]{1,3}", value) is None or not 1 <= int(value) <= MAX_WORKERS:
        raise InputError(
            "--workers takes a number of processes or 'auto'",
            f"e.g. --workers 2, or --workers auto for one per CPU (at most {MAX_WORKERS})",
        )
    return int(value)


class WorkerLogTag(logging.Filter):
    """Puts "worker N" in front of every log line of one worker, so that the access log
    tells which process answered."""

    def __init__(self, index: int) -> None:
        super().__init__()
        self.prefix = "publication: " if index == PUBLICATION else f"worker {index}: "

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "privca_worker", None) is not None:
            return True  # tagged by another handler's filter already
        record.privca_worker = self.prefix
        args = record.args
        if record.name == "uvicorn.access" and isinstance(args, tuple) and args:
            # uvicorn's access format has no %(message)s: tag the client's address.
            record.args = (self.prefix + str(args[0]), *args[1:])
        elif isinstance(record.msg, str):
            record.msg = self.prefix + record.msg
        return True


def tag_worker_logs(index: int) -> None:
    """Add WorkerLogTag to every handler configured so far (privca's and uvicorn's)."""
    tag = WorkerLogTag(index)
    loggers = [logging.getLogger()] + [
        logger
        for logger in logging.Logger.manager.loggerDict.values()
        if isinstance(logger, logging.Logger)
    ]
    for logger in loggers:
        for handler in logger.handlers:
            if not any(isinstance(f, WorkerLogTag) for f in handler.filters):
                handler.addFilter(tag)


def child_name(index: int) -> str:
    return "the publication process" if index == PUBLICATION else f"worker {index}"


def run_workers(
    count: int,
    serve: Callable[[int], None],
    report: Callable[[PrivcaError], None],
    publication: Callable[[], None] | None = None,
) -> None:
    """Fork `count` workers, each running `serve(index)` (index 1..count; `report` prints
    the error a worker stops with), and the `publication` process if given; wait until
    they stop; EnvironmentRefused when one stopped without being asked to."""
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    children: dict[int, int] = {}
    indexes = list(range(1, count + 1))
    if publication is not None:
        indexes.append(PUBLICATION)

    def run(index: int) -> None:
        if index == PUBLICATION and publication is not None:
            publication()
        else:
            serve(index)

    try:
        for index in indexes:
            sys.stdout.flush()
            sys.stderr.flush()
            parent = os.getpid()
            pid = os.fork()
            if pid == 0:
                _stop_with_parent(parent)
                _worker(index, run, report)  # never returns
            children[pid] = index
    except OSError as exc:
        _stop(children)
        _reap(children)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        raise EnvironmentRefused(f"cannot start worker processes: {exc.strerror}") from exc
    stopping = False

    def stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        if not stopping:
            stopping = True
            _stop(children)

    previous = {number: signal.signal(number, stop) for number in STOP_SIGNALS}
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    pids = ", ".join(str(pid) for pid, index in children.items() if index != PUBLICATION)
    log.info("privca serve: %d worker%s (pids %s)", count, "s" if count > 1 else "", pids)
    for pid, index in children.items():
        if index == PUBLICATION:
            log.info("privca serve: publication process (pid %d)", pid)
    failed: tuple[int, int] | None = None
    killed_at: float | None = None
    try:
        while children:
            # Polled, not a blocking wait: a worker that ignores SIGTERM must not keep
            # serve (and its port) alive for ever.
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                if stopping and killed_at is None:
                    killed_at = time.monotonic() + STOP_GRACE_SECONDS
                if killed_at is not None and time.monotonic() > killed_at:
                    _stop(children, signal.SIGKILL)
                time.sleep(0.1)
                continue
            if pid not in children:
                continue
            index = children.pop(pid)
            if not stopping:
                failed = (index, os.waitstatus_to_exitcode(status))
                stopping = True
                _stop(children)
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    if failed is not None:
        raise EnvironmentRefused(
            f"{child_name(failed[0])} stopped (exit code {failed[1]}); the others were stopped",
            "see the log lines above",
        )


def _stop(children: dict[int, int], number: int = signal.SIGTERM) -> None:
    for pid in list(children):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, number)


def _stop_with_parent(parent: int) -> None:
    """Have the kernel send this worker SIGTERM when serve's parent process dies (kill -9,
    the OOM killer): orphaned workers would keep the port, and the restart a supervisor
    makes would fail to bind it."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: only the check below
        pass
    if os.getppid() != parent:  # died before the request took effect
        os._exit(0)


def _reap(children: dict[int, int]) -> None:
    for pid in list(children):
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
        children.pop(pid, None)


def _worker(
    index: int, serve: Callable[[int], None], report: Callable[[PrivcaError], None]
) -> None:
    """A worker's whole life: serve, then leave without running the parent's cleanup
    (atexit handlers, the listener's close in a `finally` up the stack)."""
    code = 0
    try:
        for number in STOP_SIGNALS:
            signal.signal(number, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        serve(index)
    except PrivcaError as exc:
        report(exc)
        code = exc.exit_code
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


__all__ = [
    "MAX_WORKERS",
    "PUBLICATION",
    "child_name",
    "parse_workers",
    "run_workers",
    "tag_worker_logs",
]
