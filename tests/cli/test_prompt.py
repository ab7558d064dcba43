"""The interactive passphrase prompt, on a real pseudo-terminal (no argv, no echo)."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path


def _run_on_tty(args: list[str], answers: list[bytes], timeout: float = 30) -> tuple[int, bytes]:
    master, slave = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k != "PRIVCA_PASSPHRASE"}
    process = subprocess.Popen(
        [sys.executable, "-m", "privca", *args],
        stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True,
    )  # fmt: skip
    os.close(slave)
    output = b""
    answered_at = 0  # only a prompt printed after the last answer may be answered
    pending = list(answers)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            output += chunk
            if pending and output[answered_at:].rstrip().endswith(b":"):
                os.write(master, pending.pop(0) + b"\n")
                answered_at = len(output)
        elif process.poll() is not None:
            break
    process.wait(timeout=10)
    os.close(master)
    return process.returncode, output


def test_init_asks_twice_and_never_echoes(tmp_path: Path) -> None:
    home = tmp_path / "ca"
    secret = b"typed at the prompt 42"
    code, output = _run_on_tty(
        ["--home", str(home), "init", "--name", "Prompted CA"], [secret, secret]
    )
    assert code == 0, output.decode(errors="replace")
    assert b"passphrase" in output.lower()
    assert secret not in output  # hidden input: the terminal never shows it
    key = (home / "private" / "issuing.key").read_bytes()
    assert b"ENCRYPTED PRIVATE KEY" in key
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    assert load_pem_private_key(key, secret) is not None
    # A later command asks once, only when the key is needed.
    code, output = _run_on_tty(
        ["--home", str(home), "issue", "a.example.internal", "--out", str(tmp_path / "o")],
        [secret],
    )
    assert code == 0, output.decode(errors="replace")
    assert secret not in output


def test_too_short_is_refused_before_the_confirmation_and_asked_again(tmp_path: Path) -> None:
    home = tmp_path / "ca"
    good = b"long enough passphrase"
    answers = [b"k9!x", good, b"typed differently", good, good]
    code, output = _run_on_tty(["--home", str(home), "init", "--name", "Retry CA"], answers)
    assert code == 0, output.decode(errors="replace")
    first_prompt_end = output.index(b":") + 1
    before_second_prompt = output[first_prompt_end : output.index(b"passphrase:", first_prompt_end)]
    assert b"shorter than 8 characters" in before_second_prompt
    assert b"Repeat" not in before_second_prompt  # refused before asking to confirm
    assert b"the two entries differ" in output
    assert output.count(b"Repeat for confirmation") == 2
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    key = (home / "private" / "issuing.key").read_bytes()
    assert load_pem_private_key(key, good) is not None
    for secret in (b"k9!x", good, b"typed differently"):
        assert secret not in output


def test_three_failed_attempts_end_with_one_error_and_nothing_written(tmp_path: Path) -> None:
    home = tmp_path / "ca"
    code, output = _run_on_tty(
        ["--home", str(home), "init", "--name", "Retry CA"],
        [b"short", b"tiny", b"long enough passphrase", b"but not repeated"],
    )
    assert code == 2, output.decode(errors="replace")
    assert b"privca: error: no usable new CA key passphrase after 3 attempts" in output
    assert b"Traceback" not in output
    assert not home.exists()
