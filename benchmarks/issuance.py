"""Issuance throughput: privca against its physical limit and against the OpenSSL runbook.

Run by hand (not a pytest file, not timed in CI):

    python benchmarks/issuance.py            # N=1000 CSRs, P-256 and RSA-4096 issuing CAs
    python benchmarks/issuance.py --quick    # N=100, the RSA runbook loop on a sample
    python benchmarks/issuance.py --n 300 --key-types ec-p256

For each issuing key type, measured in the same run on the same N pre-made CSRs:

  (a) raw      cryptography alone: build + sign with the same extensions, keys pre-loaded,
               nothing recorded or written (the physical limit of this machine)
  (b) library  CertificateAuthority.open + sign_requests on pre-inspected CertificateRequests
               (key decryption, durable records, no files)
  (c) runbook  a shell loop of one `openssl x509 -req -copy_extensions copyall` per CSR
               with an unencrypted copy of the issuing key
  (d) sign     `privca sign` of the N CSRs in one command (a subprocess, files written)
  (b0), (e), (e0)  the audit log's cost: (b) with the log's two store hooks stubbed out,
               and N/2 (at least 50) `issue` calls one at a time with the log on and
               off; interleaved three times, the best of each

and the ratios (d)/(c) (target >= 75x with P-256, >= 8x with RSA-4096) and (d)/(a)
(target >= 0.5). Then one service end to end: `privca --version`, one `privca issue`, and
the runbook's four commands (genpkey, req, x509 -req, verify).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from privca.authority import CertificateAuthority
from privca.keys.files import read_ca_key
from privca.keys.types import KeyType
from privca.x509.build import signature_hash_for
from privca.x509.csr import inspect_csr
from privca.x509.encoding import load_csr

PASSPHRASE = b"benchmark passphrase"
TARGET_VS_RUNBOOK = {KeyType.EC_P256: 75.0, KeyType.RSA_4096: 8.0}
TARGET_VS_RAW = 0.5


@dataclass
class Measure:
    label: str
    count: int
    seconds: float
    note: str = ""

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds else float("inf")


def timed(function: Callable[[], object]) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def run(command: Sequence[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(list(command), capture_output=True, text=True, **kwargs)  # type: ignore[call-overload]
    if result.returncode != 0:
        sys.exit(f"command failed ({result.returncode}): {' '.join(command)}\n{result.stderr}")
    return result


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("PRIVCA_")}


# inputs ------------------------------------------------------------------------------------


def make_csrs(directory: Path, count: int) -> list[Path]:
    """N P-256 keys and CSRs (one DNS SAN each), written as PEM files."""
    directory.mkdir(parents=True)
    paths = []
    for index in range(count):
        key = ec.generate_private_key(ec.SECP256R1())
        name = f"svc{index:05d}.corp.internal"
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .sign(key, hashes.SHA256())
        )
        path = directory / f"{name}.csr"
        path.write_bytes(csr.public_bytes(serialization.Encoding.PEM))
        paths.append(path)
    return paths


@dataclass
class Setup:
    key_type: KeyType
    home: Path
    issuing_cert: Path
    root_cert: Path
    plain_key: Path  # the runbook's unencrypted issuing key
    passphrase_file: Path


def make_ca(work: Path, key_type: KeyType) -> Setup:
    home = work / f"ca-{key_type.value}"
    ca = CertificateAuthority.init(
        home, f"Bench {key_type.value} CA", key_type=key_type, passphrase=PASSPHRASE
    )
    ca.close()
    key = read_ca_key(home / "private" / "issuing.key", PASSPHRASE)
    plain = work / f"issuing-{key_type.value}.key"
    plain.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    plain.chmod(0o600)
    passphrase_file = work / "passphrase.txt"
    passphrase_file.write_bytes(PASSPHRASE + b"\n")
    passphrase_file.chmod(0o600)
    return Setup(
        key_type,
        home,
        home / "certs" / "issuing.crt",
        home / "certs" / "root.crt",
        plain,
        passphrase_file,
    )


# (a) raw cryptography ---------------------------------------------------------------------


def raw_sign(setup: Setup, csr_paths: Sequence[Path], repeat: int = 3) -> Measure:
    """Same extensions as privca's server-client profile; keys and CSRs loaded beforehand."""
    key = serialization.load_pem_private_key(
        setup.plain_key.read_bytes(), None, unsafe_skip_rsa_key_validation=True
    )
    issuer = x509.load_pem_x509_certificate(setup.issuing_cert.read_bytes())
    aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.public_key())  # type: ignore[arg-type]
    algorithm = signature_hash_for(key)
    requests = [x509.load_pem_x509_csr(p.read_bytes()) for p in csr_paths]
    items = [
        (
            r.public_key(),
            r.extensions.get_extension_for_class(x509.SubjectAlternativeName).value,
            r.subject,
        )
        for r in requests
    ]
    now = dt.datetime.now(dt.UTC)

    def once() -> None:
        for public_key, san, subject in items:
            (
                x509.CertificateBuilder()
                .subject_name(subject)
                .issuer_name(issuer.subject)
                .public_key(public_key)
                .serial_number(x509.random_serial_number())
                .not_valid_before(now)
                .not_valid_after(now + dt.timedelta(days=730))
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(
                    x509.KeyUsage(True, False, False, False, False, False, False, False, False),
                    critical=True,
                )
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), False)
                .add_extension(aki, critical=False)
                .add_extension(
                    x509.ExtendedKeyUsage(
                        [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                    ),
                    critical=False,
                )
                .add_extension(san, critical=False)
                .sign(key, algorithm)  # type: ignore[arg-type]
            )

    best = min(timed(once) for _ in range(repeat))
    return Measure("(a) raw cryptography build+sign", len(items), best, f"best of {repeat}")


