"""[store] keep_expired: serve's scheduler tidies what expired longer ago than that."""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from collections.abc import Callable

import pytest

import privca.server.app as app_module
from privca._time import utcnow
from privca.authority import CertificateAuthority
from privca.errors import InputError
from privca.settings import Settings
from tests.server.conftest import LiveServer


def test_serve_tidies_what_expired_before_keep_expired(
    make_ca: Callable[..., CertificateAuthority],
    live_server: Callable[..., LiveServer],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(app_module, "SCHEDULE_INTERVAL_SECONDS", 0.05)
    # Signed in the past (tidy believes the DER's notAfter, not a row's edited column).
    ca = make_ca(now=utcnow() - dt.timedelta(days=400))
    ca.settings = dataclasses.replace(ca.settings, keep_expired="90d")
    old = ca.issue(["old.corp.internal"], days=100, now=utcnow() - dt.timedelta(days=300))
    recent = ca.issue(["recent.corp.internal"], days=90, now=utcnow() - dt.timedelta(days=100))
    old, recent, live = old.serial, recent.serial, ca.issue(["live.corp.internal"]).serial
    live_server(ca)
    deadline = time.monotonic() + 20
    while (record := ca.inventory.get(old)) is not None and record.der is not None:
        assert time.monotonic() < deadline, "serve never tidied the old certificate"
        time.sleep(0.05)
    for kept in (recent, live):
        record = ca.inventory.get(kept)
        assert record is not None and record.der is not None


def test_serve_tidies_expired_acme_orders(
    make_ca: Callable[..., CertificateAuthority],
    live_server: Callable[..., LiveServer],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without keep_expired too: ACME orders are tidied whenever ACME is served."""
    from privca.acme.service import ORDER_RETENTION, AcmeSettings
    from privca.acme.state import OrderStatus
    from privca.server.settings import ServerSettings
    from privca.store.acme import AcmeStore
    from tests.acme.test_tidy_orders import add_order, rows

    monkeypatch.setattr(app_module, "SCHEDULE_INTERVAL_SECONDS", 0.05)
    ca = make_ca()
    acme = ca.acme_repository()
    assert isinstance(acme, AcmeStore)
    add_order(acme, "abandoned", OrderStatus.PENDING, ORDER_RETENTION + dt.timedelta(days=1))
    add_order(acme, "live", OrderStatus.PENDING, -dt.timedelta(days=3))
    live_server(ca, ServerSettings(acme=AcmeSettings()))
    deadline = time.monotonic() + 20
    while "abandoned" in rows(acme)[0]:
        assert time.monotonic() < deadline, "serve never tidied the expired order"
        time.sleep(0.05)
    assert rows(acme)[0] == {"live"}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param('"90d"', dt.timedelta(days=90), id="days"),
        pytest.param('"26w"', dt.timedelta(weeks=26), id="weeks"),
        pytest.param("90", dt.timedelta(days=90), id="bare-number-of-days"),
        pytest.param('""', None, id="empty-keeps-all"),
    ],
)
def test_keep_expired_is_read(value: str, expected: dt.timedelta | None) -> None:
    settings = Settings.from_toml(f'[ca]\nname = "X"\n[store]\nkeep_expired = {value}\n', "t")
    assert settings.keep_expired_for == expected
    again = Settings.from_toml(settings.to_toml(), "t")
    assert again.keep_expired_for == expected


@pytest.mark.parametrize(
    "value", ['"soon"', '"-5d"', "true", '"90 days"', '"1e9d"', '"9999999999999999w"']
)
def test_a_bad_keep_expired_is_refused(value: str) -> None:
    with pytest.raises(InputError, match=r"\[store\] keep_expired"):
        Settings.from_toml(f'[ca]\nname = "X"\n[store]\nkeep_expired = {value}\n', "privca.toml")
