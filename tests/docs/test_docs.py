"""Every command in README.md and docs/*.md runs, as written and in order, in a throwaway
machine (tests/docs/sandbox.py): a doc line that stops working fails the suite.

How a line runs:

- Each Markdown file is one shell session (`export` and `eval` carry on). docs/*.md
  pages start where the README's first two Tour lines leave off (PRELUDE: a CA in
  /srv/ca with PRIVCA_HOME set); the README starts from nothing.
- `privca serve ...` lines start in the background, are probed until `/health` answers
  (over TLS for the --server-name, trusting the CA's root), and run until the next serve
  line or the end of the file.
- Everything else must exit 0, unless EXPECTED below says otherwise.

Lines added to the docs are picked up by themselves. A line that cannot run here as
written gets an entry in EXPECTED with a reason (used sparingly); a whole block that is
not commands (a config file, a manifest) gets `<!-- doc-test: skip: REASON -->` on the
line above it in the Markdown (see tests/docs/markdown.py). An EXPECTED entry whose line
is no longer in the docs fails the suite, so the table cannot go stale.
"""

from __future__ import annotations

import itertools
import os
import pwd
import re
import shlex
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import require_tool
from tests.docs.markdown import (
    Command,
    MarkdownError,
    blocks,
    commands,
    file_commands,
    strip_comment,
)
from tests.docs.sandbox import DOC_PORTS, PROBE, Outcome, Sandbox

REPO = Path(__file__).resolve().parents[2]
DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
PRELUDE = (
    'privca --home /srv/ca init --name "Example Internal CA" '
    "--permit corp.internal --permit 10.0.0.0/8",
    "export PRIVCA_HOME=/srv/ca",
)


@dataclass(frozen=True)
class Expect:
    """How one doc line is run when it cannot simply be run and exit 0."""

    reason: str
    status: int = 0
    skip: bool = False
    instead: str | None = None  # run this instead (the line's own privca part)
    given: tuple[str, ...] = ()  # GIVENS to set up first (what the line assumes exists)
    needs_root: bool = False  # binds a port below 1024 (an ACME client's http-01 server)
    # Fails today because of work on another branch: the test fails when it starts to
    # pass, so the entry is removed as soon as the fix lands.
    broken: bool = False


EXPECTED: dict[tuple[str, str], Expect] = {
    (
        "README.md",
        "python3 -m venv .venv && . .venv/bin/activate && pip install . && privca quickstart",
    ): Expect(
        "the test environment is that virtualenv with privca installed; what the line ends "
        "with runs, twice, since quickstart must be re-runnable",
        instead="privca quickstart && privca quickstart",
    ),
    (
        "README.md",
        "python3 -m venv .venv && . .venv/bin/activate && pip install -q -e '.[test]' && "
        "python3 -m pytest",
    ): Expect("it runs this very test suite", skip=True),
    ("README.md", "privca needs-renewal /etc/ssl/db/db.corp.internal.crt"): Expect(
        "exit 1 means 'not yet': the certificate was issued minutes ago", status=1
    ),
    ("README.md", "privca scan db.corp.internal:5432 --name db.corp.internal"): Expect(
        "needs the PostgreSQL it scans", given=("postgres-serving-db",)
    ),
    (
        "README.md",
        "lego --server https://ca.corp.internal:8443/acme/directory --email ops@corp.internal "
        "--accept-tos --domains web.corp.internal --http run",
    ): Expect("lego's http-01 server listens on port 80", needs_root=True),
    (
        "README.md",
        "privca --home /srv/old-ca import openssl /etc/ssl/ca --certs '/etc/ssl/services/*.crt'",
    ): Expect("needs a CA made by hand with the OpenSSL runbook", given=("runbook-ca",)),
    ("README.md", "privca --home /srv/old-ca doctor"): Expect(
        "exit 1: the hand-made CA has weaknesses, which is what doctor reports", status=1
    ),
    ("README.md", "privca --home /srv/easyrsa-ca import easyrsa /etc/easy-rsa/pki"): Expect(
        "needs a PKI made with easy-rsa", given=("easyrsa-pki",)
    ),
    (
        "docs/acme.md",
        "REQUESTS_CA_BUNDLE=/etc/privca/root.pem certbot certonly --standalone --server "
        "https://ca.corp.internal/acme/directory --agree-tos --register-unsafely-without-email "
        "-d web.corp.internal",
    ): Expect("certbot's standalone http-01 server listens on port 80", needs_root=True),
    (
        "docs/postgresql.md",
        'psql "host=db.corp.internal dbname=app user=app sslmode=verify-full sslrootcert=root.crt"',
    ): Expect("needs the database host the page configures", given=("postgres-recipe",)),
    (
        "docs/acme.md",
        "LEGO_CA_CERTIFICATES=/etc/privca/root.pem lego --server "
        "https://ca.corp.internal/acme/directory --accept-tos --email ops@corp.internal "
        "--domains web.corp.internal --http run",
    ): Expect("lego's http-01 server listens on port 80", needs_root=True),
}


