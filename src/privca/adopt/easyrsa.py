"""Read an easy-rsa 3 PKI directory.

    ca.crt  private/ca.key  index.txt  serial  crl.pem
    issued/*.crt  certs_by_serial/*.pem  revoked/certs_by_serial/*.crt
    renewed/certs_by_serial/*.crt  expired/*.crt (3.1+)
easy-rsa also keeps the services' private keys (private/*.key, revoked/private_by_serial/);
privca never imports those, and doctor reports them.
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
    read_ca_certificate,
    read_crl,
    read_crl_number_file,
    read_index,
    read_serial_file,
)
from privca.errors import InputError

CERTIFICATE_DIRECTORIES = (
    ("issued", "*.crt"),
    ("certs_by_serial", "*.pem"),
    ("revoked/certs_by_serial", "*.crt"),
    ("renewed/certs_by_serial", "*.crt"),
    ("renewed/issued", "*.crt"),
    ("expired", "*.crt"),
)


def read_easyrsa_pki(
    pki: Path,
    *,
    passphrase: PassphraseSource,
    cert_globs: Sequence[str] = (),
    name: str | None = None,
) -> AdoptionPlan:
    check_directory(pki, "easy-rsa PKI directory")
    cert_path, key_path, index = pki / "ca.crt", pki / "private" / "ca.key", pki / "index.txt"
    for path, what in ((cert_path, "CA certificate"), (key_path, "CA key"), (index, "index")):
        if not path.is_file():
            raise InputError(
                f"{what} '{path}' does not exist",
                "is this an easy-rsa PKI (the directory `easyrsa init-pki` made)?",
            )
    entries = read_index(index)
    if (pki / "serial").is_file():
        read_serial_file(pki / "serial")
    crl = None
    crl_number = None
    if (pki / "crl.pem").is_file():
        ca, _ = read_ca_certificate(cert_path)
        crl = read_crl(pki / "crl.pem", ca)
        crl_number = crl_number_of(crl, str(pki / "crl.pem"))
    if (pki / "crlnumber").is_file():
        used = read_crl_number_file(pki / "crlnumber")
        crl_number = max(crl_number or 0, used) or None
    files = [
        path
        for directory, pattern in CERTIFICATE_DIRECTORIES
        for path in files_in(pki / directory, pattern)
    ]
    service_keys = [
        path
        for path in files_in(pki / "private", "*.key")
        + files_in(pki / "revoked" / "private_by_serial", "*.key")
        if path != key_path
    ]
    return build_plan(
        kind="easyrsa",
        source=pki,
        name=name,
        cert_path=cert_path,
        key_path=key_path,
        passphrase=passphrase,
        certificate_files=files + expand_globs(cert_globs, pki),
        records=Records(entries, crl, str(pki / "crl.pem"), crl_number),
        service_keys=service_keys,
    )
