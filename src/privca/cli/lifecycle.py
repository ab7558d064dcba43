"""privca revoke | crl | renew | rotate issuing | needs-renewal | check."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import stat
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import click

from privca._text import printable
from privca.cli.deploy import Deployed, check_deploy_results, deploy_each, deploy_hook_option
from privca.cli.main import CHECK_FORMATS
from privca.cli.options import (
    check_out_directory,
    days_option,
    issuer_option,
    json_option,
    key_type_option,
    make_out_directory,
)
from privca.cli.render import decide_exit, echo_files, note, print_json, shown_path, warn
from privca.cli.secrets import passphrase_file_option
from privca.x509.crl import REASONS as crl_reasons
from privca.x509.encoding import serial_hex
from privca.x509.profiles import ROOT as ROOT_PROFILE

if TYPE_CHECKING:
    from cryptography import x509

    from privca.authority import CertificateAuthority, IssuedCertificate
    from privca.cli.main import AppContext
    from privca.keys.types import GeneratedPrivateKey
    from privca.registry import CaCertificate
    from privca.store.records import CertificateRecord
    from privca.trust import StoreReport

REASONS = list(crl_reasons)


@click.command("revoke")
@click.argument("serial_or_name")
@click.option(
    "--reason",
    type=click.Choice(REASONS),
    default="unspecified",
    show_default=True,
    help="RFC 5280 reason in the CRL and OCSP; keyCompromise also bars the key for good "
    "and revokes every other certificate that carries it.",
)
@json_option
@click.pass_obj
def revoke_command(app: AppContext, serial_or_name: str, reason: str, as_json: bool) -> None:
    """Revoke a certificate. Revoking again keeps the first date and may only change the
    reason to keyCompromise, which also bars the key from ever being certified again and
    revokes the other certificates that carry it. The next CRL and OCSP answer show it."""
    from privca._time import isoformat
    from privca.cli.options import open_authority
    from privca.store.records import RevocationOutcome

    with open_authority(app) as ca:
        record, outcome = ca.revoke(serial_or_name, reason)
        # keyCompromise revokes every certificate of the key (store/revocation.py)
        same_key = []
        if record.revocation_reason == "keyCompromise" and record.public_key_sha256:
            same_key = [
                r
                for r in ca.inventory.with_key(record.public_key_sha256)
                if r.serial != record.serial and r.revocation_reason == "keyCompromise"
            ]
    revoked_at = record.revoked_at  # set by every outcome of revoke
    document = {
        "serial": serial_hex(record.serial),
        "names": list(record.names),
        "revoked_at": isoformat(revoked_at) if revoked_at is not None else None,
        "reason": record.revocation_reason,
        "already_revoked": outcome is not RevocationOutcome.REVOKED,
        "outcome": str(outcome),
        "same_key": [serial_hex(r.serial) for r in same_key],
    }
    if as_json:
        print_json(document)
        return
    if outcome is RevocationOutcome.REVOKED:
        click.echo(
            f"Revoked {document['serial']} ({printable(', '.join(record.names))}), "
            f"reason {record.revocation_reason}"
        )
    elif outcome is RevocationOutcome.REASON_CHANGED:
        click.echo(
            f"{document['serial']} (revoked on {document['revoked_at']}) is now revoked for "
            f"{record.revocation_reason}; its key is barred"
        )
    else:
        click.echo(
            f"{document['serial']} was already revoked on {document['revoked_at']} "
            f"({record.revocation_reason}); nothing changed"
        )
        return
    for other in same_key:
        click.echo(
            f"  same key: {serial_hex(other.serial)} ({printable(', '.join(other.names))}) "
            "is revoked for keyCompromise too"
        )
    note("Publish it: privca crl (or let `privca serve` answer CRL/OCSP)", app.quiet)


@click.command("crl")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the (current issuing CA's) CRL here; .pem for PEM, else DER.",
)
@click.option(
    "--root",
    "root_only",
    is_flag=True,
    help="Instead, the root's CRL (nextUpdate: root_crl_days, default 180; crl_days for a "
    "root that signs leaves, as single-tier) into <home>/crl/root.crl, served while the "
    "root key is offline.",
)
@passphrase_file_option()
@json_option
@click.pass_obj
def crl_command(
    app: AppContext,
    out: Path | None,
    root_only: bool,
    passphrase_file: Path | None,
    as_json: bool,
) -> None:
    """Make a full CRL for each CA that signs certificates, into <home>/crl/ (DER and PEM)."""
    from privca._time import utcnow
    from privca.cli.options import open_authority
    from privca.home import atomic_write_many

    now = utcnow()
    documents = []
    files: list[tuple[Path, bytes, int]] = []
    made: list[tuple[CaCertificate, x509.CertificateRevocationList]] = []
    out_line: int | None = None  # which CRL --out got: with several issuers, only one
    if out is not None:
        check_out_directory(out.parent)
    with open_authority(app, passphrase_file) as ca:
        current = ca.issuing_record()
        targets, roots = _crl_targets(ca, now, root_only=root_only)
        root_ids = {r.id for r in roots}
        active_root, alias = ca.registry.root, ca.registry.root_crl_alias
        for authority in targets:
            if authority.not_after <= now:
                continue  # an expired CA needs no CRL: nothing it signed is valid
            if ca.key_destroyed(authority):
                # Its CRL can no longer be signed; the root's CRL lists the CA itself,
                # which is what clients need. The other CAs' CRLs are still due.
                warn(
                    f"no CRL of the revoked CA {serial_hex(authority.serial)} "
                    f"({printable(authority.label, 64)}): its key was destroyed; "
                    "the root's CRL lists it"
                )
                continue
            is_root = authority.id in root_ids
            days = ca.crl_period(authority) if is_root else None
            # Recorded once its files are written: a crl/ that cannot be written leaves
            # `check` calling the CRL overdue, not quiet about one nobody can fetch.
            crl = ca.crl(authority, now, days=days, record=False)
            made.append((authority, crl))
            stem = ca.home.crl / serial_hex(authority.serial)
            is_current = authority.id == current.id
            # --out is the active root's CRL under --root, else the current issuing CA's.
            if root_only:
                to_out = out if authority.id == active_root.id else None
            else:
                to_out = out if is_current and not is_root else None
            files += _crl_files(
                ca,
                crl,
                stem,
                is_alias=is_root and authority.id == alias.id,
                is_current=is_current,
                out=to_out,
            )
            # A root re-issued with its key (rotate root --same-key) is the same CRL
            # issuer: issuing CAs made before name the old serial's file, kept current.
            same_key = ca.registry.same_key_roots(authority) if is_root else []
            for same in (r for r in same_key if r.id != authority.id):
                files += _crl_files(
                    ca,
                    crl,
                    ca.home.crl / serial_hex(same.serial),
                    is_alias=same.id == alias.id,
                    is_current=False,
                    out=None,
                )
            documents.append(_crl_document(authority, crl, stem.with_suffix(".crl")))
            if to_out is not None:
                out_line = len(documents) - 1
        if out is not None:
            make_out_directory(out.parent, private=False)
        atomic_write_many(files)
        for authority, crl in made:
            ca.crl_written(authority, crl)
    if as_json:
        print_json(documents)
        return
    for index, doc in enumerate(documents):
        also = f" and {out}" if index == out_line else ""
        click.echo(
            printable(
                f"CRL #{doc['number']} of {doc['issuer']}: {doc['entries']} revoked, "
                f"next update {doc['next_update']} -> {doc['file']}{also}"
            )
        )


def _crl_files(
    ca: CertificateAuthority,
    crl: x509.CertificateRevocationList,
    stem: Path,
    *,
    is_alias: bool,
    is_current: bool,
    out: Path | None,
) -> list[tuple[Path, bytes, int]]:
    """The files one CRL is written to: by serial always, and as root.crl (`is_alias`:
    Registry.root_crl_alias) or the current issuing CA's, and --out (.pem for PEM, else
    DER)."""
    from cryptography.hazmat.primitives.serialization import Encoding

    der, pem = crl.public_bytes(Encoding.DER), crl.public_bytes(Encoding.PEM)
    files = [(stem.with_suffix(".crl"), der, 0o644), (stem.with_suffix(".pem"), pem, 0o644)]
    if is_alias:
        files += [
            (ca.root_crl_file, der, 0o644),
            (ca.root_crl_file.with_suffix(".pem"), pem, 0o644),
        ]
    elif is_current:
        files += [
            (ca.home.crl / "current.crl", der, 0o644),
            (ca.home.crl / "current.pem", pem, 0o644),
        ]
    if out is not None:
        files.append((out, pem if out.suffix == ".pem" else der, 0o644))
    return files


def _crl_targets(
    ca: CertificateAuthority, now: dt.datetime, *, root_only: bool
) -> tuple[list[CaCertificate], list[CaCertificate]]:
    """The CAs to sign a CRL for, and among them the roots (whose CRLs live longer): every
    root clients trust now, so both during a root rollover.

    `privca serve` never signs a root's CRL: refresh the published one whenever that root's
    key is at hand and half of its life has passed."""
    roots = ca.registry.trusted_roots
    if root_only:
        return list(roots), list(roots)
    targets = ca.publishing_authorities()
    due = [
        root
        for root in roots
        if root not in targets and ca.key_present(root) and ca.root_crl_due(root, now)
    ]
    return [*targets, *due], due


def _crl_document(
    authority: CaCertificate, crl: x509.CertificateRevocationList, path: Path
) -> dict[str, object]:
    from cryptography import x509

    from privca._time import isoformat

    number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    next_update = crl.next_update_utc
    return {
        "issuer": authority.common_name,
        "issuer_serial": serial_hex(authority.serial),
        "number": number,
        "entries": len(crl),
        "this_update": isoformat(crl.last_update_utc),
        "next_update": isoformat(next_update) if next_update else None,
        "file": str(path),
    }


@click.command("renew")
@click.argument("serial_or_name")
@days_option
@issuer_option
@click.option(
    "--new-key/--reuse-key",
    default=True,
    show_default=True,
    help="Generate a new key (default), or certify the old public key again.",
)
@key_type_option(None, "Key type for --new-key (default: same as the old key).")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Directory for the new files.",
)
@click.option(
    "--revoke-old",
    is_flag=True,
    help="Revoke the old certificate now (reason superseded) instead of letting it run out.",
)
@click.option(
    "--revoke-old-after",
    metavar="DURATION",
    default=None,
    help="Revoke the old certificate (superseded) after this grace period, e.g. 7d.",
)
@click.option(
    "--force",
    is_flag=True,
    help="Replace files in --out even if they are not this certificate's.",
)
@click.option(
    "--p12-passphrase-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Passphrase of the NAME.p12 in --out, rewritten with the new certificate and key "
    "(else $PRIVCA_P12_PASSPHRASE, else a prompt).",
)
@deploy_hook_option
@passphrase_file_option()
@json_option
@click.pass_obj
def renew_command(
    app: AppContext,
    serial_or_name: str,
    days: int | None,
    issuer: str | None,
    new_key: bool,
    key_type: str | None,
    out: Path,
    revoke_old: bool,
    revoke_old_after: str | None,
    force: bool,
    p12_passphrase_file: Path | None,
    deploy_hook: str | None,
    passphrase_file: Path | None,
    as_json: bool,
) -> None:
    """Issue a successor with the same names and profile; the old one is marked superseded
    (and revoked now with --revoke-old, or after a grace period with --revoke-old-after).

    The files of the old certificate in --out are replaced atomically, keeping their
    modes; the old ones stay as NAME.crt.previous etc. until the next renew. A NAME.p12
    there (issue --p12) is rewritten too, with the passphrase that opens it."""
    from privca.cli.issue import place_after_commit, staged_key
    from privca.cli.options import open_authority

    grace = _grace(revoke_old, revoke_old_after)
    if key_type is not None and not new_key:
        from privca.errors import InputError

        raise InputError(
            "--key-type and --reuse-key contradict each other: a reused key keeps its type",
            "drop --key-type, or drop --reuse-key for a new key of that type",
        )
    check_out_directory(out)
    with open_authority(app, passphrase_file) as ca:
        old = ca.lookup(serial_or_name, unique=True)
        stem = _stem(old.names)
        paths = {"certificate": out / f"{stem}.crt", "chain": out / f"{stem}.chain.pem"}
        if new_key:
            paths["key"] = out / f"{stem}.key"
        if ca.registry.cross is not None:
            from privca.cli.issue import chain_new_path

            paths["chain_new"] = chain_new_path(paths["chain"])
        p12_path = out / f"{stem}.p12"
        if os.path.lexists(p12_path):
            paths["p12"] = p12_path
        existing = _files_to_replace(paths, old.names, force)
        # Opened before anything is issued: a service loading NAME.p12 must not be left
        # on the superseded certificate because its passphrase was missing or wrong.
        p12 = _open_p12(existing, p12_path, p12_passphrase_file, old, new_key=new_key, force=force)
        key = _new_key(old, key_type) if new_key else None
        # The new key is on disk in --out before the renewal is recorded (see issue).
        key_mode = existing["key"].mode if "key" in existing else 0o600
        with (
            staged_key(out, paths["key"], key, key_mode)
            if key is not None
            else contextlib.nullcontext(None)
        ) as key_file:
            renewed = ca.renew(
                serial_hex(old.serial),
                days=days,
                new_key=new_key,
                revoke_old_after=grace,
                issuer=issuer,
                private_key=key,
            )
        make_out_directory(out, private=key is not None)
        place_after_commit(
            _renewed_files(renewed, paths, existing, p12, stem), key_file, renewed, overwrite=True
        )
        # After the files: a failure here must not cost the new key.
        if revoke_old and old.status != "revoked":
            ca.revoke(serial_hex(old.serial), "superseded")
    _keep_owners(paths, existing)
    deployed = Deployed(
        certificate=paths["certificate"],
        chain=paths["chain"],
        key=out / f"{stem}.key",
        names=[str(n) for n in renewed.names],
        serial=serial_hex(renewed.serial),
    )
    hook_results = deploy_each(deploy_hook, [deployed])
    previous = {k: _previous(paths[k]) for k in existing}
    if as_json:
        document = _renewed_document(renewed, old.serial, paths, previous)
        if hook_results:
            document["deploy_hook_status"] = hook_results[0][1]
        print_json(document)
    elif not app.quiet:
        click.echo(
            f"Renewed {printable(', '.join(str(n) for n in renewed.names))}: serial "
            f"{serial_hex(renewed.serial)} replaces {serial_hex(old.serial)}, until "
            f"{renewed.certificate.not_valid_after_utc:%Y-%m-%d}"
        )
        echo_files(paths)
        if previous:
            shown = ", ".join(shown_path(p) for p in previous.values())
            click.echo(f"  {'previous:':13}{shown}")
    check_deploy_results(deploy_hook, hook_results)


def _new_key(old: CertificateRecord, key_type: str | None) -> GeneratedPrivateKey | None:
    """The renewal's new key: of `key_type`, else of the old key's type (None when the old
    certificate was never signed: renew refuses that)."""
    from cryptography import x509

    from privca.keys.types import KeyType, key_type_of

    if key_type is not None:
        return KeyType.parse(key_type).generate()
    if old.der is None:
        return None
    return key_type_of(x509.load_der_x509_certificate(old.der).public_key()).generate()


def _grace(revoke_old: bool, revoke_old_after: str | None) -> dt.timedelta | None:
    """How long the old certificate stays valid (None: until it runs out, or --revoke-old)."""
    from privca.cli.render import parse_duration
    from privca.errors import InputError

    if revoke_old and revoke_old_after is not None:
        raise InputError("--revoke-old and --revoke-old-after contradict each other", "choose one")
    return parse_duration(revoke_old_after) if revoke_old_after is not None else None


def _renewed_files(
    renewed: IssuedCertificate,
    paths: dict[str, Path],
    existing: dict[str, _OldFile],
    p12: _OldP12 | None,
    stem: str,
) -> list[tuple[Path, bytes, int]]:
    """The old files kept as NAME.crt.previous etc. (until the next renew replaces them),
    then the new ones, each taking the old one's mode: a key made 0640 for a service's
    group stays readable by that service. All .previous files come first, so they are in
    place before the first new file is renamed over an old one."""
    from privca.x509.encoding import pem_private_key_unencrypted, pkcs12_bundle

    new_files = [
        ("certificate", renewed.certificate_pem(), 0o644),
        ("chain", renewed.chain_pem(), 0o644),
    ]
    if "chain_new" in paths:
        new_files.append(("chain_new", renewed.chain_new_pem(), 0o644))
    if renewed.private_key is not None:
        new_files.append(("key", pem_private_key_unencrypted(renewed.private_key), 0o600))
    if p12 is not None:
        # --reuse-key certifies the key the old bundle holds (_open_p12 checked it).
        key = renewed.private_key if renewed.private_key is not None else p12.key
        assert key is not None  # _open_p12 keeps the old key whenever none is new
        bundle = pkcs12_bundle(stem, key, renewed.certificate, list(renewed.chain), p12.passphrase)
        new_files.append(("p12", bundle, 0o600))
    previous = [(_previous(paths[k]), old.data, old.mode) for k, old in existing.items()]
    replacing = [
        (paths[label], data, existing[label].mode if label in existing else mode)
        for label, data, mode in new_files
    ]
    return [*previous, *replacing]


def _renewed_document(
    renewed: IssuedCertificate,
    old_serial: int,
    paths: dict[str, Path],
    previous: dict[str, Path],
) -> dict[str, object]:
    from privca._time import isoformat

    return {
        "serial": serial_hex(renewed.serial),
        "replaces": serial_hex(old_serial),
        "names": [str(n) for n in renewed.names],
        "profile": renewed.profile,
        "not_after": isoformat(renewed.certificate.not_valid_after_utc),
        "files": {k: str(v) for k, v in paths.items()},
        "previous": {k: str(v) for k, v in previous.items()},
    }


@dataclass(frozen=True)
class _OldFile:
    data: bytes
    mode: int
    uid: int
    gid: int


@dataclass(frozen=True)
class _OldP12:
    passphrase: bytes
    key: GeneratedPrivateKey | None  # the old bundle's, for --reuse-key only


def _open_p12(
    existing: dict[str, _OldFile],
    path: Path,
    passphrase_file: Path | None,
    old: CertificateRecord,
    *,
    new_key: bool,
    force: bool,
) -> _OldP12 | None:
    """The passphrase and key of the NAME.p12 renew rewrites (None when there is none),
    checked before anything is issued: the passphrase must open it, so the service that
    loads it goes on with the one it was given; without --force it must hold a
    certificate for the same names (as NAME.crt must).

    Raises:
        InputError: --p12-passphrase-file without a NAME.p12, no passphrase, a wrong one,
            or with --reuse-key no key of the old certificate in it.
        AlreadyExists: without --force, a bundle without a certificate for the same names.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import pkcs12

    from privca.cli.secrets import read_secret
    from privca.errors import AlreadyExists, InputError
    from privca.keys.types import GeneratedPrivateKey
    from privca.x509.encoding import public_key_der
    from privca.x509.verify import certificate_names

    bundle = existing.get("p12")
    if bundle is None:
        if passphrase_file is not None:
            raise InputError(
                f"--p12-passphrase-file is for a PKCS#12 file, and there is no "
                f"'{shown_path(path)}'",
                "drop --p12-passphrase-file, or give the --out that holds NAME.p12",
            )
        return None
    shown = shown_path(path)
    # Asked once, not twice as for a new bundle: the old one opening is the confirmation.
    passphrase = read_secret(
        passphrase_file,
        "PRIVCA_P12_PASSPHRASE",
        missing=f"renew rewrites '{shown}' and has no passphrase for it",
        hint="use --p12-passphrase-file FILE or $PRIVCA_P12_PASSPHRASE (the one it was "
        "made with); nothing was issued",
        prompt="PKCS#12 passphrase",
    )
    try:
        key, certificate, _ = pkcs12.load_key_and_certificates(bundle.data, passphrase)
    except ValueError:  # a wrong passphrase and a damaged file look alike
        raise InputError(
            f"'{shown}' does not open with that PKCS#12 passphrase (or is not PKCS#12)",
            "give the passphrase it was made with; nothing was issued",
        ) from None
    if not force and (
        certificate is None or {str(n) for n in certificate_names(certificate)} != set(old.names)
    ):
        raise AlreadyExists(
            f"'{shown}' does not hold a certificate for the same names",
            "use --force to replace it, or another --out",
        )
    if new_key:
        return _OldP12(passphrase, None)
    reused = key if isinstance(key, GeneratedPrivateKey) else None
    if (
        reused is None
        or old.der is None
        or public_key_der(reused.public_key())
        != public_key_der(x509.load_der_x509_certificate(old.der).public_key())
    ):
        raise InputError(
            f"'{shown}' does not hold the key of certificate {serial_hex(old.serial)}, "
            "which --reuse-key certifies again",
            "drop --reuse-key for a new key, or move it out of --out; nothing was issued",
        )
    return _OldP12(passphrase, reused)


