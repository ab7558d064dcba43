"""One place establishes a CA home: `init` and `import` share its rules (a free home, a
name, a long enough passphrase), its order and its clean-up on failure."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from privca import establishment
from privca.adopt import adoption
from privca.adopt.openssl import read_openssl_ca
from privca.adopt.plan import AdoptionPlan
from privca.authority import CertificateAuthority
from privca.errors import AlreadyExists, InputError
from tests.adopt.conftest import Runbook, runbook, runbook_template  # noqa: F401 (fixtures)
from tests.conftest import PASSPHRASE, tree_snapshot

Establish = Callable[..., CertificateAuthority]


@pytest.fixture
def plan(runbook: Runbook) -> AdoptionPlan:  # noqa: F811 (the fixture above)
    return read_openssl_ca(runbook.ca_dir, passphrase=lambda: None)


@pytest.fixture(params=["init", "import"])
def found(request: pytest.FixtureRequest, plan: AdoptionPlan) -> Establish:
    """Establish a home the way `privca init` or `privca import` does."""

    def init(home: Path, name: str = "Shared Rules CA", passphrase: bytes | None = PASSPHRASE):
        return CertificateAuthority.init(home, name, passphrase=passphrase)

    def adopt(home: Path, name: str = "Shared Rules CA", passphrase: bytes | None = PASSPHRASE):
        return adoption.establish(AdoptionPlan(**{**plan.__dict__, "name": name}), home, passphrase)

    return init if request.param == "init" else adopt


@pytest.mark.parametrize(
    ("name", "passphrase", "message"),
    [
        ("", PASSPHRASE, "CA name '' must be 1 to 64 printable characters"),
        ("x" * 65, PASSPHRASE, "must be 1 to 64 printable characters"),
        ("bell\x07", PASSPHRASE, "must be 1 to 64 printable characters"),
        ("Fine CA", b"short", "the passphrase is shorter than 8 characters"),
    ],
    ids=["empty-name", "long-name", "control-character", "short-passphrase"],
)
def test_the_same_rules_refuse_before_anything_is_written(
    found: Establish, tmp_path: Path, name: str, passphrase: bytes, message: str
) -> None:
    home = tmp_path / "home"
    with pytest.raises(InputError, match=message):
        found(home, name, passphrase)
    assert not home.exists()


@pytest.mark.parametrize("leftover", ["privca.toml", "private/root.key", "privca.db"])
def test_a_home_with_a_ca_or_its_remains_is_refused(
    found: Establish, tmp_path: Path, leftover: str
) -> None:
    home = tmp_path / "home"
    (home / "private").mkdir(parents=True, mode=0o700)
    (home / leftover).write_bytes(b"")
    before = tree_snapshot(home)
    with pytest.raises(AlreadyExists, match="a CA already exists"):
        found(home)
    assert tree_snapshot(home) == before


def test_a_failure_half_way_removes_what_was_made(
    found: Establish, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(*_args: object, **_kwargs: object) -> None:
        raise InputError("simulated failure after the store was made")

    monkeypatch.setattr(establishment, "_populate", explode)
    home = tmp_path / "home"
    with pytest.raises(InputError, match="simulated"):
        found(home)
    assert not home.exists()


def test_both_leave_the_same_layout(found: Establish, tmp_path: Path) -> None:
    ca = found(tmp_path / "home")
    home = ca.home
    assert home.settings.exists() and home.root_cert.exists() and home.chain.exists()
    assert home.eab_sealing_key.exists()
    assert ca.registry.root.certificate == ca.root
    assert ca.signer(ca.issuing_record()).certificate == ca.issuing
    ca.close()
