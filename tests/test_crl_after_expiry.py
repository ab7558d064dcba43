"""A revoked certificate stays on its CA's CRL for one CRL period after it expires.

RFC 5280 3.3: an entry may go only once it has appeared on one regularly scheduled CRL
issued after the certificate's validity ended. privca dropped it from the very first CRL
signed after its notAfter, so a relying party whose clock ran a little behind saw a
certificate it still took for valid and a fresh CRL without it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from privca._time import utcnow
from privca.authority import CertificateAuthority


def test_an_expired_revoked_certificate_is_listed_for_one_more_crl_period(
    make_ca: Callable[..., CertificateAuthority],
) -> None:
    start = utcnow() - dt.timedelta(days=30)
    ca = make_ca(now=start)
    leaf = ca.issue(["short.corp.internal"], days=10, now=start)
    ca.revoke(format(leaf.serial, "x"), "keyCompromise", now=start + dt.timedelta(days=1))
    expiry = leaf.certificate.not_valid_after_utc

    def listed(at: dt.datetime) -> bool:
        crl = ca.crl(now=at, days=7)
        return crl.get_revoked_certificate_by_serial_number(leaf.serial) is not None

    assert listed(expiry - dt.timedelta(seconds=1))
    assert listed(expiry + dt.timedelta(seconds=1))  # the first CRL after expiry lists it
    assert listed(expiry + dt.timedelta(days=6, hours=23))
    assert not listed(expiry + dt.timedelta(days=7, seconds=1))  # a whole period later
