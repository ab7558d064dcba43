"""Bad input of every kind: one line on stderr, exit 2 (3 for the environment), nothing written."""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from privca.keys.files import read_ca_key
from privca.keys.types import KeyType
from privca.x509.build import build_csr
from privca.x509.names import parse_names
from tests.conftest import PASSPHRASE, Cli, assert_user_error, openssl, tree_snapshot, write


def _home_state(cli: Cli) -> dict[str, bytes]:
    state = tree_snapshot(cli.home)
    return {k: v for k, v in state.items() if not k.endswith(("-wal", "-shm"))}


def _csr_pem(names: list[str], key=None) -> bytes:
    key = key or KeyType.EC_P256.generate()
    return build_csr(key, parse_names(names)).public_bytes(serialization.Encoding.PEM)


def _tampered_csr(_cli: Cli, tmp: Path) -> Path:
    der = bytearray(
        x509.load_pem_x509_csr(_csr_pem(["db.corp.internal"])).public_bytes(
            serialization.Encoding.DER
        )
    )
    der[-5] ^= 0x01  # flip a bit in the signature
    return write(tmp / "tampered.csr", der)


def _openssl_csr(
    tmp: Path, *args: str, keygen: tuple[str, ...] = ("rsa_keygen_bits:1024",)
) -> Path:
    key, csr = tmp / "k.pem", tmp / "r.csr"
    algorithm = "RSA" if keygen[0].startswith("rsa") else "EC"
    result = openssl("genpkey", "-algorithm", algorithm, "-pkeyopt", keygen[0], "-out", str(key))
    assert result.returncode == 0, result.stderr
    result = openssl(
        "req",
        "-new",
        "-key",
        str(key),
        "-subj",
        "/CN=db.corp.internal",
        "-addext",
        "subjectAltName=DNS:db.corp.internal",
        "-out",
        str(csr),
        *args,
    )
    assert result.returncode == 0, result.stderr
    return csr


def _sha1_csr(tmp: Path) -> Path:
    # cryptography refuses to sign with SHA-1, so the weak CSR comes from openssl.
    return _openssl_csr(tmp, "-sha1", keygen=("ec_paramgen_curve:P-256",))


def _ca_key_csr(cli: Cli, tmp: Path) -> Path:
    key = read_ca_key(cli.home / "private" / "issuing.key", PASSPHRASE)
    return write(tmp / "cakey.csr", _csr_pem(["db.corp.internal"], key))


def _ca_true_csr(tmp: Path) -> Path:
    key = tmp / "k.pem"
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(key))
    csr = tmp / "ca.csr"
    result = openssl(
        "req",
        "-new",
        "-key",
        str(key),
        "-subj",
        "/CN=db.corp.internal",
        "-addext",
        "subjectAltName=DNS:db.corp.internal",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-out",
        str(csr),
    )
    assert result.returncode == 0, result.stderr
    return csr


# Each case: (id, builds the CSR file or argument list, extra flags, expected fragment, exit code)
SIGN_CASES: list[tuple[str, Callable[[Cli, Path], Path], list[str], str, int]] = [
    (
        "garbage",
        lambda c, t: write(t / "g.csr", "hello, I am not a CSR\n"),
        [],
        "not a certificate signing request",
        2,
    ),
    ("empty", lambda c, t: write(t / "e.csr", b""), [], "empty file", 2),
    (
        "binary-noise",
        lambda c, t: write(t / "n.csr", bytes(range(256)) * 4),
        [],
        "not a certificate signing request",
        2,
    ),
    (
        "certificate-not-csr",
        lambda c, t: c.home / "certs" / "root.crt",
        [],
        "this is a certificate",
        2,
    ),
    (
        "huge-base64",
        lambda c, t: write(t / "big.csr", base64.encodebytes(b"\0" * 10_000_000)),
        [],
        "larger than",
        2,
    ),
    ("missing-file", lambda c, t: t / "does-not-exist.csr", [], "does not exist", 2),
    ("directory", lambda c, t: t, [], "directory", 2),
    ("bad-signature", _tampered_csr, [], "invalid self-signature", 2),
    ("rsa-1024", lambda c, t: _openssl_csr(t), [], "too weak", 2),
    ("sha1-signed", lambda c, t: _sha1_csr(t), [], "too weak", 2),
    ("ca-public-key", _ca_key_csr, [], "public key of the issuing CA", 2),
    (
        "outside-policy",
        lambda c, t: write(t / "o.csr", _csr_pem(["db.example.com"])),
        [],
        "outside the permitted DNS subtrees",
        2,
    ),
    (
        "days-zero",
        lambda c, t: write(t / "d.csr", _csr_pem(["db.corp.internal"])),
        ["--days", "0"],
        "not positive",
        2,
    ),
    (
        "days-negative",
        lambda c, t: write(t / "d.csr", _csr_pem(["db.corp.internal"])),
        ["--days", "-5"],
        "not positive",
        2,
    ),
    (
        "days-absurd",
        lambda c, t: write(t / "d.csr", _csr_pem(["db.corp.internal"])),
        ["--days", "100000"],
        "exceeds the policy maximum",
        2,
    ),
    ("strict-ca-true", lambda c, t: _ca_true_csr(t), ["--strict"], "CA rights", 2),
]