def _previous(path: Path) -> Path:
    return path.with_name(path.name + ".previous")


def _files_to_replace(
    paths: dict[str, Path], old_names: Sequence[str], force: bool
) -> dict[str, _OldFile]:
    """The files renew replaces, read before anything is issued. Without --force they must
    be the renewed certificate's own: a certificate file for the same names (with its
    chain and key); anything else in the way is refused, never overwritten."""
    from privca.errors import AlreadyExists, InputError
    from privca.home import read_input_file
    from privca.x509.encoding import load_certificate
    from privca.x509.verify import certificate_names

    existing: dict[str, _OldFile] = {}
    for label, path in paths.items():
        try:
            info = path.lstat()
        except FileNotFoundError:
            continue
        if not stat.S_ISREG(info.st_mode) and not force:
            raise AlreadyExists(
                f"'{path}' is not a regular file (a link?); renew replaces files only",
                "use --force to replace it, or another --out",
            )
        data = read_input_file(path, "file", limit=1 << 20)
        existing[label] = _OldFile(data, stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid)
    if force or not existing:
        return existing
    certificate = existing.get("certificate")
    if certificate is None:
        first = paths[next(iter(existing))]
        raise AlreadyExists(
            f"'{first}' already exists, but not the certificate '{paths['certificate']}' "
            "it would belong to",
            "use --force to replace it, or another --out",
        )
    try:
        names = {str(n) for n in certificate_names(load_certificate(certificate.data))}
    except InputError:
        names = set()
    if names != set(old_names):
        shown = ", ".join(sorted(names)) or "none privca can read"
        raise AlreadyExists(
            f"'{paths['certificate']}' holds a certificate for other names ({shown})",
            "use --force to replace it, or another --out",
        )
    return existing


