"""serve publishes the latest signed checkpoint at /audit/checkpoint (from the store, so
every replica serves the same) and the audit certificate at /ca/audit.crt; its
scheduler's changes are by `serve`."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable

from cryptography import x509

from privca._time import utcnow
from privca.auditing import load_checkpoint
from tests.server.conftest import LiveServer, ServedCA


def test_checkpoint_and_audit_certificate_are_served(
    served_ca: ServedCA, live_server: Callable[..., LiveServer]
) -> None:
    ca = served_ca.ca
    server = live_server(ca)
    assert server.get("/audit/checkpoint").status == 404  # none signed yet
    assert server.get("/ca/audit.crt").status == 404

    checkpoint = ca.audit_checkpoint()
    reply = server.get("/audit/checkpoint")
    assert reply.status == 200
    assert reply.headers["content-type"].startswith("application/json")
    served = load_checkpoint(reply.body, "served")
    assert (served.entries, served.head) == (checkpoint.entries, checkpoint.head)
    certificate = server.get("/ca/audit.crt")
    assert certificate.status == 200
    assert x509.load_pem_x509_certificate(certificate.body) == served.certificates[0]


def test_the_scheduler_acts_as_serve(
    served_ca: ServedCA, live_server: Callable[..., LiveServer]
) -> None:
    ca = served_ca.ca
    old = served_ca.good
    ca.renew(format(old.serial, "x"), revoke_old_after=dt.timedelta(seconds=1), now=utcnow())
    due = ca.inventory.get(old.serial).revoke_after
    time.sleep(max(0.0, (due - utcnow()).total_seconds()) + 1.1)  # due before serve starts
    live_server(ca)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with ca.inventory.audit_snapshot() as log:
            scheduled = [
                e for e in log.entries(serial=format(old.serial, "x")) if e.action == "revoked"
            ]
        if scheduled:
            break
        time.sleep(0.5)
    assert scheduled, "the scheduler did not apply the revocation"
    assert scheduled[0].actor == "serve"
    assert json.loads(scheduled[0].detail)["scheduled"] is True