@pytest.mark.parametrize(
    ("build", "flags", "fragment", "code"),
    [case[1:] for case in SIGN_CASES],
    ids=[case[0] for case in SIGN_CASES],
)
def test_sign_bad_input(home_cli: Cli, tmp_path: Path, build, flags, fragment, code) -> None:
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    csr = build(home_cli, inputs)
    out = tmp_path / "out"
    before = _home_state(home_cli)
    result = home_cli(
        "sign",
        str(csr),
        "--out",
        str(out),
        *flags,
        "--passphrase-file",
        str(home_cli.passphrase_file),
    )
    assert_user_error(result, fragment, code)
    assert not out.exists()
    assert _home_state(home_cli) == before


def test_wrong_passphrase(home_cli: Cli, tmp_path: Path) -> None:
    wrong = write(tmp_path / "wrong.txt", "not the passphrase\n", 0o600)
    before = _home_state(home_cli)
    result = home_cli(
        "issue", "db.corp.internal", "--out", str(tmp_path / "out"), "--passphrase-file", str(wrong)
    )
    assert_user_error(result, "passphrase does not decrypt")
    assert not (tmp_path / "out").exists()
    assert _home_state(home_cli) == before


ISSUE_CASES = [
    ("empty-label", ["a..corp.internal"], [], "empty label"),
    ("ip-as-dns", ["dns:10.0.0.1"], [], "IP address where a DNS name"),
    ("outside-network", ["192.168.1.1"], [], "outside the permitted networks"),
    # Not offered for services (browsers and NSS refuse Ed25519 TLS certificates).
    ("ed25519-not-offered", ["db.corp.internal"], ["--key-type", "ed25519"], "is not one of"),
    ("days-zero", ["db.corp.internal"], ["--days", "0"], "not positive"),
    # The help says so: more than the policy's max_days is refused, not silently capped.
    (
        "days-over-policy",
        ["db.corp.internal"],
        ["--days", "100000"],
        "exceeds the policy maximum of 825 days",
    ),
    (
        "missing-passphrase-file",
        ["db.corp.internal"],
        ["--passphrase-file", "/nonexistent"],
        "does not exist",
    ),
    ("out-is-a-file", ["db.corp.internal"], ["--out", "__FILE__"], "is a file"),
]


@pytest.mark.parametrize(
    ("names", "flags", "fragment"), [c[1:] for c in ISSUE_CASES], ids=[c[0] for c in ISSUE_CASES]
)
def test_issue_bad_input(home_cli: Cli, tmp_path: Path, names, flags, fragment) -> None:
    a_file = write(tmp_path / "a-file", "x")
    flags = [str(a_file) if f == "__FILE__" else f for f in flags]
    if "--passphrase-file" not in flags:
        flags += ["--passphrase-file", str(home_cli.passphrase_file)]
    if "--out" not in flags:
        flags += ["--out", str(tmp_path / "out")]
    before = _home_state(home_cli)
    result = home_cli("issue", *names, *flags)
    assert_user_error(result, fragment)
    assert not (tmp_path / "out").exists()
    assert _home_state(home_cli) == before


