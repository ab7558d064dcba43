"""privca serve: CRL, OCSP, CA certificates, health and metrics, in the foreground.

TLS is on by default with a certificate the CA issues to the server itself for the names
given with --server-name, reused across restarts while it has life left. OCSP
and CRLs are signed objects that clients fetch over plain HTTP by convention (a TLS
handshake to check revocation would itself need a revocation check), so `--no-tls` is
the way to publish them at the http:// URLs that go into certificates; the TLS listener
serves the very same routes for clients that want them over HTTPS.

`--publish-listen HOST:PORT` adds that plain-HTTP listener to an ACME server without a
second serve: OCSP, CRLs, CA certificates, the audit checkpoint and /health (no ACME, no
index page, no /metrics), answered by a process of its own that serve forks and
supervises (server/workers.py), with its own OCSP signer, store watch and CRL cache. A
revocation check then never queues for the GIL or a core behind ACME and TLS work
(benchmarks/storm.py --ocsp-at). The main listener still answers OCSP, without signing
ahead: that is the publication process's job for the clients sent to it.

Settings come from privca.toml ([acme] and [serve] sections), flags winning.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from privca.cli.secrets import passphrase_file_option
from privca.errors import EnvironmentRefused, InputError
from privca.server.settings import MAX_METRICS_CERTIFICATES

if TYPE_CHECKING:
    import asyncio
    import socket
    import ssl

    import uvicorn

    from privca.acme.service import AcmeSettings
    from privca.authority import CertificateAuthority
    from privca.cli.main import AppContext
    from privca.server.settings import HttpLimits, ServerSettings
    from privca.server.tls import ServerCertificate

DEFAULT_LISTEN = "127.0.0.1:8443"


def parse_listen(text: str, option: str = "--listen") -> tuple[str, int]:
    """HOST:PORT, with IPv6 hosts in brackets ([::1]:8443)."""
    host, sep, port_text = text.strip().rpartition(":")
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise InputError(
            f"listen address '{text}' is not HOST:PORT", f"e.g. {option} 127.0.0.1:8443"
        )
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise InputError(f"'{host}' in {option} is not an IPv6 address") from None
    return host, int(port_text)


def acme_settings(section: Mapping[str, Any], **flags: Any) -> AcmeSettings:
    """AcmeSettings from privca.toml's [acme] section, command-line flags winning."""
    from privca.acme.service import AcmeSettings
    from privca.settings import KNOWN_KEYS

    # Every [acme] key becomes an AcmeSettings field (settings.py refuses unknown ones).
    values = {k: v for k, v in section.items() if k in KNOWN_KEYS["acme"]}
    values.update({k: v for k, v in flags.items() if v is not None})
    try:
        _check_acme_values(values)
        return AcmeSettings(**values)
    except (TypeError, ValueError) as exc:
        raise InputError(
            f"the ACME settings are invalid: {exc}",
            "check [acme] in privca.toml and the --http-01-port/--dns-resolver flags",
        ) from exc


def _check_acme_values(values: dict[str, Any]) -> None:
    """Normalise the [acme] values in place; ValueError names the one that is wrong."""
    from privca.acme.challenges import parse_resolver
    from privca.x509.profiles import LEAF_PROFILES

    if "profiles" in values:
        values["profiles"] = {str(k): int(v) for k, v in dict(values["profiles"]).items()}
        unknown = sorted(set(values["profiles"]) - set(LEAF_PROFILES))
        if unknown:
            raise ValueError(f"unknown profile(s) {', '.join(unknown)}")
    if values.get("dns_resolver"):
        parse_resolver(str(values["dns_resolver"]))
    integers = ("http_01_port", "tls_alpn_01_port", "orders_per_window", "accounts_per_window")
    for key in (*integers, "validation_workers"):
        if key in values:
            values[key] = _integer(values[key], key)
    for key in ("http_01_port", "tls_alpn_01_port"):
        if key in values and not 0 < values[key] < 65536:
            raise ValueError(f"{key} {values[key]} is not a port number")
    if "validation_timeout" in values:
        values["validation_timeout"] = _number(values["validation_timeout"], "validation_timeout")
    if "allow_loopback" in values and not isinstance(values["allow_loopback"], bool):
        raise ValueError("allow_loopback must be true or false")


def _integer(value: Any, key: str) -> int:
    try:
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ValueError
        return int(value)
    except ValueError:
        raise ValueError(f"{key} must be a whole number") from None


def _number(value: Any, key: str) -> float:
    try:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ValueError
        return float(value)
    except ValueError:
        raise ValueError(f"{key} must be a number of seconds") from None


