"""`privca doctor` reports a root rollover left open past, or within 30 days of, the end
of its old root (after which clients that trust only the old root reject everything)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable

import pytest

from privca._time import utcnow
from privca.authority import CertificateAuthority
from tests.conftest import Cli

CODES = {"rollover-old-root-expiring", "rollover-open-past-old-root"}


@pytest.mark.parametrize(
    ("old_root_days_left", "expected", "severity"),
    [
        pytest.param(90, None, None, id="far-from-the-old-roots-end"),
        pytest.param(20, "rollover-old-root-expiring", "warning", id="within-30-days"),
        pytest.param(-2, "rollover-open-past-old-root", "critical", id="past-the-end"),
    ],
)
def test_doctor_reports_a_rollover_left_open(
    make_ca: Callable[..., CertificateAuthority],
    run_cli: Cli,
    old_root_days_left: int,
    expected: str | None,
    severity: str | None,
) -> None:
    started = utcnow() - dt.timedelta(days=10)
    ca = make_ca(now=started, root_days=10 + old_root_days_left, issuing_days=5)
    ca.rollover_root(now=started + dt.timedelta(days=1))
    result = run_cli("doctor", "--json", home=ca.home.root)
    found = [f for f in json.loads(result.stdout) if f["code"] in CODES]
    if expected is None:
        assert found == []
        return
    assert result.exit_code == 1
    (finding,) = found
    assert (finding["code"], finding["severity"]) == (expected, severity)
    assert "privca rotate root --retire-old" in finding["fix"]
    # Cross-certificates end with the old root; they are not reported once more.
    assert not any("cross CA" in f["message"] for f in json.loads(result.stdout))

    ca.retire_old_root(force=True)
    after = run_cli("doctor", "--json", home=ca.home.root)
    assert not [f for f in json.loads(after.stdout) if f["code"] in CODES]


def test_doctor_names_valid_certificates_left_under_a_retired_root(
    make_ca: Callable[..., CertificateAuthority], run_cli: Cli
) -> None:
    """Retired with --force, the old root leaves certificates listed as valid that no
    client trusting only the new root accepts: doctor used to say nothing (verify said
    FAILED). Renewed, they are no longer counted; the audit key's own certificate never is."""
    ca = make_ca()
    ca.issue(["left.corp.internal"])
    ca.audit_signer()  # its certificate is replaced by privca itself: never a finding
    ca.rollover_root()
    ca.retire_old_root(force=True)
    result = run_cli("doctor", "--json", home=ca.home.root)
    assert result.exit_code == 1, result.stdout
    [finding] = [f for f in json.loads(result.stdout) if f["code"] == "leaves-under-retired-root"]
    assert finding["severity"] == "warning"
    assert finding["message"].startswith("1 valid certificate(s) chain only to a root retired")
    assert "privca renew" in finding["fix"]
    ca.renew("left.corp.internal")
    after = run_cli("doctor", "--json", home=ca.home.root)
    assert not [f for f in json.loads(after.stdout) if f["code"] == "leaves-under-retired-root"]


def test_check_warns_of_valid_certificates_left_under_a_retired_root(
    make_ca: Callable[..., CertificateAuthority], run_cli: Cli
) -> None:
    """check is what monitoring runs: the same certificates (far from expiring) make every
    format warn, and the warning goes once they are renewed."""
    ca = make_ca()
    ca.issue(["left.corp.internal"])
    ca.rollover_root()
    ca.retire_old_root(force=True)
    text = run_cli("check", home=ca.home.root)
    assert text.exit_code == 1, text.output
    assert "WARNING  rollover    certificates under a retired root: 1 valid" in text.output
    nagios = run_cli("check", "--format", "nagios", home=ca.home.root)
    assert nagios.exit_code == 1
    assert nagios.output.startswith("PRIVCA WARNING - ")
    assert "first: certificates under a retired root" in nagios.output
    document = json.loads(run_cli("check", "--format", "json", home=ca.home.root).stdout)
    assert document["status"] == "warning"
    [item] = [i for i in document["items"] if i["kind"] == "rollover"]
    assert item["detail"].startswith("1 valid certificate(s) chain only to a root retired")
    ca.renew("left.corp.internal")
    after = run_cli("check", "--format", "nagios", home=ca.home.root)
    assert after.exit_code == 0, after.output