def test_insecure_key_permissions_exit_3_with_fix(home_cli: Cli, tmp_path: Path) -> None:
    key = home_cli.home / "private" / "issuing.key"
    key.chmod(0o440)
    result = home_cli(
        "issue",
        "db.corp.internal",
        "--out",
        str(tmp_path / "out"),
        "--passphrase-file",
        str(home_cli.passphrase_file),
    )
    assert_user_error(result, "accessible by group or others", code=3)
    assert f"chmod 400 '{key}'" in result.stderr
    assert not (tmp_path / "out").exists()


def test_insecure_private_directory_exit_3(home_cli: Cli, tmp_path: Path) -> None:
    (home_cli.home / "private").chmod(0o755)
    result = home_cli(
        "issue",
        "db.corp.internal",
        "--out",
        str(tmp_path / "out"),
        "--passphrase-file",
        str(home_cli.passphrase_file),
    )
    assert_user_error(result, "private key directory", code=3)


def test_second_init_refused(home_cli: Cli) -> None:
    before = _home_state(home_cli)
    result = home_cli("init", "--name", "Again", "--passphrase-file", str(home_cli.passphrase_file))
    assert_user_error(result, "already exists")
    assert _home_state(home_cli) == before


def test_conflicting_init_flags(run_cli: Cli) -> None:
    result = run_cli(
        "init", "--name", "X", "--no-passphrase", "--passphrase-file", str(run_cli.passphrase_file)
    )
    assert_user_error(result, "contradict")
    assert not run_cli.home.exists()


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        # Each would have reached the CRL, OCSP and CA issuers URLs of every certificate.
        ("http://ca\x1b[31m.corp.internal/", "not printable ASCII"),
        ("http://user:secret@ca.corp.internal/", "user part"),
        ("http://ca.corp.internal\\@evil.example/", "backslash"),
        ("ftp://ca.corp.internal/", "must start with http:// or https://"),
        ("http://ca.corp.internal/?x=1", "query or a fragment"),
        ("http:///crl", "no host"),
    ],
    ids=["escape", "userinfo", "backslash", "ftp", "query", "no-host"],
)
def test_init_refuses_a_base_url_certificates_must_not_carry(
    run_cli: Cli, url: str, fragment: str
) -> None:
    result = run_cli(
        "init", "--name", "U", "--url", url, "--passphrase-file", str(run_cli.passphrase_file)
    )
    assert_user_error(result, fragment)
    assert "\x1b" not in result.stderr
    assert "secret" not in result.stderr  # a user part may be a password: never shown
    assert not run_cli.home.exists()


@pytest.mark.parametrize(
    "name",
    ["Evil\u202eAC Internal", "Zero\u200bWidth CA", "Bell\x07 CA", "Del\x7f CA"],
    ids=["right-to-left-override", "zero-width-space", "bell", "delete"],
)
def test_init_refuses_a_ca_name_that_would_read_as_another(run_cli: Cli, name: str) -> None:
    """The name is every certificate's issuer, shown by clients, trust stores and listings:
    a right-to-left override made 'Evil\u202eAC' print as 'EvilCA' reversed, raw, on
    init's own output (--cn refused the same characters already)."""
    result = run_cli("init", "--name", name, "--passphrase-file", str(run_cli.passphrase_file))
    assert_user_error(result, "printable characters")
    assert "\u202e" not in result.stderr and "\x07" not in result.stderr
    assert not run_cli.home.exists()


@pytest.mark.parametrize(
    "argv",
    [
        ("list", "--limit", "99999999999999999999999"),
        ("acme", "eab", "create", "--max-accounts", "99999999999999999999999"),
        ("scan", "--timeout", "nan", "127.0.0.1:1"),
        ("scan", "--timeout", "inf", "127.0.0.1:1"),
        ("import", "certificates", "--from-scan", "127.0.0.1:1", "--timeout", "nan"),
        ("import", "certificates", "--from-scan", "127.0.0.1:1", "--timeout", "-1"),
    ],
    ids=["list-limit", "eab-max-accounts", "scan-nan", "scan-inf", "import-nan", "import-negative"],
)
def test_numbers_out_of_range_are_usage_errors(home_cli: Cli, argv: tuple[str, ...]) -> None:
    """Each was an internal error (exit 70): an integer past the store's columns, or a
    timeout of nan that FloatRange let through to the socket."""
    before = _home_state(home_cli)
    result = home_cli(*argv)
    assert_user_error(result, "Invalid value")
    assert _home_state(home_cli) == before


