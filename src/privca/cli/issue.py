"""privca issue | csr | sign: certificates for services."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shlex
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from privca._text import printable
from privca.cli.deploy import Deployed, check_deploy_results, deploy_each, deploy_hook_option
from privca.cli.options import (
    check_out_directory,
    check_outputs_free,
    days_option,
    issuer_option,
    json_option,
    key_type_option,
    make_out_directory,
    profile_option,
)
from privca.cli.render import echo_files, note, print_json, progress, shown_path
from privca.cli.secrets import passphrase_file_option
from privca.x509.encoding import serial_hex
from privca.x509.names import files_stem

if TYPE_CHECKING:
    from cryptography import x509

    from privca.authority import IssuedCertificate
    from privca.cli.main import AppContext
    from privca.keys.types import GeneratedPrivateKey
    from privca.x509.csr import CertificateRequest

CSR_LIMIT = 256 * 1024

common_name_option = click.option(
    "--cn",
    "common_name",
    metavar="TEXT",
    default=None,
    help="Subject CN (default: the first DNS name). Server profiles: one of the names; "
    "--profile client also takes free text, e.g. a database user name.",
)


def _issued_document(issued: IssuedCertificate, files: dict[str, str]) -> dict[str, Any]:
    from privca._time import isoformat

    cert = issued.certificate
    return {
        "serial": serial_hex(issued.serial),
        "names": [str(n) for n in issued.names],
        "profile": issued.profile,
        "issuer": cert.issuer.rfc4514_string(),
        "not_before": isoformat(cert.not_valid_before_utc),
        "not_after": isoformat(cert.not_valid_after_utc),
        "status": "valid",
        "ignored_extensions": list(issued.ignored_extensions),
        "files": files,
    }


def chain_new_path(chain_path: Path) -> Path:
    """NAME.chain-new.pem beside NAME.chain.pem: during a root rollover, the chain for
    clients that already trust the new root (no cross-certificate)."""
    return chain_path.with_name(chain_path.name.removesuffix(".chain.pem") + ".chain-new.pem")


@click.command("issue")
@click.argument("names", nargs=-1, required=True)
@profile_option
@issuer_option
@key_type_option("ec-p256", "Key type of the generated service key.")
@days_option
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Directory for NAME.key, NAME.crt and NAME.chain.pem.",
)
@common_name_option
@click.option("--p12", is_flag=True, help="Also write NAME.p12 (key + chain).")
@click.option(
    "--p12-passphrase-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Passphrase for the PKCS#12 file (else $PRIVCA_P12_PASSPHRASE, else a prompt).",
)
@click.option("--force", is_flag=True, help="Overwrite existing output files.")
@deploy_hook_option
@passphrase_file_option()
@json_option
@click.pass_obj
def issue_command(
    app: AppContext,
    names: tuple[str, ...],
    profile: str,
    issuer: str | None,
    key_type: str,
    days: int | None,
    out: Path,
    common_name: str | None,
    p12: bool,
    p12_passphrase_file: Path | None,
    force: bool,
    deploy_hook: str | None,
    passphrase_file: Path | None,
    as_json: bool,
) -> None:
    """Generate a key and a certificate for NAMES (DNS, IDN, *.wildcard, IP, email:, uri:).

    The first DNS name names the files. The key is written 0600 and never kept by the CA.
    """
    from privca.cli.options import open_authority
    from privca.keys.types import KeyType
    from privca.x509.names import parse_names

    if p12_passphrase_file is not None and not p12:
        from privca.errors import InputError

        raise InputError(
            "--p12-passphrase-file goes with --p12, and no PKCS#12 file was asked for",
            "add --p12, or drop --p12-passphrase-file",
        )
    check_out_directory(out)
    parsed = parse_names(names)
    stem = files_stem(parsed)
    paths = _issue_paths(out, stem, p12=p12)
    check_outputs_free(paths.values(), force)
    p12_passphrase = _p12_passphrase(p12_passphrase_file) if p12 else None
    kind = KeyType.parse(key_type)
    with open_authority(app, passphrase_file) as ca:
        if ca.registry.cross is not None:
            paths["chain_new"] = chain_new_path(paths["chain"])
            check_outputs_free([paths["chain_new"]], force)
        key = kind.generate()
        # The key is on disk in --out before the certificate is recorded: a full or
        # unwritable directory fails here with nothing issued, never after with the key
        # of a certificate the store calls valid lost.
        with staged_key(out, paths["key"], key, 0o600) as key_file:
            issued = ca.issue(
                names,
                profile=profile,
                key_type=kind,
                days=days,
                common_name=common_name,
                issuer=issuer,
                private_key=key,
            )
    place_after_commit(
        _issued_files(issued, paths, stem, p12_passphrase), key_file, issued, overwrite=force
    )
    deployed = Deployed(
        paths["certificate"],
        paths["chain"],
        paths["key"],
        [str(n) for n in issued.names],
        serial_hex(issued.serial),
    )
    hook_results = deploy_each(deploy_hook, [deployed])
    if as_json:
        document = _issued_document(issued, {k: str(v) for k, v in paths.items()})
        if hook_results:
            document["deploy_hook_status"] = hook_results[0][1]
        print_json(document)
    elif not app.quiet:
        click.echo(
            f"Issued {printable(', '.join(str(n) for n in issued.names))} "
            f"(serial {serial_hex(issued.serial)}, {issued.profile}, "
            f"until {issued.certificate.not_valid_after_utc:%Y-%m-%d})"
        )
        echo_files(paths)
    check_deploy_results(deploy_hook, hook_results)


@contextlib.contextmanager
def staged_key(
    out: Path, path: Path, key: GeneratedPrivateKey, mode: int
) -> Iterator[tuple[Path, Path]]:
    """The key written and fsynced to a temporary file beside `path` (--out made first if
    missing), for the block that records its certificate; if the block fails, the
    temporary (and an --out this made) is removed, as nothing was recorded."""
    from privca.home import discard_staged, stage_files
    from privca.x509.encoding import pem_private_key_unencrypted

    made = not out.is_dir()
    make_out_directory(out, private=True)
    try:
        staged = stage_files([(path, pem_private_key_unencrypted(key), mode)])[0]
    except BaseException:
        _remove_made(out, made)
        raise
    try:
        yield staged
    except BaseException:
        discard_staged([staged])
        _remove_made(out, made)
        raise


def _remove_made(out: Path, made: bool) -> None:
    if made:
        with contextlib.suppress(OSError):
            out.rmdir()  # only while empty: never anything else put there


def place_after_commit(
    files: Sequence[tuple[Path, bytes, int]],
    key_file: tuple[Path, Path] | None,
    issued: IssuedCertificate,
    *,
    overwrite: bool,
) -> None:
    """Write the files of a certificate already recorded, the staged key last (a key in
    place means its certificate is too). If they cannot all be placed, nothing of this
    run's is left at the targets (without `overwrite`), but the key is kept, at a path
    the error names with how to get the certificate: the store calls it valid, and its
    key exists nowhere else.

    Raises:
        AlreadyExists: a target appeared since the check (another run), without overwrite.
        EnvironmentRefused: the directory is full or unwritable.
    """
    from privca.errors import AlreadyExists, EnvironmentRefused
    from privca.home import discard_staged, publish_staged, stage_files

    staged: list[tuple[Path, Path]] = []
    try:
        # A key already staged is not written again (a PKCS#12 file still carries it).
        staged = stage_files(f for f in files if key_file is None or f[0] != key_file[0])
        publish_staged([*staged, *([key_file] if key_file else [])], overwrite=overwrite)
    except (AlreadyExists, EnvironmentRefused) as exc:
        discard_staged(staged)
        serial = serial_hex(issued.serial)
        kept = f": its key is kept in '{_keep_key(key_file, serial)}'" if key_file else ""
        raise type(exc)(
            f"{exc.message}, after certificate {serial} was issued and recorded{kept}",
            f"the certificate is `privca show {serial} --pem`; if it is not wanted, "
            f"privca revoke {serial}",
        ) from exc


def _keep_key(key_file: tuple[Path, Path], serial: str) -> Path:
    """Move a staged key that could not be placed to NAME.SERIAL.key beside its target
    (never over a file), where no cleanup of temporaries will take it; where it already
    is, if it was placed or cannot be moved."""
    from privca.home import discard_staged

    path, tmp = key_file
    if not tmp.exists():
        return path  # placed (renamed over its target) before a later file failed
    kept = path.with_name(f"{path.name.removesuffix('.key')}.{serial}.key")
    try:
        os.link(tmp, kept)
    except OSError:
        # A full disk or a filesystem without hard links: a rename takes no new inode.
        # Left as a temporary, the next run's cleanup would take the key for a leftover.
        if os.path.lexists(kept):
            return tmp
        try:
            os.rename(tmp, kept)
        except OSError:
            return tmp
    discard_staged([key_file])  # the temporary name only: the key stays as `kept`
    return kept


def _issue_paths(out: Path, stem: str, *, p12: bool) -> dict[str, Path]:
    paths = {
        "key": out / f"{stem}.key",
        "certificate": out / f"{stem}.crt",
        "chain": out / f"{stem}.chain.pem",
    }
    if p12:
        paths["p12"] = out / f"{stem}.p12"
    return paths


def _issued_files(
    issued: IssuedCertificate, paths: dict[str, Path], stem: str, p12_passphrase: bytes | None
) -> list[tuple[Path, bytes, int]]:
    """What `issue` writes, each file with its final mode (keys 0600)."""
    from privca.x509.encoding import pem_private_key_unencrypted, pkcs12_bundle

    files = [
        (paths["key"], pem_private_key_unencrypted(issued.generated_key()), 0o600),
        (paths["certificate"], issued.certificate_pem(), 0o644),
        (paths["chain"], issued.chain_pem(), 0o644),
    ]
    if "chain_new" in paths:
        files.append((paths["chain_new"], issued.chain_new_pem(), 0o644))
    if p12_passphrase is not None:
        bundle = pkcs12_bundle(
            stem, issued.generated_key(), issued.certificate, list(issued.chain), p12_passphrase
        )
        files.append((paths["p12"], bundle, 0o600))
    return files


def _p12_passphrase(path: Path | None) -> bytes:
    from privca.cli.secrets import read_secret

    return read_secret(
        path,
        "PRIVCA_P12_PASSPHRASE",
        missing="no passphrase for the PKCS#12 file",
        hint="use --p12-passphrase-file FILE or $PRIVCA_P12_PASSPHRASE",
        prompt="PKCS#12 passphrase",
        confirm=True,
    )


@click.command("csr")
@click.argument("names", nargs=-1, required=True)
@key_type_option("ec-p256", "Key type to generate.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Directory for NAME.key and NAME.csr.",
)
@common_name_option
@click.option("--force", is_flag=True, help="Overwrite existing output files.")
@json_option
@click.pass_obj
def csr_command(
    app: AppContext,
    names: tuple[str, ...],
    key_type: str,
    out: Path,
    common_name: str | None,
    force: bool,
    as_json: bool,
) -> None:
    """Make a key and a CSR on the service host; the key never leaves it. No CA needed."""
    from privca.home import atomic_write_many
    from privca.keys.types import KeyType
    from privca.x509.build import build_csr
    from privca.x509.encoding import pem_csr, pem_private_key_unencrypted
    from privca.x509.names import parse_names
    from privca.x509.subject import parse_common_name

    check_out_directory(out)
    parsed = parse_names(names)
    # Only its form here: the CA checks it against its profile and policy when signing.
    cn = parse_common_name(common_name).value_for(parsed) if common_name is not None else None
    stem = files_stem(parsed)
    key_path, csr_path = out / f"{stem}.key", out / f"{stem}.csr"
    check_outputs_free((key_path, csr_path), force)
    key = KeyType.parse(key_type).generate()
    csr = build_csr(key, parsed, cn)
    make_out_directory(out, private=True)
    atomic_write_many(
        [(key_path, pem_private_key_unencrypted(key), 0o600), (csr_path, pem_csr(csr), 0o644)]
    )
    if as_json:
        print_json({"key": str(key_path), "csr": str(csr_path), "names": [str(n) for n in parsed]})
    elif not app.quiet:
        click.echo(f"Wrote {shown_path(key_path)} (0600) and {shown_path(csr_path)}")
        cn_flag = f" --cn {shlex.quote(cn)}" if cn is not None else ""
        shown = printable(shlex.quote(csr_path.name) + cn_flag)
        click.echo(f"Next, on the CA host: privca sign {shown}")


def _warn_common_name_not_copied(
    request: CertificateRequest, issued: IssuedCertificate, *, quiet: bool
) -> None:
    """A CSR's own CN is not copied (PostgreSQL would map it to a user): say so when the
    certificate's CN differs from it, so the operator can give --cn."""
    from cryptography.x509.oid import NameOID

    from privca._text import printable
    from privca.cli.render import warn

    asked = request.requested_common_name
    given = issued.certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if quiet or asked is None or (given and given[0].value == asked):
        return
    warn(
        f"{printable(request.source, 200)} asks for subject CN '{printable(asked, 80)}'; "
        "not copied (give --cn to set it)"
    )