def _keep_owners(paths: dict[str, Path], existing: dict[str, _OldFile]) -> None:
    """Give each replaced file (and its .previous) the owner and group the old one had,
    when privca may: a key owned root:ssl-cert must stay readable by the ssl-cert group."""
    for label, old in existing.items():
        for path in (paths[label], _previous(paths[label])):
            info = path.stat()
            if (info.st_uid, info.st_gid) == (old.uid, old.gid):
                continue
            try:
                os.chown(path, old.uid, old.gid)
            except PermissionError:
                try:
                    os.chown(path, -1, old.gid)
                except PermissionError:
                    warn(f"'{shown_path(path)}' could not get its old group back (gid {old.gid})")


def _stem(names: tuple[str, ...]) -> str:
    from privca.x509.names import files_stem, parse_names

    return files_stem(parse_names(names))


@click.group("rotate")
def rotate_group() -> None:
    """Replace a CA certificate and key."""


@rotate_group.command("issuing")
@key_type_option(
    None, "Key type of the new issuing CA (default: same as the current one).", for_services=False
)
@click.option(
    "--days",
    type=int,
    default=1825,
    show_default=True,
    help="Validity of the new issuing CA, in days (cut to the root's remaining life).",
)
@click.option(
    "--issuer",
    default=None,
    metavar="NAME",
    help="The named issuer to rotate (default: the default issuer).",
)
@passphrase_file_option()
@json_option
@click.pass_obj
def rotate_issuing_command(
    app: AppContext,
    key_type: str | None,
    days: int,
    issuer: str | None,
    passphrase_file: Path | None,
    as_json: bool,
) -> None:
    """A new issuing CA under the same root: new certificates come from it at once, the old
    one keeps answering CRL/OCSP for what it issued, and no client trust store changes.
    With --issuer, that issuer's (it keeps its name, constraints and profiles)."""
    from privca._time import isoformat
    from privca.cli.options import open_authority
    from privca.keys.types import KeyType

    with open_authority(app, passphrase_file) as ca:
        cert = ca.rotate_issuing(
            key_type=KeyType.parse(key_type) if key_type else None, days=days, issuer=issuer
        )
        default = ca.registry.issuer(None).name if ca.registry.issuers else None
    not_after = isoformat(cert.not_valid_after_utc)
    document = {
        "subject": cert.subject.rfc4514_string(),
        "serial": serial_hex(cert.serial_number),
        "not_after": not_after,
        "issuer": issuer or default,
    }
    if as_json:
        print_json(document)
    else:
        updated = "chain.pem updated" if issuer in (None, default) else f"issuer {issuer}"
        click.echo(
            f"New issuing CA {document['subject']} (serial {document['serial']}, "
            f"until {not_after[:10]}); {updated}."
        )
        note(
            "Servers that send the chain should pick up the new chain with their next "
            "certificate; the root is unchanged.",
            app.quiet,
        )