def http_limits(section: Mapping[str, Any], **flags: Any) -> HttpLimits:
    """HttpLimits from privca.toml's [serve] section, command-line flags winning."""
    from privca.server.settings import HttpLimits
    from privca.settings import SERVE_LIMIT_KEYS

    values = {k: v for k, v in section.items() if k in SERVE_LIMIT_KEYS}
    values.update({k: v for k, v in flags.items() if v is not None})
    try:
        for key in ("max_header_bytes", "max_connections"):
            if key in values:
                values[key] = _integer(values[key], key)
        for key in ("read_timeout", "keep_alive_timeout"):
            if key in values:
                values[key] = _number(values[key], key)
        return HttpLimits(**values)
    except (TypeError, ValueError) as exc:
        raise InputError(
            f"the HTTP limits are invalid: {exc}",
            "check [serve] in privca.toml and the --max-header-bytes/--read-timeout/"
            "--keep-alive-timeout/--max-connections flags",
        ) from exc


def metrics_window_setting(section: Mapping[str, Any], flag: str | None) -> dt.timedelta:
    from privca.cli.render import parse_duration

    text = flag if flag is not None else str(section.get("metrics_window", "30d"))
    window = parse_duration(text)
    if window <= dt.timedelta(0):
        raise InputError(f"metrics window '{text}' must be positive", "e.g. --metrics-window 30d")
    return window


def metrics_certificates_setting(section: Mapping[str, Any], flag: int | None) -> int:
    """How many certificates /metrics names one by one (the soonest to expire)."""
    from privca.server.settings import METRICS_CERTIFICATES

    value = flag if flag is not None else section.get("metrics_certificates", METRICS_CERTIFICATES)
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or not 0 <= value <= MAX_METRICS_CERTIFICATES
    ):
        raise InputError(
            f"--metrics-certificates / [serve] metrics_certificates must be a whole number "
            f"from 0 to {MAX_METRICS_CERTIFICATES:,}",
            "e.g. metrics_certificates = 1000 (0: counts only, no series per certificate)",
        )
    return value


def _companion_class() -> Any:
    import contextlib

    import uvicorn

    class Companion(uvicorn.Server):
        """A second listener in the same process: the main one handles the signals and
        stops this one when it stops."""

        def capture_signals(self) -> Any:
            return contextlib.nullcontext()

    return Companion