@click.command("sign")
@click.argument("csrs", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@profile_option
@issuer_option
@days_option
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Output directory (default: current), or a FILE when signing one CSR.",
)
@common_name_option
@click.option(
    "--strict", is_flag=True, help="Refuse CSRs that ask for extensions (CA rights, usages)."
)
@click.option("--force", is_flag=True, help="Overwrite existing output files.")
@deploy_hook_option
@passphrase_file_option()
@json_option
@click.pass_obj
def sign_command(
    app: AppContext,
    csrs: tuple[Path, ...],
    profile: str,
    issuer: str | None,
    days: int | None,
    out: Path | None,
    common_name: str | None,
    strict: bool,
    force: bool,
    deploy_hook: str | None,
    passphrase_file: Path | None,
    as_json: bool,
) -> None:
    """Sign CSRs made anywhere. Only the public key and the names are taken from each;
    every extension comes from the profile, the subject CN from --cn (never the CSR).
    All are checked before any is signed."""
    from privca.cli.options import open_authority
    from privca.home import atomic_write_many

    requests = _read_requests(csrs, common_name)
    directory, planned = _plan_signed_files(requests, out)
    check_outputs_free([p for pair in planned for p in pair], force)
    check_out_directory(directory)
    with open_authority(app, passphrase_file) as ca, progress(len(requests), "signing") as tick:
        transition = ca.registry.cross is not None
        if transition:
            check_outputs_free([chain_new_path(h) for _, h in planned], force)
        issued = ca.sign_requests(
            requests, profile=profile, days=days, strict=strict, issuer=issuer, progress=tick
        )
    make_out_directory(directory, private=False)
    files = []
    for item, (cert_path, chain_path) in zip(issued, planned, strict=True):
        files.append((cert_path, item.certificate_pem(), 0o644))
        files.append((chain_path, item.chain_pem(), 0o644))
        if transition:
            files.append((chain_new_path(chain_path), item.chain_new_pem(), 0o644))
    atomic_write_many(files)
    deployments = [
        Deployed(
            cert_path,
            chain_path,
            # read only for a hook: a batch without one never opens the key files
            _key_of(item.certificate, cert_path.with_name(files_stem(item.names) + ".key"))
            if deploy_hook
            else None,
            [str(n) for n in item.names],
            serial_hex(item.serial),
        )
        for item, (cert_path, chain_path) in zip(issued, planned, strict=True)
    ]
    hook_results = deploy_each(deploy_hook, deployments)
    _warn_not_copied(requests, issued, quiet=as_json)
    if as_json:
        documents = [
            _issued_document(item, {"certificate": str(c), "chain": str(h)})
            for item, (c, h) in zip(issued, planned, strict=True)
        ]
        for document, (_, status) in zip(documents, hook_results, strict=False):
            document["deploy_hook_status"] = status
        print_json(documents)
    elif not app.quiet:
        _report_signed(issued, planned, directory)
    check_deploy_results(deploy_hook, hook_results)