@rotate_group.command("root")
@click.option("--same-key", is_flag=True, help="Re-issue the root with its own key and subject.")
@click.option(
    "--new-key",
    is_flag=True,
    help="Roll over to a new root key: new root, cross-certificate, new issuing CA.",
)
@click.option(
    "--retire-old",
    is_flag=True,
    help="End a rollover: chains drop the cross-certificate, only the new root is trusted, "
    "the old root's last CRL is published and the old root leaves this machine's stores.",
)
@click.option(
    "--reverse-cross",
    is_flag=True,
    help="--new-key: also the old root signed by the new, so clients that trust only the "
    "new root verify certificates of the old hierarchy.",
)
@key_type_option(
    None, "Key type of the new root (--new-key; default: the old root's).", for_services=False
)
@click.option(
    "--days",
    type=int,
    default=None,
    help="Validity in days (--same-key: default keeps notAfter; --new-key: default "
    f"{ROOT_PROFILE.default_days}).",
)
@click.option("--name", default=None, help="CA name for the new root's subject (--new-key).")
@click.option(
    "--force", is_flag=True, help="--retire-old even while old-hierarchy leaves are valid."
)
@passphrase_file_option()
@json_option
@click.pass_obj
def rotate_root_command(
    app: AppContext,
    same_key: bool,
    new_key: bool,
    retire_old: bool,
    reverse_cross: bool,
    key_type: str | None,
    days: int | None,
    name: str | None,
    force: bool,
    passphrase_file: Path | None,
    as_json: bool,
) -> None:
    """Re-issue the root (--same-key), roll over to a new root key (--new-key), or end a
    rollover (--retire-old).

    --same-key fixes a hand-made root without keyUsage without re-issuing anything.
    --new-key makes a new root, a cross-certificate of it signed by the old root and a new
    issuing CA; new chains carry the cross-certificate, so clients that trust either root
    verify new certificates (see privca rotate status). --retire-old refuses while valid
    certificates chain only to the old root, unless --force.
    """
    from privca.errors import InputError

    if same_key + new_key + retire_old != 1:
        raise InputError(
            "rotate root needs exactly one of --same-key, --new-key, --retire-old",
            "e.g. privca rotate root --new-key",
        )
    if not new_key and (key_type is not None or name is not None or reverse_cross):
        raise InputError(
            "--key-type, --name and --reverse-cross go with --new-key", "add --new-key"
        )
    if retire_old and days is not None:
        raise InputError("--days does not go with --retire-old", "leave it out")
    if force and not retire_old:
        raise InputError("--force goes with --retire-old", "leave it out")
    if same_key:
        _reissue_root(app, days, passphrase_file, as_json)
    elif new_key:
        _new_root(app, key_type, days, name, reverse_cross, passphrase_file, as_json)
    else:
        _retire_old_root(app, force, passphrase_file, as_json)


