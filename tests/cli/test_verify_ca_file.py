"""`privca verify --ca-file ROOT`: trust that root instead of the home's, and say the
right thing when the path cannot be built."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from privca.authority import CertificateAuthority
from tests.conftest import Cli, write


def test_a_home_of_another_ca_with_the_same_name_does_not_make_a_forgery(
    make_ca: Callable[..., CertificateAuthority], run_cli: Cli, tmp_path: Path
) -> None:
    """Every docs example CA is "Example Internal CA": with $PRIVCA_HOME at another one,
    its issuing CA was tried as the issuer and a genuine certificate called forged."""
    right, other = make_ca(name="Example Internal CA"), make_ca(name="Example Internal CA")
    issued = right.issue(["db.corp.internal"])
    chain = write(tmp_path / "db.chain.pem", issued.chain_pem())
    result = run_cli("verify", str(chain), "--ca-file", str(right.home.root_cert),
                     home=other.home.root)  # fmt: skip
    assert result.exit_code == 0, result.output
    # The bare certificate, as the reviewer had it: its issuing CA is missing, not forged.
    leaf = write(tmp_path / "db.crt", issued.certificate_pem())
    bare = run_cli("verify", str(leaf), "--ca-file", str(right.home.root_cert),
                   home=other.home.root)  # fmt: skip
    assert bare.exit_code == 1
    assert "forged" not in bare.output
    assert "given without its issuing CA" in bare.output


def test_a_bare_leaf_without_its_issuing_ca_is_said_to_miss_it(
    make_ca: Callable[..., CertificateAuthority], run_cli: Cli, tmp_path: Path
) -> None:
    """No home, the root as --ca-file and only the leaf: its issuing CA is missing, which
    'not issued by this CA' alone did not say."""
    ca = make_ca()
    leaf = write(tmp_path / "db.crt", ca.issue(["db.corp.internal"]).certificate_pem())
    result = run_cli("verify", str(leaf), "--ca-file", str(ca.home.root_cert),
                     home=tmp_path / "no-home")  # fmt: skip
    assert result.exit_code == 1
    assert "given without its issuing CA: verify the chain file" in result.output
