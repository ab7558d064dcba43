"""An EdDSA CA (init --key-type ed25519 is allowed): OpenSSL accepts its chains, but the
WebPKI rules `privca verify` follows (and browsers, NSS) do not. verify used to print
cryptography's internal text ("Forbidden public key algorithm: AlgorithmIdentifier {
oid: DefinedByMarker(PhantomData<...") and doctor said nothing of the key type."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import Cli, openssl


def test_an_eddsa_ca_is_named_by_doctor_and_explained_by_verify(
    run_cli: Cli, tmp_path: Path
) -> None:
    secret = ["--passphrase-file", str(run_cli.passphrase_file)]
    init = run_cli("init", "--name", "Ed CA", "--key-type", "ed25519", *secret)
    assert init.exit_code == 0, init.stderr
    out = tmp_path / "out"
    assert run_cli("issue", "a.corp.internal", "--out", str(out), *secret).exit_code == 0
    home = run_cli.home
    plain = openssl(
        "verify",
        "-CAfile",
        str(home / "certs" / "root.crt"),
        "-untrusted",
        str(home / "certs" / "issuing.crt"),
        str(out / "a.corp.internal.crt"),
    )
    assert plain.returncode == 0, plain.stdout + plain.stderr  # OpenSSL takes it
    verified = run_cli("verify", str(out / "a.corp.internal.chain.pem"))
    assert verified.exit_code == 1
    assert "EdDSA" in verified.output and "openssl verify" in verified.output
    assert "PhantomData" not in verified.output
    doctor = json.loads(run_cli("doctor", "--json").stdout)
    eddsa = [f for f in doctor if f["code"] == "ca-eddsa-key"]
    assert len(eddsa) == 2 and all(f["severity"] == "warning" for f in eddsa)
