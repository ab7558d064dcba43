"""CA keys in a real PKCS#11 token (SoftHSM2): init, issue, CRL, rotation, wrong PIN."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from privca.authority import CertificateAuthority
from privca.errors import KeyUnavailable, WrongPassphrase
from privca.keys.types import KeyType
from tests.conftest import Cli, assert_user_error, openssl, require_tool, write
from tests.server.conftest import free_port

MODULE = "/usr/lib/softhsm/libsofthsm2.so"
PIN = b"31415926"


@pytest.fixture
def softhsm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A private SoftHSM2 token directory with one initialised token labelled 'privca'."""
    require_tool("softhsm2-util")
    if not Path(MODULE).exists():
        pytest.skip("SoftHSM2 module missing")
    tokens = tmp_path / "tokens"
    tokens.mkdir()
    conf = write(
        tmp_path / "softhsm2.conf",
        f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n",
    )
    monkeypatch.setenv("SOFTHSM2_CONF", str(conf))
    subprocess.run(
        [
            "softhsm2-util",
            "--init-token",
            "--free",
            "--label",
            "privca",
            "--pin",
            PIN.decode(),
            "--so-pin",
            "27182818",
        ],
        check=True,
        capture_output=True,
        env={**os.environ, "SOFTHSM2_CONF": str(conf)},
    )
    yield "privca"


@pytest.mark.parametrize("key_type", [KeyType.EC_P384, KeyType.RSA_2048], ids=str)
def test_hsm_ca_issues_certificates_openssl_accepts(
    softhsm: str, tmp_path: Path, key_type: KeyType
) -> None:
    home = tmp_path / "ca"
    ca = CertificateAuthority.init(
        home, "HSM CA", key_type=key_type, passphrase=PIN, hsm_module=MODULE, hsm_token=softhsm
    )
    # No CA key file: the CA keys stay on the token. (eab.key seals EAB secrets at rest.)
    assert [p.name for p in (home / "private").iterdir()] == ["eab.key"]
    ca.close()
    ca = CertificateAuthority.open(home, PIN)
    issued = ca.issue(["db.corp.internal"])
    leaf = write(tmp_path / "leaf.pem", issued.certificate_pem())
    result = openssl(
        "verify",
        "-x509_strict",
        "-purpose",
        "sslserver",
        "-CAfile",
        str(home / "certs" / "root.crt"),
        "-untrusted",
        str(home / "certs" / "issuing.crt"),
        str(leaf),
    )
    assert result.returncode == 0, result.stderr
    ca.revoke(format(issued.serial, "x"))
    crl = ca.crl()
    assert crl.is_signature_valid(ca.issuing.public_key())
    new_issuing = ca.rotate_issuing()
    assert ca.issue(["b.corp.internal"]).certificate.issuer == new_issuing.subject
    assert isinstance(new_issuing, x509.Certificate)
    ca.close()


def test_wrong_pin_is_a_user_error(softhsm: str, tmp_path: Path) -> None:
    home = tmp_path / "ca"
    CertificateAuthority.init(
        home, "HSM CA", passphrase=PIN, hsm_module=MODULE, hsm_token=softhsm
    ).close()
    ca = CertificateAuthority.open(home, b"00000000")
    with pytest.raises(WrongPassphrase):
        ca.issue(["db.corp.internal"])
    assert ca.inventory.count() == 0
    ca.close()


def test_missing_module_is_environment_error(tmp_path: Path) -> None:
    with pytest.raises(KeyUnavailable):
        CertificateAuthority.init(
            tmp_path / "ca",
            "X",
            passphrase=PIN,
            hsm_module=str(tmp_path / "nope.so"),
            hsm_token="privca",
        )
    assert not (tmp_path / "ca").exists()