@click.command("serve")
@click.option(
    "--listen",
    default=DEFAULT_LISTEN,
    show_default=True,
    metavar="HOST:PORT",
    help="Address to listen on.",
)
@click.option(
    "--server-name",
    "server_names",
    multiple=True,
    metavar="NAME",
    help="Name clients connect to, put in the server's TLS certificate (repeatable; "
    "required unless --no-tls).",
)
@click.option("--no-tls", is_flag=True, help="Plain HTTP (the usual way to serve OCSP and CRLs).")
@click.option(
    "--ocsp-signer",
    type=click.Choice(["delegated", "ca"]),
    default="delegated",
    show_default=True,
    help="Sign OCSP with a delegated responder certificate, or with the CA key itself.",
)
@click.option("--no-acme", is_flag=True, help="Do not serve ACME under /acme.")
@click.option(
    "--http-01-port",
    type=int,
    default=None,
    help="Port the http-01 validator connects to (default: [acme] http_01_port, else 80).",
)
@click.option(
    "--tls-alpn-01-port",
    type=int,
    default=None,
    help="Port the tls-alpn-01 validator connects to (default: [acme], else 443).",
)
@click.option(
    "--dns-resolver",
    default=None,
    metavar="HOST:PORT",
    help="DNS server for dns-01 and for resolving names (default: [acme], else the system's).",
)
@click.option(
    "--eab",
    type=click.Choice(["optional", "required"]),
    default=None,
    help="External Account Binding policy (default: [acme] eab, else optional).",
)
@click.option(
    "--allow-loopback-validation",
    is_flag=True,
    default=None,
    help="Let ACME validation connect to loopback addresses (a single-host lab only; "
    "default: [acme] allow_loopback, else no).",
)
@click.option(
    "--max-header-bytes",
    type=int,
    default=None,
    help="Largest request line + headers; more gets 431 (default: [serve], else 16384).",
)
@click.option(
    "--read-timeout",
    type=float,
    default=None,
    metavar="SECONDS",
    help="Time to send a whole request, headers and body; slower clients are "
    "disconnected (default: [serve], else 10).",
)
@click.option(
    "--keep-alive-timeout",
    type=float,
    default=None,
    metavar="SECONDS",
    help="Idle time before a kept-alive connection is closed (default: [serve], else 5).",
)
@click.option(
    "--max-connections",
    type=int,
    default=None,
    help="Open connections per listener; more get 503 (on TLS: closed at once) (default: "
    "[serve], else 1000).",
)
@click.option(
    "--metrics-listen",
    default=None,
    metavar="HOST:PORT",
    help="Serve /metrics on this separate plain-HTTP listener (e.g. 127.0.0.1:9464) and "
    "not on the main one.",
)
@click.option(
    "--publish-listen",
    default=None,
    metavar="HOST:PORT",
    help="Also serve OCSP, CRLs and CA certificates over plain HTTP on this address "
    "(e.g. 0.0.0.0:8080), from a process of their own: revocation checks never wait "
    "behind ACME work.",
)
@click.option(
    "--metrics-window",
    default=None,
    metavar="DURATION",
    help="/metrics has a series per certificate only for those expiring within this "
    "(default: [serve] metrics_window, else 30d).",
)
@click.option(
    "--metrics-certificates",
    type=click.IntRange(min=0, max=MAX_METRICS_CERTIFICATES),
    default=None,
    metavar="N",
    help="... and for the N soonest of them at most; the rest are counted "
    "(default: [serve] metrics_certificates, else 1000).",
)
@click.option(
    "--workers",
    default="1",
    show_default=True,
    metavar="N|auto",
    help="Processes serving the one listening socket, each with its own store "
    "connections; auto = one per CPU. More than 1 lets concurrent clients use every core.",
)
@passphrase_file_option()
@click.pass_obj
def serve_command(
    app: AppContext,
    listen: str,
    server_names: tuple[str, ...],
    no_tls: bool,
    ocsp_signer: str,
    no_acme: bool,
    http_01_port: int | None,
    tls_alpn_01_port: int | None,
    dns_resolver: str | None,
    eab: str | None,
    allow_loopback_validation: bool | None,
    max_header_bytes: int | None,
    read_timeout: float | None,
    keep_alive_timeout: float | None,
    max_connections: int | None,
    metrics_listen: str | None,
    publish_listen: str | None,
    metrics_window: str | None,
    workers: str,
    metrics_certificates: int | None,
    passphrase_file: Path | None,
) -> None:
    """Serve ACME, CRL, OCSP, CA certificates and metrics; stops cleanly on SIGTERM."""
    import logging

    from privca.cli.options import open_authority
    from privca.server.listener import bind_listener
    from privca.server.logs import privca_handler
    from privca.server.settings import ServerSettings
    from privca.server.tls import certificate_names
    from privca.server.workers import parse_workers

    host, port = parse_listen(listen)
    worker_count = parse_workers(workers)
    metrics_address = parse_listen(metrics_listen, "--metrics-listen") if metrics_listen else None
    publish_address = None
    if publish_listen is not None:
        publish_address = parse_listen(publish_listen, "--publish-listen")
        _check_distinct(publish_address, host, port, metrics_address)
    logging.getLogger("privca").addHandler(privca_handler())
    logging.getLogger("privca").setLevel(logging.WARNING if app.quiet else logging.INFO)
    with open_authority(app, passphrase_file) as ca:
        # Nothing is issued until every check has passed: settings, names, the ports (bound
        # now, and handed to uvicorn), the CA keys (a wrong passphrase fails here).
        acme = None
        if not no_acme:
            acme = acme_settings(
                ca.settings.acme,
                http_01_port=http_01_port,
                tls_alpn_01_port=tls_alpn_01_port,
                dns_resolver=dns_resolver,
                eab=eab,
                allow_loopback=allow_loopback_validation,
            )
        limits = http_limits(
            ca.settings.serve,
            max_header_bytes=max_header_bytes,
            read_timeout=read_timeout,
            keep_alive_timeout=keep_alive_timeout,
            max_connections=max_connections,
        )
        settings = ServerSettings(
            ocsp_signer=ocsp_signer,
            acme=acme,
            http=limits,
            metrics_on_main=metrics_address is None,
            metrics_window=metrics_window_setting(ca.settings.serve, metrics_window),
            metrics_certificates=metrics_certificates_setting(
                ca.settings.serve, metrics_certificates
            ),
        )
        names = () if no_tls else certificate_names(ca, server_names)
        if worker_count > 1 and ca.settings.hsm_module:
            raise InputError(
                "--workers needs the CA keys in files: a PKCS#11 session does not survive "
                "a fork into worker processes",
                "use --workers 1, and run more replicas of serve for more throughput",
            )
        if publish_address is not None and ca.settings.hsm_module:
            raise InputError(
                "--publish-listen needs the CA keys in files: a PKCS#11 session does not "
                "survive a fork into the publication process",
                "serve OCSP and CRLs with a second `privca serve --no-acme --no-tls "
                "--listen HOST:PORT` instead",
            )
        listener = bind_listener(host, port, "--listen")
        metrics_socket = publish_socket = None
        try:
            if metrics_address is not None:
                metrics_socket = bind_listener(*metrics_address, "--metrics-listen")
            if publish_address is not None:
                publish_socket = bind_listener(*publish_address, "--publish-listen")
            _serve_on(
                app,
                ca,
                settings,
                names,
                listen,
                listener,
                metrics_socket,
                tls=not no_tls,
                workers=worker_count,
                publish=(
                    (publish_listen, publish_socket)
                    if publish_listen is not None and publish_socket is not None
                    else None
                ),
            )
        finally:
            for sock in (listener, metrics_socket, publish_socket):
                if sock is not None:
                    sock.close()


