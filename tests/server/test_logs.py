"""Nothing hostile reaches the server's log raw: request lines, ACME identifiers and the
errors they cause are logged with control characters escaped."""

from __future__ import annotations

import io
import logging
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from privca.server.logs import PrintableFormatter
from tests.acme.jwsclient import RawClient
from tests.server.conftest import ServedCA, free_port

OSC_52 = "\x1b]52;c;aGVsbG8=\x07"  # would write the reader's clipboard
RAW_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\x9b]")


def test_the_formatter_escapes_messages_arguments_and_tracebacks() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(PrintableFormatter())
    logger = logging.getLogger("privca.test-logs")
    logger.addHandler(handler)
    try:
        logger.warning("name %s refused", "evil" + OSC_52 + ".test")
        try:
            raise ValueError("bad identifier " + OSC_52 + "\u202e")
        except ValueError:
            logger.exception("request failed")
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert not RAW_CONTROL.search(text), repr(text)
    assert "\u202e" not in text
    assert "\\x1b]52;c;aGVsbG8=\\x07" in text
    assert "Traceback (most recent call last):\n" in text  # tracebacks keep their lines


def test_a_serve_process_logs_hostile_requests_escaped(
    served_ca: ServedCA, passphrase_file: Path
) -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "privca", "--home", str(served_ca.ca.home.root), "serve",
         "--no-tls", "--listen", f"127.0.0.1:{port}", "--passphrase-file", str(passphrase_file)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline
                time.sleep(0.1)
        raw = [
            b"GET /crl/%1b]52;c;aGVsbG8=%07.crl HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET /?q=%1b]0;title%07 HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET /x\x1b]52;c;aGVsbG8=\x07 HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET /health HTTP/1.1\r\nHost: x\r\nUser-Agent: \x1b]0;t\x07\r\n\r\n",
        ]
        for request in raw:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                sock.sendall(request)
                sock.recv(65536)
        client = RawClient(f"http://127.0.0.1:{port}/acme/directory", "/dev/null")
        client.register()
        for value in ("evil" + OSC_52 + ".test", "\u202eevil.test", "a\r\nFAKE LOG LINE"):
            client.post(
                client.directory["newOrder"], {"identifiers": [{"type": "dns", "value": value}]}
            )
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=15)
    log = out.decode() + err.decode()
    assert "GET /crl/" in log  # the access log is on: the requests were logged
    assert not RAW_CONTROL.search(log), repr(log[:2000])
    assert "\u202e" not in log
    assert not any(line.startswith("FAKE LOG LINE") for line in log.splitlines())