def _read_requests(csrs: Sequence[Path], common_name: str | None) -> list[CertificateRequest]:
    """Every CSR read and checked before any is signed."""
    from privca.errors import InputError
    from privca.home import read_input_file
    from privca.x509.csr import inspect_csr
    from privca.x509.encoding import load_csr

    if common_name is not None and len(csrs) > 1:
        raise InputError(
            f"--cn names one certificate but {len(csrs)} CSRs were given",
            "sign a CSR that needs its own CN on its own",
        )
    requests = []
    for path in csrs:
        data = read_input_file(path, "CSR file", limit=CSR_LIMIT)
        request = inspect_csr(load_csr(data, f"CSR '{path}'"), f"CSR '{path}'")
        requests.append(dataclasses.replace(request, common_name=common_name))
    return requests


def _plan_signed_files(
    requests: Sequence[CertificateRequest], out: Path | None
) -> tuple[Path, list[tuple[Path, Path]]]:
    """The output directory and (certificate, chain) paths of each request. --out names a
    file only when one CSR is signed and the name has a suffix."""
    from privca.errors import InputError

    if out is not None and len(requests) > 1 and out.exists() and not out.is_dir():
        raise InputError(
            f"--out '{out}' is a file but {len(requests)} CSRs were given",
            "give a directory for several CSRs",
        )
    if out is not None and len(requests) == 1 and not out.is_dir() and out.suffix != "":
        return out.parent, [(out, out.with_name(out.stem + ".chain.pem"))]
    directory = out if out is not None else Path(".")
    planned = []
    for request in requests:
        stem = files_stem(request.names)
        planned.append((directory / f"{stem}.crt", directory / f"{stem}.chain.pem"))
    targets = [p for pair in planned for p in pair]
    if len(set(targets)) != len(targets):
        raise InputError(
            "two CSRs would write the same output file",
            "sign them separately or rename the CSRs' first names",
        )
    return directory, planned