def _reissue_root(
    app: AppContext, days: int | None, passphrase_file: Path | None, as_json: bool
) -> None:
    from privca._time import isoformat
    from privca.cli.options import open_authority

    with open_authority(app, passphrase_file) as ca:
        cert = ca.reissue_root(days=days)
        path = ca.home.root_cert
    document = {
        "subject": cert.subject.rfc4514_string(),
        "serial": serial_hex(cert.serial_number),
        "not_after": isoformat(cert.not_valid_after_utc),
        "file": str(path),
    }
    if as_json:
        print_json(document)
    else:
        click.echo(
            f"Re-issued root {printable(document['subject'])} (serial {document['serial']}, "
            f"until {document['not_after'][:10]}) -> {path}"
        )
        note(
            "Same key and subject: existing certificates stay valid. Replace the root in "
            "client trust stores with this file (privca trust install).",
            app.quiet,
        )


def _new_root(
    app: AppContext,
    key_type: str | None,
    days: int | None,
    name: str | None,
    reverse_cross: bool,
    passphrase_file: Path | None,
    as_json: bool,
) -> None:
    from privca._time import isoformat
    from privca.cli.options import open_authority
    from privca.keys.types import KeyType

    with open_authority(app, passphrase_file) as ca:
        rollover = ca.rollover_root(
            key_type=KeyType.parse(key_type) if key_type else None,
            days=days if days is not None else ROOT_PROFILE.default_days,
            name=name,
            reverse_cross=reverse_cross,
        )
        files = {"root": ca.home.root_cert, "roots": ca.home.roots, "cross": ca.home.cross}
    document: dict[str, object] = {
        "root": {
            "subject": rollover.root.subject.rfc4514_string(),
            "serial": serial_hex(rollover.root.serial_number),
            "not_after": isoformat(rollover.root.not_valid_after_utc),
        },
        "cross": {
            "serial": serial_hex(rollover.cross.serial_number),
            "not_after": isoformat(rollover.cross.not_valid_after_utc),
        },
        "reverse_cross": None
        if rollover.reverse_cross is None
        else {
            "serial": serial_hex(rollover.reverse_cross.serial_number),
            "not_after": isoformat(rollover.reverse_cross.not_valid_after_utc),
        },
        "issuing": None
        if rollover.issuing is None
        else {
            "subject": rollover.issuing.subject.rfc4514_string(),
            "serial": serial_hex(rollover.issuing.serial_number),
        },
        "files": {k: str(v) for k, v in files.items()},
    }
    if as_json:
        print_json(document)
        return
    click.echo(
        f"New root {printable(rollover.root.subject.rfc4514_string())} "
        f"(serial {serial_hex(rollover.root.serial_number)}) -> {files['root']}"
    )
    click.echo(
        f"Cross-certificate signed by the old root (serial "
        f"{serial_hex(rollover.cross.serial_number)}) -> {files['cross']}"
    )
    if rollover.reverse_cross is not None:
        click.echo(
            f"Reverse cross-certificate: the old root signed by the new (serial "
            f"{serial_hex(rollover.reverse_cross.serial_number)}) -> {files['cross']}"
        )
    if rollover.issuing is not None:
        click.echo(
            f"New issuing CA {printable(rollover.issuing.subject.rfc4514_string())} "
            f"(serial {serial_hex(rollover.issuing.serial_number)})"
        )
    note(
        f"Both roots are trusted until --retire-old: install {files['roots']} on clients "
        "(privca trust install); new chains carry the cross-certificate. "
        "See privca rotate status.",
        app.quiet,
    )