LONG_LABEL = "a" * 64 + ".corp.internal"


@pytest.mark.parametrize(
    "argv",
    [
        ("scan", f"{LONG_LABEL}:443"),
        ("scan", "a..b.corp.internal:443"),
        ("scan", "127.0.0.1:1", "--name", LONG_LABEL),
        ("import", "certificates", "--from-scan", f"{LONG_LABEL}:443"),
    ],
    ids=["scan-long-label", "scan-empty-label", "scan-long-name", "import-long-label"],
)
def test_a_host_name_the_resolver_cannot_encode_is_an_input_error(
    home_cli: Cli, argv: tuple[str, ...]
) -> None:
    """Python's IDNA encoder raised UnicodeError inside getaddrinfo: exit 70."""
    before = _home_state(home_cli)
    assert_user_error(home_cli(*argv), "host name")
    assert _home_state(home_cli) == before


@pytest.mark.parametrize(
    "url", ["http://my_ca.corp.internal:8443/pki/", "https://[2001:db8::1]/", "http://10.0.0.1"]
)
def test_init_keeps_a_base_url_rfc_3986_allows(run_cli: Cli, url: str) -> None:
    """A URL is not a DNS name: an underscore in its host is allowed (homes made with one
    must keep opening), as IP hosts and ports are."""
    result = run_cli(
        "init", "--name", "U", "--url", url, "--passphrase-file", str(run_cli.passphrase_file)
    )
    assert result.exit_code == 0, result.stderr
    assert f'base_url = "{url.rstrip("/")}"' in (run_cli.home / "privca.toml").read_text()
    assert run_cli("list").exit_code == 0


def test_a_base_url_edited_into_privca_toml_is_refused(home_cli: Cli, tmp_path: Path) -> None:
    settings = home_cli.home / "privca.toml"
    text = settings.read_text()
    assert "base_url" in text
    settings.write_text(text.replace('base_url = ""', 'base_url = "http://ca\\u001b[2J.corp/"'))
    before = _home_state(home_cli)
    out = tmp_path / "out"
    result = home_cli(
        "issue", "x.corp.internal", "--out", str(out),
        "--passphrase-file", str(home_cli.passphrase_file),
    )  # fmt: skip
    assert_user_error(result, "base_url")
    assert _home_state(home_cli) == before
    assert not out.exists()


# Values of another type than privca.toml's, out of range, or under a misspelt key, edited
# in by hand: coerced, each meant something else (bool("false") is True; a bare string
# iterates as one-letter subtrees), overflowed a date later (exit 70), or was ignored and
# left the default in force. (old text, new text, what the error names)
SETTINGS_EDITS = {
    "huge-crl-days": ("crl_days = 7", "crl_days = 99999999", "crl_days"),
    "crl-days-zero": ("crl_days = 7", "crl_days = 0", "crl_days"),
    "crl-days-text": ("crl_days = 7", 'crl_days = "abc"', "crl_days"),
    "root-crl-days-negative": ("root_crl_days = 180", "root_crl_days = -1", "root_crl_days"),
    "single-tier-quoted": ("single_tier = false", 'single_tier = "false"', "single_tier"),
    "wildcards-quoted": ("allow_wildcards = true", 'allow_wildcards = "false"', "allow_wildcards"),
    "excluded-bare-string": ("excluded = []", 'excluded = "evil.example"', "excluded"),
    "huge-max-days": ("max_days = 825", "max_days = 99999999", "max_days"),
    "key-types-text": ('key_types = ["ec-p256", ', 'key_types = "ec-p256"\n# ', "key_types"),
    "acme-not-a-table": ("[ca]", "acme = 5\n[ca]", "[acme] must be a table"),
    "misspelt-policy-key": ("allow_wildcards = true", "allow_wildcard = false", "allow_wildcard "),
    "misspelt-acme-key": ("[store]", '[acme]\neab_require = "required"\n[store]', "eab_require "),
    "unknown-section": ("[store]", '[stores]\nurl = ""\n[store]', "[stores] is not a section"),
    "hsm-module-number": ('hsm_module = ""', "hsm_module = 5", "hsm_module"),
}  # fmt: skip