# (b) library ------------------------------------------------------------------------------


def library_sign(setup: Setup, csr_paths: Sequence[Path]) -> Measure:
    requests = [inspect_csr(load_csr(p.read_bytes()), str(p)) for p in csr_paths]

    def once() -> None:
        with CertificateAuthority.open(setup.home, PASSPHRASE) as ca:
            issued = ca.sign_requests(requests)
            assert len(issued) == len(requests)

    return Measure(
        "(b) privca library sign_requests",
        len(requests),
        timed(once),
        "open + key decrypt + record",
    )


# the audit log's cost ----------------------------------------------------------------------


@contextlib.contextmanager
def audit_log_off() -> Iterator[None]:
    """Issuance as it was before the audit log: no entry built, none appended (the store's
    only two audit hooks, stubbed out for the baseline rows of this same run)."""
    from privca.store import auditlog, issuance

    saved = (auditlog.append, issuance._issue_entries)
    auditlog.append = lambda *args, **kwargs: []  # type: ignore[assignment]
    issuance._issue_entries = lambda *args, **kwargs: []  # type: ignore[assignment]
    try:
        yield
    finally:
        auditlog.append, issuance._issue_entries = saved  # type: ignore[assignment]


def library_issue_each(setup: Setup, count: int, *, audit: bool) -> Measure:
    """`issue` one certificate at a time: two commits each, so the log's per-commit cost
    (head lock, entry, head update) is not spread over a batch."""

    with CertificateAuthority.open(setup.home, PASSPHRASE) as ca:
        ca.issue(["warm-up.bench.internal"])  # the key is decrypted once, outside the timing

        def once() -> None:
            for index in range(count):
                ca.issue([f"each{index}-{time.monotonic_ns()}.bench.internal"])

        if audit:
            seconds = timed(once)
        else:
            with audit_log_off():
                seconds = timed(once)
    label = "(e) issue one by one, audit log on" if audit else "(e0) issue one by one, log off"
    return Measure(label, count, seconds, "key generation + 2 commits each")