# what a line assumes exists ----------------------------------------------------------------


def _runbook_ca(sandbox: Sandbox) -> None:
    """/etc/ssl/ca as the OpenSSL runbook leaves it, its services' certificates in
    /etc/ssl/services (tests/adopt builds the same for the import tests)."""
    require_tool("openssl")
    from tests.adopt.conftest import build_runbook_ca

    built = build_runbook_ca(sandbox.base / "runbook")
    sandbox.path("/etc/ssl").mkdir(parents=True, exist_ok=True)
    shutil.move(built / "ssl-ca", sandbox.path("/etc/ssl/ca"))
    shutil.move(built / "services", sandbox.path("/etc/ssl/services"))


def _easyrsa_pki(sandbox: Sandbox) -> None:
    from tests.adopt.conftest import EASYRSA, easyrsa

    if not EASYRSA.exists():
        _missing("easy-rsa")
    pki = sandbox.path("/etc/easy-rsa/pki")
    pki.parent.mkdir(parents=True)
    easyrsa(pki, "init-pki")
    easyrsa(pki, "--req-cn=Example EasyRSA CA", "build-ca", "nopass")
    easyrsa(pki, "build-server-full", "srv1", "nopass")


def _postgres_serving_db(sandbox: Sandbox) -> None:
    """A real PostgreSQL with ssl=on and the files `privca issue` wrote to /etc/ssl/db,
    on the sandbox's port 5432."""
    from tests.pg import PG_USER, PostgresCluster, find_bindir

    bindir = find_bindir()
    if bindir is None:
        _missing("PostgreSQL server binaries")
    cluster = PostgresCluster(bindir)
    cluster.start()
    sandbox.cleanups.append(cluster.stop)
    assert cluster.directory is not None
    files = {"server.crt": "db.corp.internal.chain.pem", "server.key": "db.corp.internal.key"}
    for target, source in files.items():
        path = cluster.directory / target
        shutil.copyfile(sandbox.path(f"/etc/ssl/db/{source}"), path)
        path.chmod(0o600)
        if os.geteuid() == 0:
            entry = pwd.getpwnam(PG_USER)
            os.chown(path, entry.pw_uid, entry.pw_gid)
    cluster.execute(
        f"ALTER SYSTEM SET ssl_cert_file = '{cluster.directory / 'server.crt'}'",
        f"ALTER SYSTEM SET ssl_key_file = '{cluster.directory / 'server.key'}'",
        "ALTER SYSTEM SET ssl = on",
        "SELECT pg_reload_conf()",
    )
    sandbox.map_port(5432, cluster.port)


def _postgres_recipe(sandbox: Sandbox) -> None:
    """The database host of docs/postgresql.md: a real PostgreSQL 15 configured as the page
    says, with the TLS files its earlier lines wrote, a role `app` (password) and a role
    `alice` (certificate), on a loopback address. psql resolves no names through the
    sandbox, so PGHOSTADDR/PGPORT carry the address while the page's `host=` stays the name
    that verify-full checks. The client's copy of root.crt is not made here: the page must
    say how the client gets it (a reader following it had none)."""
    from tests.interop._postgres_tls import TlsPostgres
    from tests.pg import find_bindir

    bindir = find_bindir()
    if bindir is None:
        _missing("PostgreSQL server binaries")
    server = TlsPostgres(bindir)
    sandbox.cleanups.append(server.stop)
    server.initdb()
    tls = sandbox.path("/etc/postgresql/15/main/tls")
    chain = server.install_tls_file(tls / "db.corp.internal.chain.pem", "server.crt")
    key = server.install_tls_file(tls / "db.corp.internal.key", "server.key", 0o600)
    root = server.install_tls_file(tls / "root.crt", "root.crt")
    server.configure(
        f"ssl = on\nssl_cert_file = '{chain}'\nssl_key_file = '{key}'\nssl_ca_file = '{root}'\n"
    )
    server.write_hba(
        "hostssl all app 127.0.0.0/8 scram-sha-256\nhostssl all all 127.0.0.0/8 cert\n"
    )
    server.start()
    server.sql("CREATE ROLE app LOGIN PASSWORD 'doc-test-password'")
    server.sql("CREATE ROLE alice LOGIN")
    server.sql("CREATE DATABASE app")
    sandbox.run(
        f"export PGHOSTADDR={server.address} PGPORT=5432 PGPASSWORD=doc-test-password "
        "PGCONNECT_TIMEOUT=10"
    )