def _retire_old_root(
    app: AppContext, force: bool, passphrase_file: Path | None, as_json: bool
) -> None:
    from privca.cli.options import open_authority
    from privca.cli.trust import remove_from_host
    from privca.errors import PrivcaError
    from privca.publication import crl_file_of
    from privca.trust.base import TrustAnchor

    with open_authority(app, passphrase_file) as ca:
        old = ca.retire_old_root(force=force)
        root = ca.root
    # The CA has moved on; a store that refuses (a tool missing, no sudo) is the
    # operator's to finish, and does not undo the retirement.
    anchor = TrustAnchor(old.certificate)
    try:
        removed, refused = remove_from_host(anchor), None
    except PrivcaError as exc:
        removed, refused = [], exc
    document: dict[str, object] = {
        "root": root.subject.rfc4514_string(),
        "serial": serial_hex(root.serial_number),
        "retired": {"subject": old.common_name, "serial": serial_hex(old.serial)},
        "last_crl": str(crl_file_of(ca.home, old.serial)),
        "trust_stores": [o.as_json() for o in removed],
        "trust_error": refused.message if refused is not None else None,
    }
    if as_json:
        print_json(document)
        return
    click.echo(
        f"Old root retired; only {printable(root.subject.rfc4514_string())} is trusted "
        "now. New chains no longer carry the cross-certificate."
    )
    click.echo(f"The old root's last CRL (until it expires) -> {document['last_crl']}")
    for outcome in removed:
        click.echo(f"Old root {outcome.result.value} from {outcome.store}: {outcome.location}")
    if refused is not None:
        warn(f"the old root could not be removed from this machine's stores: {refused.message}")
        note("remove it by hand: privca trust uninstall OLD-ROOT.crt", app.quiet)


