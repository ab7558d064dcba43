"""`privca trust`: install, check and remove the CA's root in client trust stores.

Every subcommand takes an optional ROOT file; without it the root of the CA in --home is
used, so the same commands work on the CA host and on a client that has only the file.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from privca._text import printable
from privca.cli.render import print_json, warn
from privca.errors import InputError, PrivcaError
from privca.trust import java, linux, nss
from privca.trust.stores import STORE_NAMES

if TYPE_CHECKING:
    from privca.cli.main import AppContext
    from privca.trust import Outcome, StoreOptions, StoreReport, TrustAnchor, TrustStore

DEFAULT_STORES = ",".join(STORE_NAMES)
NSS_DBS_ENV = nss.DATABASES_ENV
JAVA_KEYSTORES_ENV = java.KEYSTORES_ENV
SYSTEM_ROOT_ENV = linux.SYSTEM_ROOT_ENV

root_argument = click.argument(
    "root", required=False, type=click.Path(dir_okay=True, path_type=Path)
)


def _store_options(function: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option(
            "--stores",
            default=DEFAULT_STORES,
            show_default=True,
            metavar="LIST",
            help="Comma-separated stores: system, nss (Firefox/Chromium), java.",
        ),
        click.option(
            "--system-root",
            type=click.Path(file_okay=False, path_type=Path),
            envvar=SYSTEM_ROOT_ENV,
            help="Work on a directory laid out like / instead of this machine's system store "
            f"(Debian layout only; env ${SYSTEM_ROOT_ENV}).",
        ),
        click.option(
            "--nss-db",
            "nss_dbs",
            multiple=True,
            type=click.Path(file_okay=False, path_type=Path),
            help="An NSS database directory to use instead of the discovered profiles "
            f"(repeatable; env ${NSS_DBS_ENV}, separated by '{os.pathsep}').",
        ),
        click.option(
            "--java-truststore",
            "java_truststores",
            multiple=True,
            type=click.Path(dir_okay=False, path_type=Path),
            help="A Java keystore file to use instead of the JDKs' cacerts; created as "
            f"PKCS#12 if missing (repeatable; env ${JAVA_KEYSTORES_ENV}). "
            "Store password: $PRIVCA_JAVA_STOREPASS, default changeit.",
        ),
        click.option(
            "--scope",
            type=click.Choice(["machine", "user"]),
            default="machine",
            show_default=True,
            help="macOS/Windows: the machine-wide store (admin) or the current user's.",
        ),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def _paths_from_env(name: str) -> tuple[Path, ...]:
    return tuple(Path(p) for p in os.environ.get(name, "").split(os.pathsep) if p)


def _build_options(
    system_root: Path | None,
    nss_dbs: Sequence[Path],
    java_truststores: Sequence[Path],
    scope: str,
) -> StoreOptions:
    from privca.trust import Scope, StoreOptions

    return StoreOptions(
        system_root=(system_root or Path("/")).absolute(),
        nss_databases=tuple(p.absolute() for p in nss_dbs) or _paths_from_env(NSS_DBS_ENV),
        java_truststores=tuple(p.absolute() for p in java_truststores)
        or _paths_from_env(JAVA_KEYSTORES_ENV),
        scope=Scope(scope),
    )


def _anchor(app: AppContext, root: Path | None) -> TrustAnchor:
    from privca.trust import read_anchor, read_home_anchor

    return read_anchor(root) if root is not None else read_home_anchor(app.home_path)


def _anchor_file(anchor: TrustAnchor) -> Path:
    # The environment points runtimes at a file; an anchor read by _anchor always has one.
    if anchor.source is None:
        raise InputError(
            "the root certificate was not read from a file",
            "pass the root certificate file: privca trust env ROOT.crt",
        )
    return anchor.source


def _anchors(app: AppContext, root: Path | None) -> list[TrustAnchor]:
    """ROOT, or every root of the CA in --home (two during a root rollover)."""
    from privca.trust import read_anchor, read_home_anchors

    return [read_anchor(root)] if root is not None else read_home_anchors(app.home_path)


def _installable(anchors: list[TrustAnchor], *, several: bool) -> list[TrustAnchor]:
    """The roots to install, each checked (an expired one is refused, one not valid yet
    warned of). Of the home's roots during a rollover, an old root that has expired is
    left out with a warning: the transition may outlast it, and refusing it refused the
    new root too."""
    from privca.trust.base import check_installable

    now = dt.datetime.now(dt.UTC)
    kept: list[TrustAnchor] = []
    for each in anchors:
        try:
            warning = check_installable(each, now)
        except InputError as exc:
            if not several or len(anchors) == 1:
                raise
            warn(printable(f"{exc.message}; it is left out, the other root is installed"))
            continue
        if warning:
            warn(printable(warning))
        kept.append(each)
    if not kept:
        raise InputError("every root of this CA has expired", "see privca rotate status")
    return kept


def host_stores() -> list[TrustStore]:
    """This machine's stores as `privca trust` finds them without options (the
    $PRIVCA_TRUST_* variables point them elsewhere, as for the trust commands)."""
    from privca.trust import build_stores, parse_store_names

    system_root = os.environ.get(SYSTEM_ROOT_ENV)
    options = _build_options(Path(system_root) if system_root else None, (), (), "machine")
    stores = build_stores(parse_store_names(DEFAULT_STORES), options)
    return [store for store in stores if store.available()]


def remove_from_host(anchor: TrustAnchor) -> list[Outcome]:
    """Remove `anchor` from this machine's stores where it is present; each store's
    uninstall removes only what privca put there and says so for the rest."""
    from privca.trust import Presence

    present = [
        store
        for store in host_stores()
        if any(report.presence is Presence.PRESENT for report in store.status(anchor))
    ]
    for store in present:  # every refusal before any change
        store.uninstall(anchor, dry_run=True)
    outcomes: list[Outcome] = []
    for store in present:
        outcomes += store.uninstall(anchor)
    return outcomes


def _say(app: AppContext, text: str = "", *, err: bool = False) -> None:
    # Subjects and labels come from the root file given, which may be anyone's: one line
    # each, a line break in a subject escaped like any control character.
    if not app.quiet:
        click.echo(printable(text), err=err)


def _describe_anchor(anchor: TrustAnchor) -> dict[str, str]:
    return {
        "subject": anchor.subject,
        "sha256": anchor.sha256.hex(),
        "name": anchor.slug,
        "file": str(anchor.source) if anchor.source else "",
    }


def _render_outcomes(app: AppContext, outcomes: Sequence[Outcome]) -> None:
    for outcome in outcomes:
        _say(app, f"{outcome.store:<7} {outcome.result.value:<18} {outcome.location}")
        for step in outcome.steps:
            _say(app, f"        $ {step}")
        if outcome.note:
            _say(app, f"        note: {outcome.note}")


def _record_in_home(
    app: AppContext, verb: str, anchors: Sequence[TrustAnchor], outcomes: Sequence[Outcome]
) -> None:
    """With a CA home here, its audit log records what privca changed in this host's
    trust stores (on a client without a CA there is no log to write)."""
    from privca.home import CAHome

    if not CAHome(app.home_path).exists():
        return
    from privca.authority import CertificateAuthority

    detail = {
        "roots": [each.sha256.hex() for each in anchors],
        "outcomes": [o.as_json() for o in outcomes],
    }
    try:
        with CertificateAuthority.open(app.home_path) as ca:
            ca.record_host_change(f"trust-{verb}ed", detail)
    except PrivcaError as exc:
        warn(f"the {verb} is done but not in the audit log: {exc.message}")


def _change_stores(
    app: AppContext,
    verb: str,
    root: Path | None,
    stores: str,
    options: StoreOptions,
    *,
    dry_run: bool,
    as_json: bool,
) -> None:
    from privca.trust import Result, build_stores, parse_store_names

    anchors = _anchors(app, root)
    selected = build_stores(parse_store_names(stores), options)
    if verb == "install":
        anchors = _installable(anchors, several=root is None)
    anchor = anchors[-1]
    # Every store's checks (a name held by another root, a missing tool) run before any
    # store changes: a refusal in the last store leaves the first one as it was.
    for each in anchors:
        for store in selected:
            (store.install if verb == "install" else store.uninstall)(each, dry_run=True)
    outcomes: list[Outcome] = []
    try:
        for each in anchors:
            for store in selected:
                change = store.install if verb == "install" else store.uninstall
                outcomes += change(each, dry_run=dry_run)
    except PrivcaError:
        if not as_json:
            _render_outcomes(app, outcomes)
        raise
    if not dry_run:
        _record_in_home(app, verb, anchors, outcomes)
    if as_json:
        payload = {
            "root": _describe_anchor(anchor),
            "roots": [_describe_anchor(each) for each in anchors],
            "dry_run": dry_run,
            "outcomes": [o.as_json() for o in outcomes],
        }
        print_json(payload)
        return
    described = "; ".join(f"{each.subject} ({each.slug})" for each in anchors)
    if dry_run:
        _say(app, f"dry run: nothing changed for {described}")
    else:
        _say(app, described)
    _render_outcomes(app, outcomes)
    if verb == "uninstall" and all(
        o.result in (Result.NOT_INSTALLED, Result.SKIPPED) for o in outcomes
    ):
        _say(app, f"the root is not installed in: {stores}; nothing to remove")


@click.group(name="trust")
def trust_group() -> None:
    """Install, check and remove the CA's root in client trust stores.

    ROOT is a root certificate file (PEM or DER); without it, the CA in --home is used.
    """


@trust_group.command("install")
@root_argument
@_store_options
@click.option("--dry-run", is_flag=True, help="Print the commands and files; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
@click.pass_obj
def install_command(
    app: AppContext,
    root: Path | None,
    stores: str,
    system_root: Path | None,
    nss_dbs: tuple[Path, ...],
    java_truststores: tuple[Path, ...],
    scope: str,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Make the stores trust ROOT (idempotent: installing twice is installing once)."""
    options = _build_options(system_root, nss_dbs, java_truststores, scope)
    _change_stores(app, "install", root, stores, options, dry_run=dry_run, as_json=as_json)