@pytest.mark.parametrize(
    ("old", "new", "fragment"), SETTINGS_EDITS.values(), ids=list(SETTINGS_EDITS)
)
def test_a_mistyped_or_out_of_range_setting_is_refused(
    home_cli: Cli, tmp_path: Path, old: str, new: str, fragment: str
) -> None:
    settings = home_cli.home / "privca.toml"
    text = settings.read_text()
    assert old in text
    settings.write_text(text.replace(old, new, 1))
    before = _home_state(home_cli)
    out = tmp_path / "out"
    result = home_cli(
        "issue", "*.corp.internal", "--out", str(out),
        "--passphrase-file", str(home_cli.passphrase_file),
    )  # fmt: skip
    assert_user_error(result, fragment)
    assert _home_state(home_cli) == before
    assert not out.exists()
    assert_user_error(home_cli("crl"), fragment)
    assert _home_state(home_cli) == before


VERIFY_CASES = [
    ("garbage-cert", ["__GARBAGE__"], "holds no certificate"),
    ("missing-cert", ["/nonexistent.crt"], "does not exist"),
    ("garbage-key", ["__CERT__", "--key", "__GARBAGE__"], "not a private key"),
    ("missing-ca-file", ["__CERT__", "--ca-file", "/nonexistent.crt"], "does not exist"),
    ("bad-name", ["__CERT__", "--name", "a..b"], "empty label"),
]


@pytest.mark.parametrize(
    ("args", "fragment"), [c[1:] for c in VERIFY_CASES], ids=[c[0] for c in VERIFY_CASES]
)
def test_verify_bad_input(home_cli: Cli, tmp_path: Path, args, fragment) -> None:
    garbage = write(tmp_path / "garbage", "-----BEGIN NOTHING-----\nxx\n-----END NOTHING-----\n")
    cert = home_cli.home / "certs" / "issuing.crt"
    args = [
        str(garbage) if a == "__GARBAGE__" else str(cert) if a == "__CERT__" else a for a in args
    ]
    assert_user_error(home_cli("verify", *args), fragment)


def test_unparseable_settings_is_a_clear_error(home_cli: Cli) -> None:
    (home_cli.home / "privca.toml").write_text("[ca\nname=")
    assert_user_error(home_cli("list"), "not valid TOML")


def test_usage_errors_exit_2(home_cli: Cli) -> None:
    result = home_cli("issue", "--profile", "bogus", "x.corp.internal")
    assert result.exit_code == 2
    assert "Traceback" not in result.stderr


def test_export_openssl_index_to_a_file_is_a_user_error(home_cli: Cli, tmp_path: Path) -> None:
    target = write(tmp_path / "a-file", "x")
    assert_user_error(home_cli("export", "openssl-index", "--out", str(target)), "not a directory")
    assert target.read_text() == "x"


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (("issue", "p.corp.internal", "--p12-passphrase-file", "__PASS__", "--out", "__OUT__"),
         "goes with --p12"),
        (("renew", "web.corp.internal", "--reuse-key", "--key-type", "rsa-2048",
          "--out", "__OUT__"), "contradict each other"),
    ],
    ids=["p12-passphrase-without-p12", "key-type-with-reuse-key"],
)  # fmt: skip
def test_flags_that_contradict_are_refused_not_ignored(
    home_cli: Cli, tmp_path: Path, argv: tuple[str, ...], fragment: str
) -> None:
    """Each used to be dropped without a word: no PKCS#12 file written, the old key reused
    whatever type was asked for."""
    out = tmp_path / "out"
    args = [
        str(home_cli.passphrase_file) if a == "__PASS__" else str(out) if a == "__OUT__" else a
        for a in argv
    ]
    if argv[0] == "renew":
        issued = home_cli("issue", "web.corp.internal", "--out", str(tmp_path / "first"),
                          "--passphrase-file", str(home_cli.passphrase_file))  # fmt: skip
        assert issued.exit_code == 0, issued.stderr
    before = _home_state(home_cli)
    result = home_cli(*args, "--passphrase-file", str(home_cli.passphrase_file))
    assert_user_error(result, fragment)
    assert _home_state(home_cli) == before
    assert not out.exists()