GIVENS: dict[str, Callable[[Sandbox], None]] = {
    "runbook-ca": _runbook_ca,
    "easyrsa-pki": _easyrsa_pki,
    "postgres-serving-db": _postgres_serving_db,
    "postgres-recipe": _postgres_recipe,
}


class _Unavailable(Exception):
    """What a line needs is not on this machine (never in CI: .ci/run installs it)."""


def _missing(what: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{what} is missing in CI; .ci/run must install it")
    raise _Unavailable(f"{what} is not installed")


# running a document ------------------------------------------------------------------------


def _check_program(line: str) -> None:
    """A line whose program (lego, certbot...) is not installed is not run here, and
    fails in CI, which installs everything."""
    words = [w for w in shlex.split(line) if "=" not in w.split("/")[0]]
    program = words[0] if words else ""
    if program and re.fullmatch(r"[\w./+-]+", program) is None:
        pytest.fail(f"{line!r} is not a command: fence it with its language (```toml)")
    if program and program not in ("eval", "export", "cd") and shutil.which(program) is None:
        _missing(program)


def _key(command: Command) -> tuple[str, str]:
    return command.source, strip_comment(command.text)


def _lab_validation(sandbox: Sandbox, line: str) -> None:
    """Every name of the docs resolves to 127.0.0.1 in the sandbox, where ACME clients
    answer challenges on this one machine; privca's validator reaches loopback only when
    the operator opts in for such a single-host lab, so the sandbox opts in (a real
    deployment resolves the names to the service hosts and needs no such setting)."""
    import dataclasses

    from privca.settings import Settings

    words = shlex.split(line)
    if "--home" in words:
        home = words[words.index("--home") + 1]
    else:
        home = sandbox.run('printf %s "$PRIVCA_HOME"').stdout.strip()
    path = Path(home) / "privca.toml"
    if not home or not path.exists():
        return
    settings = Settings.read(path)
    if settings.acme.get("allow_loopback") is not True:
        acme = {**settings.acme, "allow_loopback": True}
        dataclasses.replace(settings, acme=acme).write(path)


def _is_serve(line: str) -> bool:
    """A `privca [global options] serve ...` line (not `--profile server`, say)."""
    words = shlex.split(line)
    return bool(words) and words[0] == "privca" and "serve" in words


def _serve_probe(sandbox: Sandbox, line: str, pid: int) -> str:
    """The probe command for a `privca serve` line: /health over TLS for its first
    --server-name (trusting the CA's root), or plain HTTP with --no-tls."""
    words = shlex.split(line)
    serve = words.index("serve")
    global_options = " ".join(shlex.quote(w) for w in words[1:serve])
    listen, names, tls = "127.0.0.1:8443", [], True
    for index, word in enumerate(words[serve:], serve):
        if word == "--listen":
            listen = words[index + 1]
        elif word == "--server-name":
            names.append(words[index + 1])
        elif word == "--no-tls":
            tls = False
    host, _, port = listen.rpartition(":")
    if not tls:
        target = "127.0.0.1" if host in ("0.0.0.0", "::", "[::]") else host
        return f"python3 {PROBE} http://{target}:{port}/health --pid {pid}"
    root = sandbox.base / "probe-root.pem"
    name = names[0] if names else "localhost"
    return (
        f"privca {global_options} export root --out {root} && "
        f"python3 {PROBE} https://{name}:{port}/health --cafile {root} --pid {pid}"
    )


@dataclass
class Ran:
    command: Command
    rewritten: str
    outcome: Outcome
    note: str = ""


def _report(ran: Ran, problem: str, sandbox: Sandbox) -> str:
    def tail(text: str) -> str:
        return "\n".join(text.splitlines()[-40:]) or "(nothing)"

    logs = "".join(
        f"\n--- log of background {pid} ---\n{tail(log.read_text(errors='replace'))}"
        for pid, log in sandbox.background
        if log.exists()
    )
    return (
        f"{ran.command.where}: {problem}\n"
        f"  as written: {ran.command.text}\n  as run:     {ran.rewritten}\n"
        f"--- stdout ---\n{tail(ran.outcome.stdout)}\n--- stderr ---\n{tail(ran.outcome.stderr)}"
        + logs
    )


def run_document(sandbox: Sandbox, document: list[Command]) -> list[str]:
    """Run the commands in order; fail at the first that does not do what it should.
    Returns notes about lines not run (skips, missing root)."""
    notes: list[str] = []
    for command in document:
        expect = EXPECTED.get(_key(command), Expect(""))
        if expect.skip:
            notes.append(f"{command.where}: not run: {expect.reason}")
            continue
        if expect.needs_root and os.geteuid() != 0:
            if os.environ.get("CI"):
                pytest.fail(f"{command.where} needs root ({expect.reason}); CI runs as root")
            notes.append(f"{command.where}: not run (not root): {expect.reason}")
            continue
        try:
            if command.language == "shell":
                _check_program(strip_comment(expect.instead or command.text))
            for given in expect.given:
                GIVENS[given](sandbox)
        except _Unavailable as exc:
            notes.append(f"{command.where}: not run: {exc}")
            continue
        text = expect.instead or command.text
        if command.language == "python":
            rewritten = f"python3 - <<'PRIVCA_DOC_PY'\n{sandbox.reroot(text)}PRIVCA_DOC_PY"
        else:
            rewritten = sandbox.reroot(text)
        line = strip_comment(text)
        if command.language == "shell" and _is_serve(line):
            sandbox.stop_background()
            rewritten = sandbox.reroot(line)  # no trailing comment: `&` follows
            _lab_validation(sandbox, rewritten)
            pid = sandbox.start(rewritten)
            outcome = sandbox.run(_serve_probe(sandbox, sandbox.reroot(line), pid), timeout=90)
        else:
            outcome = sandbox.run(rewritten, timeout=300)
        ran = Ran(command, rewritten, outcome)
        worked = outcome.status == expect.status
        if expect.broken:
            if worked:
                pytest.fail(
                    _report(
                        ran, f"works now: remove its entry from EXPECTED ({expect.reason})", sandbox
                    )
                )
            said = " | ".join((outcome.stdout + outcome.stderr).strip().splitlines()[-3:])
            notes.append(f"{command.where}: known broken: {expect.reason} [{said}]")
            continue
        if not worked:
            pytest.fail(
                _report(ran, f"exit status {outcome.status}, expected {expect.status}", sandbox)
            )
    return notes


def _document(path: Path) -> list[Command]:
    found, _skipped = file_commands(path, REPO)
    if path.name == "README.md" and path.parent == REPO:
        return found
    prelude = [Command(str(path.relative_to(REPO)), 0, "shell", line) for line in PRELUDE]
    return prelude + found


@pytest.fixture
def sandbox() -> Sandbox:
    for tool in ("update-ca-certificates", "certutil", "keytool", "openssl"):
        require_tool(tool)  # the sandbox's trust stores are built with these
    base = Path(tempfile.mkdtemp(prefix="privca-doc-"))
    box = Sandbox(base)
    yield box
    box.close()
    shutil.rmtree(base, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("path", DOCUMENTS, ids=[str(p.relative_to(REPO)) for p in DOCUMENTS])
def test_every_command_runs_as_written(sandbox: Sandbox, path: Path) -> None:
    notes = run_document(sandbox, _document(path))
    for note in notes:
        print(note)


# the table and the extractor ----------------------------------------------------------------


def test_every_expectation_names_a_line_of_the_docs() -> None:
    present = {_key(c) for path in DOCUMENTS for c in file_commands(path, REPO)[0]}
    stale = [f"{source}: {line}" for source, line in EXPECTED if (source, line) not in present]
    assert not stale, "EXPECTED entries for lines no longer in the docs:\n" + "\n".join(stale)
    assert all(e.reason for e in EXPECTED.values())
    assert all(g in GIVENS for e in EXPECTED.values() for g in e.given)


def test_the_readme_quickstart_commands_are_kept_exactly() -> None:
    readme = (REPO / "README.md").read_text()
    for command in (
        "python3 -m venv .venv && . .venv/bin/activate && pip install . && privca quickstart",
        "python3 -m venv .venv && . .venv/bin/activate && pip install -q -e '.[test]' && "
        "python3 -m pytest",
    ):
        assert f"\n    {command}\n" in readme


SAMPLE = """\
Intro.

    privca one   # a comment
    # only a comment
    privca two \\
        --flag x

```sh
privca three
```

<!-- doc-test: skip: a config file -->

    key = value

```yaml
a: b
```

    import os
    print(os.getcwd())
"""


def test_extractor_finds_commands_and_honours_skips() -> None:
    found = [c for b in blocks(SAMPLE, "x.md") if b.skip_reason is None for c in commands(b)]
    assert [(c.line, c.language, c.text) for c in found] == [
        (3, "shell", "privca one   # a comment"),
        (5, "shell", "privca two --flag x"),
        (9, "shell", "privca three"),
        (20, "python", "import os\nprint(os.getcwd())\n"),
    ]
    skipped = [b for b in blocks(SAMPLE, "x.md") if b.skip_reason]
    assert [b.skip_reason for b in skipped] == ["a config file"]


@pytest.mark.parametrize(
    "directive", ["<!-- doc-test: skip -->", "<!-- doc-test: skip: -->", "<!-- doc-test: run -->"]
)
def test_a_directive_without_a_reason_is_an_error(directive: str) -> None:
    with pytest.raises(MarkdownError, match="a reason is required"):
        blocks(f"{directive}\n\n    privca x\n", "x.md")


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("privca issue x --out /etc/ssl/db", "privca issue x --out ROOT/etc/ssl/db"),
        ("X=/etc/privca/root.pem certbot", "X=ROOT/etc/privca/root.pem certbot"),
        ("--certs '/etc/ssl/services/*.crt'", "--certs 'ROOT/etc/ssl/services/*.crt'"),
        (
            "--server https://ca.corp.internal:8443/acme/directory",
            "--server https://ca.corp.internal:8443/acme/directory",
        ),
        (
            "--hsm-module /usr/lib/softhsm/libsofthsm2.so",
            "--hsm-module /usr/lib/softhsm/libsofthsm2.so",
        ),
        ("--fraction 1/3 --out=/srv/x", "--fraction 1/3 --out=ROOT/srv/x"),
        ('open("/srv/ca")', 'open("ROOT/srv/ca")'),
    ],
    ids=lambda v: v[:30],
)
def test_absolute_paths_are_rerooted(written: str, expected: str, tmp_path: Path) -> None:
    class Fake:
        root = Path("/ROOT")

    rewritten = Sandbox.reroot(Fake(), written)  # type: ignore[arg-type]
    assert rewritten == expected.replace("ROOT", "/ROOT")