def audit_rows(setup: Setup, csr_paths: Sequence[Path], rounds: int = 3) -> list[Measure]:
    """(b), (b0), (e), (e0), interleaved `rounds` times (the machine's load drifts), the
    best round of each kept."""
    each_count = max(50, len(csr_paths) // 2)
    best: dict[str, Measure] = {}
    for _round in range(rounds):
        for measure in (
            library_sign(setup, csr_paths),
            library_sign_without_log(setup, csr_paths),
            library_issue_each(setup, each_count, audit=True),
            library_issue_each(setup, each_count, audit=False),
        ):
            kept = best.get(measure.label)
            if kept is None or measure.seconds < kept.seconds:
                best[measure.label] = measure
    return [Measure(m.label, m.count, m.seconds, f"best of {rounds}") for m in best.values()]


def library_sign_without_log(setup: Setup, csr_paths: Sequence[Path]) -> Measure:
    with audit_log_off():
        measure = library_sign(setup, csr_paths)
    return Measure("(b0) library sign_requests, log off", measure.count, measure.seconds)


# (c) runbook ------------------------------------------------------------------------------

RUNBOOK_LOOP = """
set -e
for csr in "$CSR_DIR"/*.csr; do
  openssl x509 -req -in "$csr" -CA "$CA_CERT" -CAkey "$CA_KEY" \\
    -CAserial "$SERIAL_FILE" -CAcreateserial -copy_extensions copyall -days 730 \\
    -out "$OUT_DIR/$(basename "$csr" .csr).crt" 2>/dev/null
done
"""


def runbook_loop(setup: Setup, csr_paths: Sequence[Path], work: Path, sample: int) -> Measure:
    """A shell loop over `sample` of the CSRs; the rate is extrapolated if sample < N."""
    chosen = list(csr_paths)[:sample]
    csr_dir = work / f"runbook-in-{setup.key_type.value}"
    out_dir = work / f"runbook-out-{setup.key_type.value}"
    csr_dir.mkdir()
    out_dir.mkdir()
    for path in chosen:
        os.link(path, csr_dir / path.name)
    env = {
        **os.environ,
        "CSR_DIR": str(csr_dir),
        "OUT_DIR": str(out_dir),
        "CA_CERT": str(setup.issuing_cert),
        "CA_KEY": str(setup.plain_key),
        "SERIAL_FILE": str(work / f"serial-{setup.key_type.value}.srl"),
    }
    seconds = timed(lambda: run(["bash", "-c", RUNBOOK_LOOP], env=env))
    made = len(list(out_dir.glob("*.crt")))
    assert made == len(chosen), (made, len(chosen))
    note = "" if sample == len(csr_paths) else f"sample of {sample}, rate extrapolated"
    return Measure("(c) runbook: openssl x509 -req loop", len(chosen), seconds, note)


# (d) privca sign --------------------------------------------------------------------------


def privca_sign(setup: Setup, csr_paths: Sequence[Path], work: Path) -> Measure:
    out = work / f"sign-out-{setup.key_type.value}"
    command = [
        sys.executable, "-m", "privca", "-q", "--home", str(setup.home), "sign",
        *map(str, csr_paths), "--out", str(out), "--passphrase-file", str(setup.passphrase_file),
    ]  # fmt: skip
    seconds = timed(lambda: run(command, env=clean_env()))
    assert len(list(out.glob("*.crt"))) == len(csr_paths)
    return Measure("(d) privca sign (one command)", len(csr_paths), seconds, "files written")


# one service end to end ---------------------------------------------------------------------


def one_service(setup: Setup, work: Path) -> list[Measure]:
    env = clean_env()
    python = [sys.executable, "-m", "privca"]
    version = min(timed(lambda: run([*python, "--version"], env=env)) for _ in range(3))
    out = work / "one-issue"
    issue_command = [
        *python, "-q", "--home", str(setup.home), "issue", "one.corp.internal",
        "--out", str(out), "--passphrase-file", str(setup.passphrase_file),
    ]  # fmt: skip
    issue = timed(lambda: run(issue_command, env=env))
    d = work / "one-runbook"
    d.mkdir()
    key, csr, crt = d / "one.key", d / "one.csr", d / "one.crt"
    steps = [
        (
            "openssl genpkey",
            ["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-out", str(key)],
        ),
        (
            "openssl req",
            ["openssl", "req", "-new", "-key", str(key), "-subj", "/CN=one.corp.internal",
             "-addext", "subjectAltName=DNS:one.corp.internal", "-out", str(csr)],
        ),
        (
            "openssl x509 -req",
            ["openssl", "x509", "-req", "-in", str(csr), "-CA", str(setup.issuing_cert),
             "-CAkey", str(setup.plain_key), "-CAserial", str(d / "serial.srl"),
             "-CAcreateserial", "-copy_extensions", "copyall", "-days", "730", "-out", str(crt)],
        ),
        (
            "openssl verify",
            ["openssl", "verify", "-CAfile", str(setup.root_cert), "-untrusted",
             str(setup.issuing_cert), str(crt)],
        ),
    ]  # fmt: skip
    measures = [Measure("privca --version", 1, version, "best of 3")]
    measures.append(Measure("privca issue (key + cert + files)", 1, issue))
    total = 0.0
    for label, command in steps:
        seconds = timed(lambda command=command: run(command))
        total += seconds
        measures.append(Measure(f"  runbook {label}", 1, seconds))
    measures.append(Measure("runbook, four commands", 1, total))
    return measures


# report -----------------------------------------------------------------------------------


def table(rows: Sequence[Measure], title: str) -> None:
    print(f"\n{title}")
    print(f"  {'what':44} {'certs':>6} {'seconds':>9} {'certs/s':>10} {'ms/cert':>9}  note")
    for m in rows:
        per = 1000 * m.seconds / m.count
        print(
            f"  {m.label:44} {m.count:>6} {m.seconds:>9.3f} {m.rate:>10.1f} {per:>9.2f}  {m.note}"
        )


def verdict(value: float, target: float) -> str:
    return "ok" if value >= target else "MISSED"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=None, help="CSRs per CA (default 1000)")
    parser.add_argument("--quick", action="store_true", help="N=100, RSA runbook on a sample")
    parser.add_argument(
        "--key-types",
        default="ec-p256,rsa-4096",
        help="issuing key types, comma-separated (default: ec-p256,rsa-4096)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)
    n = args.n or (100 if args.quick else 1000)
    key_types = [KeyType.parse(k.strip()) for k in args.key_types.split(",") if k.strip()]
    if shutil.which("openssl") is None:
        sys.exit("openssl is not installed")

    work = Path(tempfile.mkdtemp(prefix="privca-bench-"))
    summary: list[tuple[str, float, float]] = []
    print(f"privca issuance benchmark: N={n}, Python {sys.version.split()[0]}, work dir {work}")
    print(run(["openssl", "version"]).stdout.strip())
    try:
        start = time.perf_counter()
        csr_paths = make_csrs(work / "csrs", n)
        print(f"made {n} P-256 CSRs in {time.perf_counter() - start:.2f} s")
        first_setup: Setup | None = None
        for key_type in key_types:
            start = time.perf_counter()
            setup = make_ca(work, key_type)
            first_setup = first_setup or setup
            print(f"made a {key_type.value} CA in {time.perf_counter() - start:.2f} s")
            sample = n
            if args.quick and key_type.is_rsa:
                sample = max(10, n // 4)
            raw = raw_sign(setup, csr_paths)
            library, library_off, each_on, each_off = audit_rows(setup, csr_paths)
            runbook = runbook_loop(setup, csr_paths, work, sample)
            sign = privca_sign(setup, csr_paths, work)
            table(
                [raw, library, library_off, each_on, each_off, runbook, sign],
                f"issuing CA {key_type.value}, N={n}",
            )
            batch_cost = (library.seconds - library_off.seconds) / library.count * 1000
            each_cost = (each_on.seconds - each_off.seconds) / each_on.count * 1000
            print(
                f"  audit log cost per certificate: {batch_cost:+.3f} ms in a batch of {n}"
                f" ((b)-(b0)), {each_cost:+.3f} ms one by one ((e)-(e0))"
            )
            vs_runbook = sign.rate / runbook.rate
            vs_raw = sign.rate / raw.rate
            target = TARGET_VS_RUNBOOK.get(key_type, 0.0)
            print(
                f"  (d)/(c) privca sign vs runbook: {vs_runbook:7.1f}x"
                f"   target >= {target:g}x  {verdict(vs_runbook, target)}"
            )
            print(
                f"  (d)/(a) privca sign vs raw:     {vs_raw:7.2f} "
                f"   target >= {TARGET_VS_RAW:g}    {verdict(vs_raw, TARGET_VS_RAW)}"
            )
            print(f"  (b)/(a) library vs raw:         {library.rate / raw.rate:7.2f}")
            summary.append((key_type.value, vs_runbook, vs_raw))
        if first_setup is not None:
            table(one_service(first_setup, work), "one service, end to end (wall time)")
        print("\nsummary")
        for name, vs_runbook, vs_raw in summary:
            print(f"  {name:10} (d)/(c) {vs_runbook:7.1f}x   (d)/(a) {vs_raw:5.2f}")
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
