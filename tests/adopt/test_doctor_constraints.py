"""doctor: name constraints that bind some name types and leave the others open.

A hand-made CA with `nameConstraints=critical,permitted;DNS:corp.internal` (what the
OpenSSL documentation shows) still lets its key sign any IP address, email address or URI.
doctor names the open types and the fix; after the fix the finding is gone, and a thief's
IP leaf under the new issuing CA fails `openssl verify`.
"""

from __future__ import annotations

import json
from pathlib import Path

from privca.authority import CertificateAuthority
from privca.keys.files import read_ca_key
from privca.settings import Settings
from privca.x509.encoding import pem_certificate
from tests.adopt.conftest import run
from tests.conftest import Cli, require_tool, write
from tests.interop.test_constraints_every_type import ShapedCA, forge, judge_openssl


def _hand_made_dns_constrained_ca(root: Path) -> Path:
    require_tool("openssl")
    ca_dir = root / "constrained-ca"
    for sub in ("certs", "private"):
        (ca_dir / sub).mkdir(parents=True)
    (ca_dir / "private").chmod(0o700)
    run("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
        "-out", "private/ca.key", cwd=ca_dir)  # fmt: skip
    (ca_dir / "private" / "ca.key").chmod(0o400)
    run(
        "req", "-new", "-x509", "-days", "3650", "-key", "private/ca.key",
        "-subj", "/CN=Hand Made Constrained CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        "-addext", "nameConstraints=critical,permitted;DNS:corp.internal",
        "-out", "certs/ca.crt",
        cwd=ca_dir,
    )  # fmt: skip
    return ca_dir


def _findings(cli: Cli) -> dict[str, dict[str, str]]:
    result = cli("doctor", "--json")
    return {f["code"]: f for f in json.loads(result.stdout)}


def test_doctor_reports_open_name_types_and_the_fix_works(run_cli: Cli, tmp_path: Path) -> None:
    ca_dir = _hand_made_dns_constrained_ca(tmp_path)
    imported = run_cli("import", "openssl", str(ca_dir), "--no-passphrase", "--json")
    assert imported.exit_code == 0, imported.stderr
    import_codes = {f["code"] for f in json.loads(imported.stdout)["findings"]}
    assert "ca-constraints-open" in import_codes

    finding = _findings(run_cli)["ca-constraints-open"]
    assert finding["severity"] == "warning"
    assert "IP, email, URI" in finding["message"]
    assert "DNS" not in finding["message"].split("leave")[1].split("names")[0]
    assert '"corp.internal"' in finding["fix"] and "privca rotate issuing" in finding["fix"]

    # The fix, as written: the policy in privca.toml, then a new issuing CA.
    settings = Settings.read(run_cli.home / "privca.toml")
    text = (run_cli.home / "privca.toml").read_text()
    assert "permitted = []" in text
    (run_cli.home / "privca.toml").write_text(
        text.replace("permitted = []", 'permitted = ["corp.internal", "10.0.0.0/8"]')
    )
    assert Settings.read(run_cli.home / "privca.toml").policy != settings.policy
    rotated = run_cli("rotate", "issuing")
    assert rotated.exit_code == 0, rotated.stderr
    assert "ca-constraints-open" not in _findings(run_cli)

    # And it binds: an outside IP signed with the new issuing key fails openssl, where
    # under the old CA alone it would have passed.
    with CertificateAuthority.open(run_cli.home) as ca:
        issuing = write(tmp_path / "issuing.pem", pem_certificate(ca.issuing))
        thief = ShapedCA(
            ca=ca,
            root=ca.home.root_cert,
            untrusted=issuing,
            signing_key=read_ca_key(ca.home.root / ca.issuing_record().key_ref, None),
            has_uri_constraints=True,
        )
        for address, inside in (("10.1.2.3", True), ("192.168.1.5", False)):
            leaf = write(tmp_path / "forged.crt", pem_certificate(forge(thief, address)))
            verified, says = judge_openssl(thief, leaf, "ipv4", address)
            assert verified is inside, says


def test_doctor_is_quiet_about_privca_constraints(run_cli: Cli) -> None:
    for permits in (["corp.internal"], ["10.0.0.0/8"], ["corp.internal", "fd00::/8"]):
        home = run_cli.home.parent / ("home-" + "-".join(p.replace("/", "_") for p in permits))
        args = [arg for p in permits for arg in ("--permit", p)]
        assert run_cli("init", "--name", "C", "--no-passphrase", *args, home=home).exit_code == 0
        result = run_cli("doctor", "--json", home=home)
        assert "ca-constraints-open" not in {f["code"] for f in json.loads(result.stdout)}