def test_cli_init_with_hsm(softhsm: str, run_cli: Cli, tmp_path: Path) -> None:
    pin_file = write(tmp_path / "pin", PIN + b"\n", 0o600)
    result = run_cli(
        "init",
        "--name",
        "HSM CA",
        "--hsm-module",
        MODULE,
        "--hsm-token",
        softhsm,
        "--passphrase-file",
        str(pin_file),
    )
    assert result.exit_code == 0, result.stderr
    result = run_cli(
        "issue",
        "a.corp.internal",
        "--out",
        str(tmp_path / "out"),
        "--passphrase-file",
        str(pin_file),
    )
    assert result.exit_code == 0, result.stderr
    wrong = write(tmp_path / "wrong", "99999999\n", 0o600)
    result = run_cli(
        "issue", "b.corp.internal", "--out", str(tmp_path / "out2"), "--passphrase-file", str(wrong)
    )
    assert_user_error(result, "PIN was refused")


def test_serve_workers_refused_with_keys_in_a_token(
    softhsm: str, run_cli: Cli, tmp_path: Path
) -> None:
    """README: `--workers` is refused with CA keys on a PKCS#11 token (a token session
    does not survive the fork into workers); one line, exit 2, nothing served."""
    pin_file = write(tmp_path / "pin", PIN + b"\n", 0o600)
    result = run_cli(
        "init", "--name", "HSM CA", "--hsm-module", MODULE, "--hsm-token", softhsm,
        "--passphrase-file", str(pin_file),
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    result = run_cli(
        "serve", "--no-tls", "--no-acme", "--listen", f"127.0.0.1:{free_port()}",
        "--workers", "2", "--passphrase-file", str(pin_file),
    )  # fmt: skip
    assert_user_error(result, "--workers needs the CA keys in files")
    # The publication process is a fork too (README: run a second serve instead).
    result = run_cli(
        "serve", "--no-tls", "--no-acme", "--listen", f"127.0.0.1:{free_port()}",
        "--publish-listen", f"127.0.0.1:{free_port()}", "--passphrase-file", str(pin_file),
    )  # fmt: skip
    assert_user_error(result, "--publish-listen needs the CA keys in files")
    assert "--no-acme --no-tls" in result.stderr  # the hint: a second serve


def _init_hsm(run_cli: Cli, token: str, pin_file: Path):
    return run_cli(
        "init", "--name", "HSM CA", "--hsm-module", MODULE, "--hsm-token", token,
        "--passphrase-file", str(pin_file),
    )  # fmt: skip


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")
def test_a_pin_file_another_user_owns_is_refused(
    softhsm: str, run_cli: Cli, tmp_path: Path
) -> None:
    """The PIN file is a secret file like a passphrase file: owned by someone else (who
    can change it or its mode at will) it is refused, exit 3, with the chown fix."""
    theirs = write(tmp_path / "their-pin", PIN + b"\n", 0o600)
    os.chown(theirs, 65534, -1)
    assert_user_error(_init_hsm(run_cli, softhsm, theirs), f"chown {os.geteuid()}", code=3)
    assert not run_cli.home.exists()
    ours = write(tmp_path / "pin", PIN + b"\n", 0o600)
    assert _init_hsm(run_cli, softhsm, ours).exit_code == 0
    out = tmp_path / "out"
    issued = run_cli(
        "issue", "a.corp.internal", "--out", str(out), "--passphrase-file", str(theirs)
    )
    assert_user_error(issued, "owned by uid 65534", code=3)
    assert not out.exists()


def test_a_pin_that_is_not_utf8_is_an_input_error(
    softhsm: str, run_cli: Cli, tmp_path: Path
) -> None:
    """PKCS#11 PINs are UTF-8 text; other bytes (a PIN file saved in Latin-1, say) used to
    end in an internal error (exit 70, UnicodeDecodeError) from the file or the variable."""
    assert _init_hsm(run_cli, softhsm, write(tmp_path / "pin", PIN + b"\n", 0o600)).exit_code == 0
    binary = write(tmp_path / "binpin", b"\xff\xfe1234\n", 0o600)
    out = tmp_path / "out"
    issued = run_cli(
        "issue", "a.corp.internal", "--out", str(out), "--passphrase-file", str(binary)
    )
    assert_user_error(issued, "HSM PIN is not valid UTF-8")
    assert not out.exists()
    env = {os.fsencode(k): os.fsencode(v) for k, v in os.environ.items()}
    env[b"PRIVCA_PASSPHRASE"] = b"\xff\xfe1234"
    done = subprocess.run(
        [sys.executable, "-m", "privca", "--home", str(run_cli.home), "issue", "b.corp.internal",
         "--out", str(out)],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("privca: error: the HSM PIN is not valid UTF-8")
    assert "Traceback" not in done.stderr and not out.exists()


def test_init_and_a_replaced_key_say_what_is_true_of_an_hsm_home(
    softhsm: str, run_cli: Cli, tmp_path: Path
) -> None:
    """init's summary used to promise key files (0400, encrypted) in private/ for keys on
    the token, and a key swapped on the token was met with "restore the right key file
    into private/", which no file can do."""
    import pkcs11

    pin_file = write(tmp_path / "pin", PIN + b"\n", 0o600)
    made = _init_hsm(run_cli, softhsm, pin_file)
    assert made.exit_code == 0, made.stderr
    assert f"keys:              on PKCS#11 token '{softhsm}'" in made.stdout
    assert "0400" not in made.stdout and "private/" not in made.stdout
    # Replace the issuing key on the token by another under the same label.
    with (
        pkcs11.lib(MODULE)
        .get_token(token_label=softhsm)
        .open(user_pin=PIN.decode(), rw=True) as session
    ):
        # SoftHSM reads its configuration once per process: the token may hold other
        # tests' keys, so the label is the one this home records.
        with sqlite3.connect(run_cli.home / "privca.db") as db:
            (key_ref,) = db.execute(
                "SELECT key_ref FROM authorities WHERE role = 'issuing'"
            ).fetchone()
        label = key_ref.rpartition("object=")[2]
        for found in list(session.get_objects({pkcs11.Attribute.LABEL: label})):
            found.destroy()
        session.generate_keypair(pkcs11.KeyType.RSA, 2048, store=True, label=label)
    out = tmp_path / "out"
    issued = run_cli(
        "issue", "a.corp.internal", "--out", str(out), "--passphrase-file", str(pin_file)
    )
    assert_user_error(issued, "does not match the issuing certificate", code=3)
    assert "restore the token from the HSM's backup" in issued.stderr
    assert "key file" not in issued.stderr and "private/" not in issued.stderr
    assert not out.exists()


def _issuing_label(home: Path) -> str:
    with sqlite3.connect(home / "privca.db") as db:
        (key_ref,) = db.execute("SELECT key_ref FROM authorities WHERE role = 'issuing'").fetchone()
    return str(key_ref).rpartition("object=")[2]


def _rows(home: Path) -> tuple[int, int]:
    with sqlite3.connect(home / "privca.db") as db:
        return (
            db.execute("SELECT count(*) FROM certificates").fetchone()[0],
            db.execute("SELECT count(*) FROM audit_log").fetchone()[0],
        )


def test_a_token_key_that_cannot_sign_is_refused_before_anything_is_written(
    softhsm: str, run_cli: Cli, tmp_path: Path
) -> None:
    """A key whose CKA_SIGN is false used to end `issue` in exit 70 (AttributeError:
    'PrivateKey' object has no attribute 'sign'), a "failed" certificate row and an audit
    entry; it is refused when loaded, exit 3, nothing written."""
    import pkcs11

    pin_file = write(tmp_path / "pin", PIN + b"\n", 0o600)
    assert _init_hsm(run_cli, softhsm, pin_file).exit_code == 0
    label = _issuing_label(run_cli.home)
    with (
        pkcs11.lib(MODULE)
        .get_token(token_label=softhsm)
        .open(user_pin=PIN.decode(), rw=True) as session
    ):
        # The CA's own key (it matches its certificate), no longer allowed to sign.
        private = session.get_key(object_class=pkcs11.ObjectClass.PRIVATE_KEY, label=label)
        private[pkcs11.Attribute.SIGN] = False
    before = _rows(run_cli.home)
    out = tmp_path / "out"
    issued = run_cli(
        "issue", "a.corp.internal", "--out", str(out), "--passphrase-file", str(pin_file)
    )
    assert_user_error(issued, f"the key '{label}' on token '{softhsm}' cannot sign", code=3)
    assert "CKA_SIGN" in issued.stderr
    assert _rows(run_cli.home) == before and not out.exists()


def test_two_keys_under_one_label_are_refused_without_a_stray_traceback(
    softhsm: str, tmp_path: Path
) -> None:
    """Refused (exit 3), but get_key's unfinished search was finished by the garbage
    collector after the session had closed: "Exception ignored ... SessionHandleInvalid"
    and a traceback followed the error on stderr. Every step in a process of its own:
    that line is the interpreter's, and SoftHSM2 reads its configuration once per process."""
    home, pin_file = tmp_path / "ca", write(tmp_path / "pin", PIN + b"\n", 0o600)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=120)

    made = run(
        "-m", "privca", "--home", str(home), "init", "--name", "HSM CA", "--hsm-module", MODULE,
        "--hsm-token", softhsm, "--passphrase-file", str(pin_file),
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    twin = run("-c", f"""import pkcs11
with pkcs11.lib({MODULE!r}).get_token(token_label={softhsm!r}).open(
        user_pin={PIN.decode()!r}, rw=True) as session:
    session.generate_keypair(pkcs11.KeyType.RSA, 2048, store=True, label={_issuing_label(home)!r})
""")  # fmt: skip
    assert twin.returncode == 0, twin.stderr
    done = run(
        "-m", "privca", "--home", str(home), "issue", "a.corp.internal",
        "--out", str(tmp_path / "out"), "--passphrase-file", str(pin_file),
    )  # fmt: skip
    assert done.returncode == 3, done.stderr
    assert done.stderr.startswith("privca: error: key 'pkcs11:token=")
    assert "not unique" in done.stderr
    assert "Exception ignored" not in done.stderr and "Traceback" not in done.stderr


def _module_copy(directory: Path) -> Path:
    directory.mkdir(mode=0o755, exist_ok=True)
    copy = directory / "libsofthsm2.so"
    copy.write_bytes(Path(MODULE).resolve().read_bytes())
    copy.chmod(0o755)
    return copy


def test_a_relative_module_path_is_refused(
    softhsm: str, run_cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--hsm-module ./mod.so was stored as given, so the directory a later command ran
    from decided which library the CA process loaded with the PIN in hand: refused at init
    and in privca.toml (written by hand, or by an older privca), exit 2, with a hint."""
    pin_file = write(tmp_path / "pin", PIN + b"\n", 0o600)
    _module_copy(tmp_path / "here")
    monkeypatch.chdir(tmp_path / "here")
    made = run_cli(
        "init", "--name", "HSM CA", "--hsm-module", "./libsofthsm2.so", "--hsm-token", softhsm,
        "--passphrase-file", str(pin_file),
    )  # fmt: skip
    assert_user_error(made, "--hsm-module './libsofthsm2.so' is not an absolute path")
    assert "hint: give the module's full path" in made.stderr
    assert not run_cli.home.exists()
    assert _init_hsm(run_cli, softhsm, pin_file).exit_code == 0
    toml = run_cli.home / "privca.toml"
    toml.write_text(toml.read_text().replace(f'"{MODULE}"', '"./libsofthsm2.so"'))
    out = tmp_path / "out"
    issued = run_cli(
        "issue", "a.corp.internal", "--out", str(out), "--passphrase-file", str(pin_file)
    )
    assert_user_error(issued, "hsm_module './libsofthsm2.so' is not an absolute path")
    assert not out.exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")
def test_a_module_others_could_replace_is_refused(
    softhsm: str, run_cli: Cli, tmp_path: Path
) -> None:
    """A module file, or a directory on its path, that a user other than root and the one
    running privca can write is refused before it is loaded (exit 3, one line and a hint):
    whoever replaces it runs code in the process that holds the PIN."""
    pin_file = write(tmp_path / "pin", PIN + b"\n", 0o600)

    def init(module: Path):
        return run_cli(
            "init", "--name", "HSM CA", "--hsm-module", str(module), "--hsm-token", softhsm,
            "--passphrase-file", str(pin_file),
        )  # fmt: skip

    shared = _module_copy(tmp_path / "shared")
    shared.parent.chmod(0o777)
    assert_user_error(init(shared), "can be written by group or others (mode 0777)", code=3)
    assert "chmod go-w" in init(shared).stderr
    shared.parent.chmod(0o1777)  # sticky, as /tmp: only the owner may replace the file
    shared.chmod(0o666)
    assert_user_error(init(shared), f"the PKCS#11 module '{shared}' can be written", code=3)
    shared.chmod(0o755)
    os.chown(shared, 65534, -1)
    assert_user_error(init(shared), "is owned by uid 65534", code=3)
    assert not run_cli.home.exists()

    # A home whose module became replaceable after init: refused before it is loaded.
    assert _init_hsm(run_cli, softhsm, pin_file).exit_code == 0
    toml = run_cli.home / "privca.toml"
    toml.write_text(toml.read_text().replace(f'"{MODULE}"', f'"{shared}"'))
    out = tmp_path / "out"
    issued = run_cli(
        "issue", "a.corp.internal", "--out", str(out), "--passphrase-file", str(pin_file)
    )
    assert_user_error(issued, "is owned by uid 65534", code=3)
    assert not out.exists()
    # doctor loads no key: it names the module as a critical finding instead.
    found = run_cli("doctor", "--json")
    assert found.exit_code == 1, found.output
    assert any(
        f["code"] == "hsm-module" and f["severity"] == "critical" and "uid 65534" in f["message"]
        for f in json.loads(found.stdout)
    ), found.stdout


def test_a_failed_init_leaves_no_keys_on_the_token(
    softhsm: str, run_cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The keys are generated on the token before the home is made; an init that failed
    after that (here: the store does not answer) left both key pairs there, two more at
    each retry. They are destroyed, and only they: a key already on the token stays."""
    import pkcs11

    def objects() -> list[str]:
        with (
            pkcs11.lib(MODULE)
            .get_token(token_label=softhsm)
            .open(user_pin=PIN.decode(), rw=True) as session
        ):
            return sorted(str(o[pkcs11.Attribute.LABEL]) for o in session.get_objects())

    with (
        pkcs11.lib(MODULE)
        .get_token(token_label=softhsm)
        .open(user_pin=PIN.decode(), rw=True) as session
    ):
        session.generate_keypair(pkcs11.KeyType.RSA, 2048, store=True, label="someone-else")
    before = objects()
    monkeypatch.setenv("PRIVCA_STORE_PASSWORD", "x")
    pin_file = write(tmp_path / "pin", PIN + b"\n", 0o600)
    for _ in range(2):
        made = run_cli(
            "init", "--name", "HSM CA", "--store-url", "postgresql://privca@127.0.0.1:1/x",
            "--hsm-module", MODULE, "--hsm-token", softhsm, "--passphrase-file", str(pin_file),
        )  # fmt: skip
        assert made.exit_code == 3, made.output
        assert not run_cli.home.exists()
    assert objects() == before and "someone-else" in before


def test_without_python_pkcs11_an_hsm_init_is_exit_3_with_the_install_command(
    softhsm: str, tmp_path: Path
) -> None:
    """`pip install .` (the README's Quickstart) leaves out python-pkcs11, the `hsm` extra:
    the README's HSM `init` then ended in "internal error: ModuleNotFoundError", exit 70.
    The process below cannot import pkcs11, as on a machine without the extra."""
    pin = write(tmp_path / "pin", PIN + b"\n", 0o600)
    home = tmp_path / "ca"
    program = (
        "import sys; sys.modules['pkcs11'] = None\n"  # what an uninstalled package gives
        "from privca.cli.main import main\n"
        "sys.argv[0] = 'privca'\n"
        "main()\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", program, "--home", str(home), "init", "--name", "HSM CA",
         "--hsm-module", MODULE, "--hsm-token", softhsm, "--passphrase-file", str(pin)],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert result.returncode == 3, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    assert "python-pkcs11" in result.stderr
    assert "hint: install privca with its HSM support: pip install 'privca[hsm]'" in result.stderr
    assert not home.exists()
