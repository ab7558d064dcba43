"""InventoryView.issued_since: the certificates signed since a point of the audit log,
which the server's watcher reads each poll to sign their OCSP answers ahead."""

from __future__ import annotations

from privca.authority import CertificateAuthority


def test_the_certificates_signed_since_in_order_other_entries_skipped(
    ca: CertificateAuthority,
) -> None:
    view = ca.inventory
    start, none = view.issued_since(None, 100)
    assert none == []
    assert start == view.audit_head()[0]
    assert view.issued_since(start, 100) == (start, [])

    first = ca.issue(["one.example"])
    ca.revoke(format(first.serial, "x"), "superseded")  # an entry that signs nothing
    second = ca.issue(["two.example"])
    after, issued = view.issued_since(start, 100)
    assert [r.serial for r in issued] == [first.serial, second.serial]
    assert issued[0].status == "revoked" and issued[1].status == "issued"  # as stored now
    assert all(r.der is not None for r in issued)
    assert after == view.audit_head()[0]
    assert view.issued_since(after, 100) == (after, [])


def test_at_most_limit_entries_are_read_and_the_rest_come_next_time(
    ca: CertificateAuthority,
) -> None:
    view = ca.inventory
    start, _ = view.issued_since(None, 0)
    serials = [ca.issue([f"n{i}.example"]).serial for i in range(3)]
    seen: list[int] = []
    position = start
    for _ in range(10):
        position, issued = view.issued_since(position, 1)
        seen.extend(r.serial for r in issued)
        if position == view.audit_head()[0]:
            break
    assert seen == serials