# what the run cannot check ------------------------------------------------------------------

_CA_BUNDLE = {"certbot": "REQUESTS_CA_BUNDLE=", "lego": "LEGO_CA_CERTIFICATES="}


def test_acme_client_lines_name_the_cas_root() -> None:
    """An ACME client reaches privca over TLS with a certificate from the CA's own root,
    which no client trusts by default: a certbot or lego line without the root (or a
    `privca trust env` eval earlier on the page) fails its handshake as written. Skipped
    blocks are checked too, since the run never tries them (docs/issuers.md's did not)."""
    missing = []
    for path in DOCUMENTS:
        text = path.read_text(encoding="utf-8")
        source = str(path.relative_to(REPO))
        evaluated = False
        for block in blocks(text, source):
            for command in commands(block):
                line = strip_comment(command.text)
                evaluated = evaluated or line.startswith('eval "$(privca trust env')
                words = shlex.split(line)
                assignments = [w for w in words if re.match(r"^[A-Z_]+=", w)]
                program = words[len(assignments)] if len(words) > len(assignments) else ""
                if program not in _CA_BUNDLE or "--server" not in words or evaluated:
                    continue
                if not any(a.startswith(_CA_BUNDLE[program]) for a in assignments):
                    missing.append(f"{command.where}: {line}")
    assert not missing, "ACME client lines without the CA's root:\n" + "\n".join(missing)


def test_every_port_a_serve_line_listens_on_is_a_sandbox_port() -> None:
    """The sandbox swaps DOC_PORTS for free loopback ports; one it does not know is bound
    as written, so the README's `--metrics-listen 127.0.0.1:9464` collided with another
    docs run on the same machine (or anything else holding 9464)."""
    unmapped = []
    for path in DOCUMENTS:
        for command in file_commands(path, REPO)[0]:
            line = strip_comment(command.text)
            if command.language != "shell" or not _is_serve(line):
                continue
            words = shlex.split(line)
            for flag, value in itertools.pairwise(words):
                if flag.endswith("-listen") and int(value.rpartition(":")[2]) not in DOC_PORTS:
                    unmapped.append(f"{command.where}: {flag} {value}")
    assert not unmapped, "listeners the sandbox does not remap:\n" + "\n".join(unmapped)