def _key_of(certificate: x509.Certificate, path: Path) -> Path | None:
    """The key file `privca csr` left beside the CSR, for the deploy hook, only when it is
    this certificate's key: sign writes no key, and a NAME.key in --out may belong to
    another certificate (the README: $PRIVCA_KEY is empty when privca wrote no key)."""
    from privca.errors import InputError
    from privca.x509.encoding import load_private_key, public_key_der

    try:
        key = load_private_key(path.read_bytes(), None, str(path), validate=False)
    except (OSError, InputError):  # absent, unreadable, encrypted, not a key
        return None
    if public_key_der(key.public_key()) != public_key_der(certificate.public_key()):
        return None
    return path


def _warn_not_copied(
    requests: Sequence[CertificateRequest], issued: Sequence[IssuedCertificate], *, quiet: bool
) -> None:
    from privca.cli.render import warn

    for request, item in zip(requests, issued, strict=True):
        if request.ignored and not quiet:
            warn(printable(f"{request.source} asked for {', '.join(request.ignored)}; not copied"))
        _warn_common_name_not_copied(request, item, quiet=quiet)


def _report_signed(
    issued: Sequence[IssuedCertificate], planned: Sequence[tuple[Path, Path]], directory: Path
) -> None:
    if len(issued) != 1:
        note(f"Signed {len(issued)} certificates into {shown_path(directory)}")
        return
    item = issued[0]
    click.echo(
        f"Signed {printable(', '.join(str(n) for n in item.names))} "
        f"(serial {serial_hex(item.serial)}, "
        f"until {item.certificate.not_valid_after_utc:%Y-%m-%d})"
    )
    echo_files({"certificate": planned[0][0], "chain": planned[0][1]})