def _check_distinct(
    publish: tuple[str, int],
    host: str,
    port: int,
    metrics: tuple[str, int] | None,
) -> None:
    """--publish-listen is a listener of its own: the same port as another one on the same
    address, or on all addresses (0.0.0.0, ::), would only fail to bind, as "in use"."""
    for other, option in (((host, port), "--listen"), (metrics, "--metrics-listen")):
        if other is not None and other[1] == publish[1] and _overlap(other[0], publish[0]):
            raise InputError(
                f"--publish-listen and {option} are the same port on the same address",
                "give the publication listener a port of its own, e.g. --publish-listen "
                "0.0.0.0:8080",
            )


def _overlap(one: str, other: str) -> bool:
    """Whether listeners on the two hosts and one port would collide."""
    import ipaddress

    def address(host: str) -> str:
        try:
            return str(ipaddress.ip_address(host))
        except ValueError:
            return host.lower()

    first, second = address(one), address(other)
    return first == second or bool({first, second} & {"0.0.0.0", "::", ""})


def _serve_on(
    app: AppContext,
    ca: CertificateAuthority,
    settings: ServerSettings,
    names: tuple[str, ...],
    listen: str,
    listener: socket.socket,
    metrics_socket: socket.socket | None,
    *,
    tls: bool,
    workers: int = 1,
    publish: tuple[str, socket.socket] | None = None,
) -> None:
    """Prove the keys, obtain the server's certificate, build the apps, run until stopped
    (in this process, or in `workers` forked ones, plus the publication process serving
    the `publish` listener).

    The sockets are already bound; the caller closes them."""
    import dataclasses
    import logging

    from privca._actor import set_actor
    from privca._time import utcnow
    from privca.errors import PrivcaError
    from privca.server.credentials import prove_keys
    from privca.server.tls import ServerCertificate

    # Everything this process changes is by `serve`, unless an ACME request names its
    # account (acme/ sets that around each change it makes).
    set_actor("serve")
    prove_keys(ca, utcnow())
    try:
        # Unlocked now with the CA keys and kept, like them: the automatic checkpoints of
        # a server never need the passphrase again.
        ca.audit_signer()
    except PrivcaError as exc:
        logging.getLogger("privca").warning("audit checkpoints wait: %s", exc.message)
    certificate: ServerCertificate | None = None
    if tls:
        certificate = ServerCertificate(ca, names)
        certificate.obtain()  # reused from an earlier start while it has life left
    if workers == 1 and publish is None:
        _serve_in_process(app, ca, settings, listen, listener, metrics_socket, certificate)
        return
    from privca.cli.main import report_error
    from privca.server.workers import PUBLICATION, run_workers

    publication = None
    if publish is not None:
        publish_listen, publish_socket = publish
        published = dataclasses.replace(
            settings, acme=None, metrics_on_main=False, publication=True
        )
        # Revocation checks go to the publication process, which signs ahead for them;
        # a miss on the main listener (HTTPS clients) reads the store as on SQLite.
        settings = dataclasses.replace(settings, ocsp_sign_ahead=False)

        def publication() -> None:
            listener.close()  # not this process's: only the publication socket is
            if metrics_socket is not None:
                metrics_socket.close()
            _serve_in_process(
                app, ca, published, publish_listen, publish_socket, None, None, worker=PUBLICATION
            )

    settings = _before_fork(ca, settings)

    def serve(index: int) -> None:
        if publish is not None:
            publish[1].close()
        _serve_in_process(
            app, ca, settings, listen, listener, metrics_socket, certificate, worker=index
        )

    run_workers(workers, serve, report_error, publication)