@rotate_group.command("status")
@json_option
@click.pass_obj
def rotate_status_command(app: AppContext, as_json: bool) -> None:
    """Where a root rollover stands: the roots to trust, how many valid certificates still
    chain only to the old root and when the last expires, whether this machine's trust
    stores hold the new root, which endpoints `privca scan` last saw serving the old
    hierarchy, and whether the old root can be retired."""
    from privca._time import isoformat
    from privca.cli.options import open_authority
    from privca.tls_scan import old_hierarchy_endpoints, read_scans

    with open_authority(app) as ca:
        status = ca.rollover_status()
        endpoints = old_hierarchy_endpoints(ca, read_scans(ca.home.scans))
        new_root = ca.root
    reports = _trust_here(new_root)
    last = status.last_old_leaf_expires
    document = {
        "in_transition": status.in_transition,
        "roots": [
            {
                "subject": r.certificate.subject.rfc4514_string(),
                "serial": serial_hex(r.serial),
                "not_after": isoformat(r.not_after),
            }
            for r in status.roots
        ],
        "cross": serial_hex(status.cross.serial) if status.cross is not None else None,
        "old_hierarchy_valid_certificates": status.old_leaves,
        "old_hierarchy_by_issuer": dict(status.old_leaves_by_issuer),
        "last_old_certificate_expires": isoformat(last) if last is not None else None,
        "old_root_retirable": status.old_root_retirable,
        "new_root_trusted_here": _trusted_everywhere(reports),
        "trust_stores": [r.as_json() for r in reports],
        "old_hierarchy_endpoints": [e.document() for e in endpoints],
    }
    if as_json:
        print_json(document)
        return
    for root in status.roots:
        click.echo(
            f"root   {printable(root.label)}  serial {serial_hex(root.serial)}  "
            f"until {isoformat(root.not_after)[:10]}"
        )
    for report in reports:
        click.echo(f"trust  {report.store:<7} {report.presence.value:<19} {report.location}")
    if not status.in_transition:
        click.echo("No root rollover under way.")
        return
    click.echo(
        f"Rollover under way: {status.old_leaves} valid certificate(s) chain only to the "
        "old root" + (f"; the last expires {isoformat(last)[:10]}." if last else ".")
    )
    for issuer, count in status.old_leaves_by_issuer:
        click.echo(f"  issuer {printable(issuer) if issuer else '-'}: {count}")
    for endpoint in endpoints:
        click.echo(
            f"endpoint {printable(endpoint.target)} serves {endpoint.serial} of the old "
            f"hierarchy (scanned {isoformat(endpoint.scanned_at)[:10]})"
        )
    if document["new_root_trusted_here"] is False:
        click.echo("This machine's trust stores lack the new root: privca trust install")
    if status.old_root_retirable:
        click.echo("The old root can be retired now: privca rotate root --retire-old")
    else:
        click.echo("Renew them (privca renew) or wait; then privca rotate root --retire-old.")


def _trust_here(root: x509.Certificate) -> list[StoreReport]:
    """Where this machine's trust stores stand on `root` (read only)."""
    from privca.cli.trust import host_stores
    from privca.trust import TrustAnchor

    return [report for store in host_stores() for report in store.status(TrustAnchor(root))]


def _trusted_everywhere(reports: Sequence[StoreReport]) -> bool | None:
    """True when every store found here holds the root; None when none is found."""
    from privca.trust import Presence

    found = [r for r in reports if r.presence is not Presence.NOT_HERE]
    return all(r.presence is Presence.PRESENT for r in found) if found else None


