"""Read a CA directory made with the OpenSSL runbook or `openssl ca`.

Layout (all optional except the CA certificate and key):
    certs/ca.crt | cacert.pem      private/ca.key | private/cakey.pem
    index.txt  serial  crlnumber   newcerts/*.pem   crl.pem | crl/crl.pem
plus any certificate files the operator kept elsewhere, given with --certs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from privca.adopt.plan import (
    AdoptionPlan,
    PassphraseSource,
    Records,
    build_plan,
    check_directory,
    crl_number_of,
    expand_globs,
    files_in,
    first_existing,
    read_ca_certificate,
    read_crl,
    read_crl_number_file,
    read_index,
    read_serial_file,
)
from privca.errors import InputError

CERT_CANDIDATES = ("certs/ca.crt", "cacert.pem", "ca.crt", "certs/cacert.pem", "ca.pem")
KEY_CANDIDATES = ("private/ca.key", "private/cakey.pem", "ca.key")
CRL_CANDIDATES = ("crl.pem", "crl/crl.pem", "crl/ca.crl")


def read_openssl_ca(
    directory: Path,
    *,
    passphrase: PassphraseSource,
    key: Path | None = None,
    cert: Path | None = None,
    cert_globs: Sequence[str] = (),
    name: str | None = None,
) -> AdoptionPlan:
    check_directory(directory, "CA directory")
    cert_path = cert or first_existing(directory, CERT_CANDIDATES)
    if cert_path is None:
        raise InputError(
            f"no CA certificate in '{directory}' (looked for {', '.join(CERT_CANDIDATES)})",
            "give it with --cert FILE",
        )
    key_path = key or first_existing(directory, KEY_CANDIDATES)
    if key_path is None:
        raise InputError(
            f"no CA key in '{directory}' (looked for {', '.join(KEY_CANDIDATES)})",
            "give it with --key FILE",
        )
    index = directory / "index.txt"
    entries = read_index(index) if index.is_file() else []
    # Read to refuse a corrupt one; privca's own serials are random, so it is not kept.
    for serial_file in (directory / "serial", cert_path.with_suffix(".srl")):
        if serial_file.is_file():
            read_serial_file(serial_file)
    crl_path = first_existing(directory, CRL_CANDIDATES)
    crl = None
    crl_number = None
    if crl_path is not None:
        ca, _ = read_ca_certificate(cert_path)
        crl = read_crl(crl_path, ca)
        crl_number = crl_number_of(crl, str(crl_path))
    number_file = directory / "crlnumber"
    if number_file.is_file():
        # `openssl ca` keeps the *next* CRLNumber there.
        used = read_crl_number_file(number_file)
        crl_number = max(crl_number or 0, used) or None
    files = files_in(directory / "newcerts", "*.pem", "*.crt") + expand_globs(cert_globs, directory)
    return build_plan(
        kind="openssl",
        source=directory,
        name=name,
        cert_path=cert_path,
        key_path=key_path,
        passphrase=passphrase,
        certificate_files=files,
        records=Records(entries, crl, str(crl_path or ""), crl_number),
    )