@trust_group.command("uninstall")
@root_argument
@_store_options
@click.option("--dry-run", is_flag=True, help="Print the commands and files; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
@click.pass_obj
def uninstall_command(
    app: AppContext,
    root: Path | None,
    stores: str,
    system_root: Path | None,
    nss_dbs: tuple[Path, ...],
    java_truststores: tuple[Path, ...],
    scope: str,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Remove exactly this ROOT from the stores; other CAs stay."""
    options = _build_options(system_root, nss_dbs, java_truststores, scope)
    _change_stores(app, "uninstall", root, stores, options, dry_run=dry_run, as_json=as_json)


def _render_reports(app: AppContext, anchor: TrustAnchor, reports: Sequence[StoreReport]) -> None:
    _say(app, f"{anchor.subject}  sha256 {anchor.sha256.hex()}")
    for report in reports:
        _say(app, f"{report.store:<7} {report.presence.value:<19} {report.location}")
        _say(app, f"        probe: {report.probe}")
        if report.note:
            _say(app, f"        note: {report.note}")


@trust_group.command("status")
@root_argument
@_store_options
@click.option("--json", "as_json", is_flag=True, help="Print the reports as JSON.")
@click.option(
    "--check",
    is_flag=True,
    help="Exit 1 unless ROOT is present in every store found on this machine.",
)
@click.pass_obj
def status_command(
    app: AppContext,
    root: Path | None,
    stores: str,
    system_root: Path | None,
    nss_dbs: tuple[Path, ...],
    java_truststores: tuple[Path, ...],
    scope: str,
    as_json: bool,
    check: bool,
) -> None:
    """Probe each store for ROOT: present, absent or not-installed-here, and how we know."""
    from privca.trust import build_stores, parse_store_names

    anchors = _anchors(app, root)
    options = _build_options(system_root, nss_dbs, java_truststores, scope)
    selected = build_stores(parse_store_names(stores), options)
    every: list[tuple[TrustAnchor, list[StoreReport]]] = []
    for each in anchors:
        every.append((each, [r for store in selected for r in store.status(each)]))
    reports = [r for _, found in every for r in found]
    if as_json:
        anchor, last = every[-1]
        payload: dict[str, Any] = {
            "root": _describe_anchor(anchor),
            "stores": [r.as_json() for r in last],
        }
        if len(every) > 1:  # a root rollover: the old root is reported too
            payload["roots"] = [
                {"root": _describe_anchor(a), "stores": [r.as_json() for r in found]}
                for a, found in every
            ]
        print_json(payload)
    else:
        for each, found in every:
            _render_reports(app, each, found)
    from privca.trust.base import Presence

    if check and any(r.presence is Presence.ABSENT for r in reports):
        sys.exit(1)


@trust_group.command("env")
@root_argument
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["shell", "systemd", "json"]),
    default="shell",
    show_default=True,
    help="shell: export lines for eval; systemd: a [Service] drop-in; json.",
)
@click.option(
    "--bundle",
    "bundle_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The system-CAs-plus-root bundle for the variables that replace the CA list "
    "(default: <ROOT dir>/<name>-bundle.pem).",
)
@click.option(
    "--write-bundle", is_flag=True, help="Write that bundle now from the system bundle + ROOT."
)
@click.option(
    "--system-bundle",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The system CA bundle to start from (default: the distribution's).",
)
@click.pass_obj
def env_command(
    app: AppContext,
    root: Path | None,
    output_format: str,
    bundle_path: Path | None,
    write_bundle: bool,
    system_bundle: Path | None,
) -> None:
    """Environment variables for runtimes that ignore the OS store (Node, Python, lego, curl).

    \b
    eval "$(privca trust env --write-bundle)"
    privca trust env --format systemd > /etc/systemd/system/app.service.d/privca.conf
    """
    from privca.home import atomic_write, read_input_file
    from privca.trust.env import (
        build_combined_bundle,
        build_env_vars,
        find_system_bundle,
        missing_bundle_comment,
        render,
        replacing_bundle_for,
    )
    from privca.x509.encoding import is_pem

    anchor = _anchor(app, root)
    source = _anchor_file(anchor)
    if not is_pem(read_input_file(source, "root certificate")):
        raise InputError(
            f"root certificate '{source}' is DER; Node.js and lego read only PEM",
            f"write a PEM copy: privca trust bundle {source} --format pem --out root.pem",
        )
    bundle = (bundle_path or source.parent / f"{anchor.slug}-bundle.pem").absolute()
    system = system_bundle or find_system_bundle()
    if write_bundle:
        if system is None:
            raise InputError(
                "no system CA bundle found to build on", "name one with --system-bundle FILE"
            )
        base = read_input_file(system, "system CA bundle", limit=64 << 20)
        atomic_write(bundle, build_combined_bundle(base, anchor), 0o644)
        _say(app, f"wrote {bundle} ({system} + {anchor.slug})", err=True)
    replacing = replacing_bundle_for(anchor, bundle, system)
    comments = [f"privca trust env: {anchor.subject} (sha256 {anchor.sha256.hex()})"]
    if replacing is None:
        comments += missing_bundle_comment(bundle)
    click.echo(render(build_env_vars(source, replacing), comments, output_format), nl=False)


@trust_group.command("bundle")
@root_argument
@click.option(
    "--format",
    "output_format",
    type=click.Choice(
        [
            "pem",
            "der",
            "p12-truststore",
            "mobileconfig",
            "firefox-policy",
            "k8s-configmap",
            "trust-manager",
            "windows",
        ]
    ),
    default="pem",
    show_default=True,
    help="What to produce (windows = DER .cer for certutil/GPO).",
)
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), help="Write here, not stdout."
)
@click.option("--name", help="k8s-configmap/trust-manager: object name (default: the CA's).")
@click.option("--namespace", help="k8s-configmap: the namespace.")
@click.option(
    "--client-path",
    help="firefox-policy: where the root file is on the clients (default: a bare file name).",
)
@click.pass_obj
def bundle_command(
    app: AppContext,
    root: Path | None,
    output_format: str,
    out: Path | None,
    name: str | None,
    namespace: str | None,
    client_path: str | None,
) -> None:
    """Write the root for config management, MDM, Java, Kubernetes or Windows GPO.

    The p12-truststore password comes from $PRIVCA_TRUSTSTORE_PASSWORD (default changeit).
    """
    from privca.home import atomic_write
    from privca.trust.bundle import BundleOptions, build_bundle

    anchors = _anchors(app, root)
    anchor = anchors[-1]
    if len(anchors) > 1 and output_format != "pem":
        raise InputError(
            f"a root rollover is under way: --format {output_format} holds one root, and "
            "clients must trust two",
            "use --format pem (both roots), or bundle each root file: "
            "certs/previous-root.crt and certs/root.crt",
        )
    options = BundleOptions(
        name=name,
        namespace=namespace,
        client_path=client_path,
        file_name=str(out) if out else None,
    )
    produced = build_bundle(anchor, output_format, options)
    if len(anchors) > 1:
        produced = dataclasses.replace(
            produced, data=b"".join(each.pem for each in anchors[:-1]) + produced.data
        )
    if out is None:
        stdout = sys.stdout.buffer
        if produced.binary and sys.stdout.isatty():
            raise InputError(
                f"--format {output_format} is binary and stdout is a terminal",
                f"use --out {produced.file_name}",
            )
        stdout.write(produced.data)
        stdout.flush()
        for line in produced.instructions:
            _say(app, f"# {line}", err=True)
        return
    from privca.cli.options import check_out_directory, make_out_directory

    check_out_directory(out.parent)
    make_out_directory(out.parent, private=False)
    atomic_write(out, produced.data, 0o644)
    _say(app, f"wrote {out} ({output_format}, {anchor.slug})")
    for line in produced.instructions:
        _say(app, f"  {line}")