@click.command("needs-renewal")
@click.argument("cert", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--within", metavar="DURATION", help="Due when it expires within DURATION (e.g. 30d)."
)
@click.option(
    "--fraction",
    metavar="N/D",
    default=None,
    help="Due when at most this part of its lifetime is left (default 1/3; 1 = always).",
)
@json_option
@click.pass_obj
def needs_renewal_command(
    app: AppContext, cert: Path, within: str | None, fraction: str | None, as_json: bool
) -> None:
    """Exit 0 if CERT should be renewed now, 1 if not yet, 2 on error.

    Made for systemd: ExecCondition=privca needs-renewal /etc/ssl/x.crt
    """
    from privca._time import days_left, utcnow
    from privca.errors import InputError
    from privca.home import read_input_file
    from privca.x509.encoding import load_certificate

    if within is not None and fraction is not None:
        raise InputError("--within and --fraction contradict each other", "choose one")
    certificate = load_certificate(read_input_file(cert, "certificate file"), f"'{cert}'")
    not_before, not_after = certificate.not_valid_before_utc, certificate.not_valid_after_utc
    now = utcnow()
    left = not_after - now
    threshold, rule = _renewal_threshold(within, fraction, not_after - not_before)
    due = left <= threshold
    if as_json:
        from privca._time import isoformat

        print_json(
            {
                "file": str(cert),
                "due": due,
                "serial": serial_hex(certificate.serial_number),
                "not_after": isoformat(not_after),
                "days_left": days_left(not_after, now),
                "rule": rule,
            }
        )
    elif app.verbosity >= 0:
        state = "renew now" if due else "not yet"
        days = days_left(not_after, now)
        click.echo(f"{shown_path(cert)}: {state} ({days} days left; rule: {rule})")
    sys.exit(0 if due else 1)


def _renewal_threshold(
    within: str | None, fraction: str | None, lifetime: dt.timedelta
) -> tuple[dt.timedelta, str]:
    """How much time left makes a certificate due, and the rule in words."""
    from fractions import Fraction

    from privca.cli.render import parse_duration
    from privca.errors import InputError

    if within is not None:
        return parse_duration(within), f"within {within}"
    try:
        part = Fraction(fraction or "1/3")
    except (ValueError, ZeroDivisionError):
        raise InputError(
            f"--fraction '{fraction}' is not a fraction like 1/3",
            "give a fraction of the lifetime left, e.g. --fraction 1/3 or --fraction 0.25",
        ) from None
    if not 0 < part <= 1:
        raise InputError(
            f"--fraction '{fraction}' must be more than 0 and at most 1",
            "e.g. --fraction 1/3: due when a third of the lifetime is left",
        )
    return lifetime * float(part), f"less than {part} of its lifetime left"


@click.command("check")
@click.option(
    "--warn",
    "warn_window",
    default="30d",
    show_default=True,
    metavar="DURATION",
    help="Warn about what expires within DURATION (e.g. 30d, 2w, 12h), or within a third "
    "of its lifetime if that is shorter.",
)
@click.option(
    "--crit",
    "crit_window",
    default="7d",
    show_default=True,
    metavar="DURATION",
    help="Critical when it expires within DURATION (no longer than --warn), or within a "
    "sixth of its lifetime if that is shorter.",
)
@click.option(
    "--format",
    "output_format",
    default="text",
    show_default=True,
    type=click.Choice(CHECK_FORMATS),
    help="text/json for people and scripts, nagios plugin output, or a Prometheus textfile.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to FILE atomically (for node_exporter's textfile collector).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (as --format json).")
@click.pass_obj
def check_command(
    app: AppContext,
    warn_window: str,
    crit_window: str,
    output_format: str,
    out: Path | None,
    as_json: bool,
) -> None:
    """Certificates expiring within --warn (or expired and not renewed), the CA
    certificates and each CRL's nextUpdate; the other live certificates are counted, not
    listed, so the cost follows the window, not the inventory. A short-lived
    certificate's windows shrink to a third (warning) and a sixth (critical) of its
    lifetime.

    text/json: exit 0 ok, 1 something in a window. nagios: 0 OK, 1 WARNING, 2 CRITICAL,
    3 UNKNOWN with perfdata. prometheus: a node_exporter textfile.
    """
    from privca import monitoring
    from privca._time import utcnow
    from privca.cli.options import open_authority
    from privca.cli.render import nagios_unknown, parse_duration
    from privca.errors import InputError, PrivcaError

    # Inside the try: a Nagios plugin answers bad arguments with UNKNOWN (exit 3) too; a
    # bare exit 2 reads as CRITICAL.
    try:
        if as_json:  # every listing command takes --json (README)
            if output_format not in ("text", "json"):
                raise InputError(
                    f"--json and --format {output_format} ask for two formats", "give one of them"
                )
            output_format = "json"
        if out is not None:
            check_out_directory(out.parent)
        warn_delta, crit_delta = parse_duration(warn_window), parse_duration(crit_window)
        if crit_delta > warn_delta:
            raise InputError("--crit is longer than --warn", "e.g. --warn 30d --crit 7d")
        now = utcnow()
        with open_authority(app) as ca:
            if output_format == "prometheus":
                text, code = monitoring.render_prometheus(ca, now, warn_delta), 0
            elif output_format == "nagios":
                # Counted, not listed: the soonest certificate and how many there are.
                summary = monitoring.summarize(ca, now, warn_delta, crit_delta)
                text, code = monitoring.render_nagios(summary, warn_delta, crit_delta)
            else:
                report = monitoring.collect(ca, now, warn_delta, crit_delta)
                code = 0 if monitoring.worst(report.items) == "ok" else 1
                if output_format == "json":
                    text = monitoring.render_json(report, now)
                else:
                    text = monitoring.render_text(report)
            if output_format == "text":  # render_nagios makes its own line printable
                # Labels are certificate names, possibly imported from anywhere.
                text = "\n".join(printable(line) for line in text.split("\n"))
    except PrivcaError as exc:
        if output_format != "nagios":
            raise
        nagios_unknown(exc.message)
    decide_exit(code)
    if out is not None:
        from privca.home import atomic_write

        make_out_directory(out.parent, private=False)
        atomic_write(out, text.encode() + (b"" if text.endswith("\n") else b"\n"), 0o644)
    else:
        click.echo(text)
    sys.exit(code)
