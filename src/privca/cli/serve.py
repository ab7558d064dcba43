"""privca serve: CRL, OCSP, CA certificates, health and metrics, in the foreground.

TLS is on by default with a certificate the CA issues to the server itself for the names
given with --server-name, reused across restarts while it has life left. OCSP
and CRLs are signed objects that clients fetch over plain HTTP by convention (a TLS
handshake to check revocation would itself need a revocation check), so `--no-tls` is
the way to publish them at the http:// URLs that go into certificates; the TLS listener
serves the very same routes for clients that want them over HTTPS.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from privca.cli.secrets import passphrase_file_option
from privca.errors import EnvironmentRefused, InputError

if TYPE_CHECKING:
    from privca.cli.main import AppContext

DEFAULT_LISTEN = "127.0.0.1:8443"


def parse_listen(text: str) -> tuple[str, int]:
    """HOST:PORT, with IPv6 hosts in brackets ([::1]:8443)."""
    host, sep, port_text = text.strip().rpartition(":")
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise InputError(
            f"listen address '{text}' is not HOST:PORT", "e.g. --listen 127.0.0.1:8443"
        )
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise InputError(f"'{host}' in --listen is not an IPv6 address") from None
    return host, int(port_text)


def acme_settings(section: Mapping[str, Any], **flags: Any) -> Any:
    """AcmeSettings from privca.toml's [acme] section, command-line flags winning."""
    from privca.acme.challenges import parse_resolver
    from privca.acme.service import AcmeSettings
    from privca.x509.profiles import LEAF_PROFILES

    values = {k: v for k, v in section.items() if k in ACME_KEYS}
    values.update({k: v for k, v in flags.items() if v is not None})
    try:
        if "profiles" in values:
            values["profiles"] = {str(k): int(v) for k, v in dict(values["profiles"]).items()}
            unknown = sorted(set(values["profiles"]) - set(LEAF_PROFILES))
            if unknown:
                raise ValueError(f"unknown profile(s) {', '.join(unknown)}")
        if values.get("dns_resolver"):
            parse_resolver(str(values["dns_resolver"]))
        for key in ("http_01_port", "tls_alpn_01_port", "orders_per_window"):
            if key in values:
                values[key] = int(values[key])
        for key in ("http_01_port", "tls_alpn_01_port"):
            if key in values and not 0 < values[key] < 65536:
                raise ValueError(f"{key} {values[key]} is not a port number")
        return AcmeSettings(**values)
    except (TypeError, ValueError) as exc:
        raise InputError(
            f"the ACME settings are invalid: {exc}",
            "check [acme] in privca.toml and the --http-01-port/--dns-resolver flags",
        ) from exc


# The [acme] keys of privca.toml that become AcmeSettings fields.
ACME_KEYS = (
    "http_01_port",
    "tls_alpn_01_port",
    "dns_resolver",
    "eab",
    "default_profile",
    "profiles",
    "orders_per_window",
    "base_url",
)


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
    passphrase_file: Path | None,
) -> None:
    """Serve ACME, CRL, OCSP, CA certificates and metrics; stops cleanly on SIGTERM."""
    import asyncio
    import logging
    import signal

    import uvicorn

    from privca._time import utcnow
    from privca.cli.options import open_authority
    from privca.server.app import build_app
    from privca.server.credentials import prove_keys
    from privca.server.listener import bind_listener
    from privca.server.settings import ServerSettings
    from privca.server.tls import ServerCertificate, certificate_names

    host, port = parse_listen(listen)
    logging.getLogger("privca").addHandler(logging.StreamHandler())
    logging.getLogger("privca").setLevel(logging.WARNING if app.quiet else logging.INFO)
    tls: ServerCertificate | None = None
    with open_authority(app, passphrase_file) as ca:
        # Nothing is issued until every check has passed: settings, names, the port (bound
        # now, and handed to uvicorn), the CA keys (a wrong passphrase fails here).
        acme = None
        if not no_acme:
            acme = acme_settings(
                ca.settings.acme,
                http_01_port=http_01_port,
                tls_alpn_01_port=tls_alpn_01_port,
                dns_resolver=dns_resolver,
                eab=eab,
            )
        names = () if no_tls else certificate_names(ca, server_names)
        listener = bind_listener(host, port)
        try:
            prove_keys(ca, utcnow())
            if not no_tls:
                tls = ServerCertificate(ca, names)
                tls.obtain()  # reused from an earlier start while it has life left
            application = build_app(ca, ServerSettings(ocsp_signer=ocsp_signer, acme=acme))
            # Fail here, with privca's one-line error, rather than in uvicorn's lifespan.
            application.state.ocsp.prepare(utcnow())

            config = uvicorn.Config(
                application,
                ssl_certfile=str(tls.certfile) if tls else None,
                log_level="warning" if app.quiet else "info",
                access_log=not app.quiet,
                server_header=False,
                loop="asyncio",
                timeout_graceful_shutdown=5,
            )
            server = uvicorn.Server(config)

            async def run() -> None:
                config.load()  # creates the SSLContext that renewal reloads in place
                renewal = None
                if tls is not None and config.ssl is not None:
                    renewal = asyncio.create_task(tls.keep_fresh(config.ssl))
                try:
                    await server.serve(sockets=[listener])
                finally:
                    if renewal is not None:
                        renewal.cancel()

            # uvicorn re-raises the signal that stopped it once it has shut down; with
            # these no-op handlers in place that ends the process normally, exit code 0.
            for stop in (signal.SIGTERM, signal.SIGINT):
                signal.signal(stop, lambda *_args: None)
            scheme = "http" if tls is None else "https"
            logging.getLogger("privca.server").info("privca serve on %s://%s", scheme, listen)
            asyncio.run(run())
            if not server.started:
                raise EnvironmentRefused(
                    f"the server on {listen} did not start", "see the log lines above"
                )
        finally:
            listener.close()