def _before_fork(ca: CertificateAuthority, settings: ServerSettings) -> ServerSettings:
    """The work of a start that must happen once, not in each worker; then release the
    store's connections, which must not cross the fork. The settings the workers use."""
    import dataclasses

    from privca._time import utcnow

    repository = ca.acme_repository()
    if settings.acme is not None:
        # Renewed once here where spends are not durable (SQLite): a worker renewing it
        # at its own start would void the nonces its siblings had handed out.
        repository.nonce_key(utcnow(), starting=settings.acme.renew_nonce_key)
        acme = dataclasses.replace(settings.acme, renew_nonce_key=False)
        settings = dataclasses.replace(settings, acme=acme)
    repository.engine.dispose()
    return settings


def _serve_in_process(
    app: AppContext,
    ca: CertificateAuthority,
    settings: ServerSettings,
    listen: str,
    listener: socket.socket,
    metrics_socket: socket.socket | None,
    certificate: ServerCertificate | None,
    *,
    worker: int | None = None,
) -> None:
    """Build the apps and serve the bound sockets in this process until stopped."""
    import uvicorn

    from privca._time import utcnow
    from privca.server.app import build_app, build_metrics_app

    application = build_app(ca, settings)
    # Fail here, with privca's one-line error, rather than in uvicorn's lifespan.
    application.state.ocsp.prepare(utcnow())
    common = _uvicorn_common(quiet=app.quiet, limits=settings.http)
    # The TLS handshake is the listener protocol's (limits.TlsGate), not uvicorn's: that
    # way a connection counts from accept and its handshake has the read timeout.
    context = certificate.context() if certificate else None
    config = uvicorn.Config(
        application, **_uvicorn_common(quiet=app.quiet, limits=settings.http, tls=context)
    )
    companion = None
    if metrics_socket is not None:
        metrics_config = uvicorn.Config(build_metrics_app(ca, settings), lifespan="off", **common)
        companion = (_companion_class()(metrics_config), metrics_socket)
    if worker is not None:
        from privca.server.workers import tag_worker_logs

        tag_worker_logs(worker)  # uvicorn.Config has set its logging up by now
    tls = (certificate, context) if certificate and context else None
    _run_until_stopped(listen, config, listener, tls, companion)


def _uvicorn_common(
    *, quiet: bool, limits: HttpLimits, tls: ssl.SSLContext | None = None
) -> dict[str, Any]:
    """uvicorn options both listeners share: privca's logs, no Server header, the limits."""
    from privca.server.limits import uvicorn_options
    from privca.server.logs import uvicorn_log_config

    return {
        "log_level": "warning" if quiet else "info",
        "access_log": not quiet,
        "log_config": uvicorn_log_config(),
        "server_header": False,
        "timeout_graceful_shutdown": 5,
        **uvicorn_options(limits, tls),
    }


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop when it is installed (uvicorn[standard] brings it, except on
    Windows), else asyncio's. serve runs its own loop, so uvicorn's `loop` option is not
    used. uvloop does the loop's work in C: reading, writing, TLS and the hand-off of each
    request's result from its worker thread back to the loop (0.086 instead of 0.099 ms
    of CPU per hop; benchmarks/README.md, acme.py, speed3)."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def _run_until_stopped(
    listen: str,
    config: uvicorn.Config,
    listener: socket.socket,
    tls: tuple[ServerCertificate, ssl.SSLContext] | None,
    companion: tuple[uvicorn.Server, socket.socket] | None,
) -> None:
    """Serve on the bound listener (and the metrics companion) until SIGTERM or SIGINT;
    renew the server's own TLS certificate in place meanwhile."""
    import asyncio
    import logging
    import signal

    import uvicorn

    server = uvicorn.Server(config)

    async def run() -> None:
        config.load()
        renewal = None
        if tls is not None:
            renewal = asyncio.create_task(tls[0].keep_fresh(tls[1]))
        metrics = None
        if companion is not None:
            metrics = asyncio.create_task(companion[0].serve(sockets=[companion[1]]))
        try:
            await server.serve(sockets=[listener])
        finally:
            if renewal is not None:
                renewal.cancel()
            if metrics is not None and companion is not None:
                companion[0].should_exit = True
                await asyncio.gather(metrics, return_exceptions=True)

    # uvicorn re-raises the signal that stopped it once it has shut down; with these no-op
    # handlers in place that ends the process normally, exit code 0.
    for stop in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop, lambda *_args: None)
    scheme = "http" if tls is None else "https"
    logging.getLogger("privca.server").info("privca serve on %s://%s", scheme, listen)
    from privca.server.collector import settle

    settle()  # everything is built: what lives as long as the process is never walked again
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        runner.run(run())
    if not server.started:
        raise EnvironmentRefused(f"the server on {listen} did not start", "see the log lines above")
