"""Two roots with one name: the same CN, serials alike in their first 8 hex digits, so
the same slug. Installing one never replaces the other's anchor, removing one never
deletes the other's, and a store that refuses refuses before any store has changed."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from privca.cli.main import cli
from privca.trust import Presence, read_anchor
from privca.trust import Result as Done
from privca.trust.linux import LinuxSystemStore, bundle_holds
from tests.trust.support import DEBIAN, debian_bundle, require_tool, snapshot

SERIALS = (0x1234567800000000000000000000001, 0x1234567800000000000000000000002)


def same_named_root(path: Path, serial: int) -> Path:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Same Root")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


@pytest.fixture
def same(tmp_path: Path) -> tuple[Path, Path]:
    first = same_named_root(tmp_path / "same1.crt", SERIALS[0])
    second = same_named_root(tmp_path / "same2.crt", SERIALS[1])
    assert read_anchor(first).slug == read_anchor(second).slug
    return first, second


def anchors_dir(root: Path) -> Path:
    return root / DEBIAN.anchors_dir


def test_the_second_root_gets_its_own_file_and_each_is_removed_alone(
    debian_root: Path, same: tuple[Path, Path]
) -> None:
    store = LinuxSystemStore(debian_root)
    one, two = (read_anchor(path) for path in same)
    bundle = debian_bundle(debian_root)
    before = snapshot(debian_root)

    assert store.install(one)[0].result is Done.INSTALLED
    first_files = snapshot(anchors_dir(debian_root))
    assert store.install(two)[0].result is Done.INSTALLED
    assert bundle_holds(bundle, one.der) and bundle_holds(bundle, two.der)
    after = snapshot(anchors_dir(debian_root))
    assert {k: v for k, v in after.items() if k in first_files} == first_files  # untouched
    for anchor in (one, two):
        [report] = store.status(anchor)
        assert report.presence is Presence.PRESENT and report.note is None, report

    assert store.uninstall(one)[0].result is Done.REMOVED
    assert not bundle_holds(bundle, one.der) and bundle_holds(bundle, two.der)
    assert store.status(two)[0].presence is Presence.PRESENT
    assert store.uninstall(two)[0].result is Done.REMOVED
    assert snapshot(debian_root) == before


def test_a_file_holding_the_other_root_is_neither_claimed_nor_removed(
    debian_root: Path, same: tuple[Path, Path]
) -> None:
    store = LinuxSystemStore(debian_root)
    one, two = (read_anchor(path) for path in same)
    store.install(two)  # under the slug name, which is also one's first name
    held = snapshot(anchors_dir(debian_root))
    [outcome] = store.uninstall(one)
    assert outcome.result is Done.NOT_INSTALLED
    assert "holds another root" in (outcome.note or "")
    assert snapshot(anchors_dir(debian_root)) == held
    [report] = store.status(one)
    assert report.presence is Presence.ABSENT and report.note is None
    assert bundle_holds(debian_bundle(debian_root), two.der)


def invoke(home: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--home", str(home), "trust", *args])


def states(home: Path, root: Path, stores: list[str]) -> dict[str, str]:
    result = invoke(home, "status", str(root), *stores, "--json")
    assert result.exit_code == 0, result.output
    return {entry["store"]: entry["state"] for entry in json.loads(result.stdout)["stores"]}


def test_a_refusal_in_one_store_leaves_every_store_unchanged(
    debian_root: Path, nss_db: Path, tmp_path: Path, same: tuple[Path, Path]
) -> None:
    require_tool("keytool")
    stores = ["--system-root", str(debian_root), "--nss-db", str(nss_db),
              "--java-truststore", str(tmp_path / "truststore.p12")]  # fmt: skip
    first, second = (str(path) for path in same)
    assert invoke(tmp_path, "install", first, *stores).exit_code == 0
    system, keystore = snapshot(debian_root), (tmp_path / "truststore.p12").read_bytes()

    # NSS ties a nickname to the subject: it refuses the second root, and refuses first.
    refused = invoke(tmp_path, "install", second, *stores)
    assert refused.exit_code == 3, refused.output
    assert "already holds another certificate" in refused.stderr
    assert "--stores system,java" in refused.stderr
    assert snapshot(debian_root) == system
    assert (tmp_path / "truststore.p12").read_bytes() == keystore
    assert set(states(tmp_path, same[1], stores).values()) == {"absent"}
    assert set(states(tmp_path, same[0], stores).values()) == {"present"}

    # Without NSS the second root goes in beside the first, under its own names.
    others = [*stores, "--stores", "system,java"]
    installed = invoke(tmp_path, "install", second, *others)
    assert installed.exit_code == 0, installed.output
    assert set(states(tmp_path, same[1], others).values()) == {"present"}
    assert set(states(tmp_path, same[0], stores).values()) == {"present"}
    removed = invoke(tmp_path, "uninstall", first, *others)
    assert removed.exit_code == 0, removed.output
    assert set(states(tmp_path, same[0], others).values()) == {"absent"}
    assert set(states(tmp_path, same[1], others).values()) == {"present"}


def test_the_slug_file_left_by_an_earlier_install_is_still_found(
    debian_root: Path, same: tuple[Path, Path]
) -> None:
    """Installs made before the long name existed used the slug name: still ours."""
    one = read_anchor(same[0])
    shutil.copy(same[0], anchors_dir(debian_root) / f"{one.slug}.crt")
    store = LinuxSystemStore(debian_root)
    assert store.status(one)[0].note is not None  # exists, bundle not refreshed yet
    assert store.install(one)[0].result is Done.INSTALLED
    assert sorted(p.name for p in anchors_dir(debian_root).iterdir()) == [f"{one.slug}.crt"]
