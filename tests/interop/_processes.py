"""Real processes for the interop tests: `privca serve`, started and stopped by the test."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(
    port: int, process: subprocess.Popen[bytes], what: str, host: str = "127.0.0.1"
) -> None:
    """Until something accepts on host:port; fails with the process's stderr if it died."""
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection((host, port), timeout=1).close()
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                _, err = process.communicate()
                message = f"{what} did not start:\n{err.decode(errors='replace')}"
                raise AssertionError(message) from None
            time.sleep(0.1)


def stop(process: subprocess.Popen[bytes], timeout: float = 20) -> str:
    """SIGTERM, wait, and return what it wrote to stderr."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        _, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        _, err = process.communicate()
    return (err or b"").decode(errors="replace")


class PrivcaServe:
    """`python -m privca serve` on 127.0.0.1:port with the given flags."""

    def __init__(self, home: Path, passphrase_file: Path, *flags: str) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [
                sys.executable, "-m", "privca", "--home", str(home), "serve",
                "--listen", f"127.0.0.1:{self.port}",
                "--passphrase-file", str(passphrase_file), *flags,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )  # fmt: skip
        wait_for_port(self.port, self.process, "privca serve")

    def stop(self) -> str:
        return stop(self.process)
