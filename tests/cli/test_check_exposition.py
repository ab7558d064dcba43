"""`privca check --format prometheus` and /metrics name every series once, also after a
root rollover (the new root and its cross-certificate share a subject) and with named
issuers: Prometheus rejects a scrape that repeats a series."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable

from privca._time import utcnow
from privca.authority import CertificateAuthority
from privca.issuers import NewIssuer
from privca.monitoring import render_prometheus
from tests.conftest import Cli

_SAMPLE = re.compile(r"([a-z_]+)(?:\{(.*)\})? (\d+)")
_LABEL = re.compile(r'([a-z_]+)="((?:[^"\\]|\\.)*)"')


def series_keys(text: str) -> list[tuple[str, frozenset[tuple[str, str]]]]:
    """(name, labels) of every sample line, labels parsed as Prometheus reads them."""
    keys = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.fullmatch(line)
        assert match, line
        labels = match[2] or ""
        pairs = _LABEL.findall(labels)
        assert ",".join(f'{k}="{v}"' for k, v in pairs) == labels, line
        keys.append((match[1], frozenset(pairs)))
    return keys


def repeated(text: str) -> list[tuple[str, frozenset[tuple[str, str]]]]:
    return [key for key, n in Counter(series_keys(text)).items() if n > 1]


def test_no_series_twice_after_a_reverse_cross_rollover_with_two_named_issuers(
    make_ca: Callable[..., CertificateAuthority], run_cli: Cli
) -> None:
    ca = make_ca(permitted=["corp.internal"])
    ca.create_issuer(NewIssuer("team-a", permitted=["a.corp.internal"]))
    ca.create_issuer(NewIssuer("team-b", permitted=["b.corp.internal"]))
    ca.issue(["old.a.corp.internal"], issuer="team-a", days=5)
    ca.issue(["old.b.corp.internal"], issuer="team-b", days=5)
    ca.rollover_root(reverse_cross=True)
    ca.issue(["new.a.corp.internal"], issuer="team-a", days=5)
    revoked = ca.issue(["new.b.corp.internal"], issuer="team-b", days=5)
    ca.revoke(format(revoked.serial, "x"), "keyCompromise")

    page = render_prometheus(ca, utcnow())
    assert "privca_certificates_issued_total" in page
    assert repeated(page) == []
    result = run_cli("check", "--format", "prometheus", home=ca.home.root)
    assert result.exit_code == 0, result.output + result.stderr
    assert "privca_certificates_revoked_total" in result.output
    assert repeated(result.output) == []
