"""Running the stores' own tools, and writing root-owned files, with errors an operator can act on.

Every external program is found through `find_tool`, so a missing one becomes ToolMissing
with the package to install, and every failure names the command and shows its output.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from privca.errors import EnvironmentRefused, InsecurePermissions, ToolMissing
from privca.home import atomic_write
from privca.trust.base import Step

_OUTPUT_TAIL = 600


@dataclass(frozen=True)
class Tool:
    """An external program and how to get it on each platform family."""

    program: str
    install_hint: str


UPDATE_CA_CERTIFICATES = Tool(
    "update-ca-certificates",
    "install the CA certificate tools: apt install ca-certificates (Debian/Ubuntu), "
    "apk add ca-certificates (Alpine), zypper install ca-certificates (openSUSE)",
)
UPDATE_CA_TRUST = Tool(
    "update-ca-trust", "install the CA certificate tools: dnf install ca-certificates"
)
P11_KIT_TRUST = Tool("trust", "install p11-kit: pacman -S p11-kit (Arch)")
NSS_CERTUTIL = Tool(
    "certutil",
    "install the NSS tools: apt install libnss3-tools (Debian/Ubuntu), "
    "dnf install nss-tools (Fedora/RHEL), pacman -S nss (Arch), "
    "zypper install mozilla-nss-tools (openSUSE)",
)
KEYTOOL = Tool(
    "keytool",
    "install a Java runtime (apt install default-jre-headless, dnf install "
    "java-17-openjdk-headless) or set JAVA_HOME to a JDK",
)
SUDO = Tool("sudo", "run privca as root, or install sudo")


def find_tool(tool: Tool, *, extra_dirs: Sequence[Path] = ()) -> str:
    """The absolute path of `tool` on PATH (then in `extra_dirs`), or ToolMissing."""
    found = shutil.which(tool.program)
    for directory in extra_dirs:
        if found:
            break
        found = shutil.which(tool.program, path=str(directory))
    if not found:
        raise ToolMissing(f"'{tool.program}' was not found on PATH", tool.install_hint)
    return found


def is_root() -> bool:
    return not hasattr(os, "geteuid") or os.geteuid() == 0


def _nearest_existing(path: Path) -> Path:
    path = path.absolute()
    return next((p for p in (path, *path.parents) if p.exists()), Path(path.anchor))


def needs_sudo(path: Path) -> bool:
    """True when we are not root and cannot write `path` (or create it) ourselves."""
    if is_root():
        return False
    target = _nearest_existing(path)
    if target == path and path.is_file():
        return not (os.access(path, os.W_OK) and os.access(path.parent, os.W_OK))
    return not os.access(target, os.W_OK)


def check_not_open_to_others(path: Path, what: str) -> None:
    """Refuse a store location any user can write, as privca refuses a shared home: one
    who can add a file there makes every client of the store trust a CA of theirs. A
    world-writable parent without the sticky bit (which /tmp has) lets them swap the
    whole location."""
    if os.name != "posix":
        return  # Windows reports every writable file as 0666: its ACLs say who may write
    try:
        info = path.stat()
    except OSError:
        return  # not there yet: created by the store's tool with the usual modes
    if info.st_mode & stat.S_IWOTH:
        raise InsecurePermissions(
            f"{what} '{path}' is writable by any user (mode {stat.S_IMODE(info.st_mode):04o}): "
            "anyone could add a root every client of it trusts",
            f"run: chmod o-w '{path}', and check what was added there",
        )
    for parent in path.absolute().parents:
        mode = parent.stat().st_mode
        if mode & stat.S_IWOTH and not mode & stat.S_ISVTX:
            raise InsecurePermissions(
                f"'{parent}', above the {what} '{path}', is writable by any user "
                f"(mode {stat.S_IMODE(mode):04o}) without the sticky bit",
                f"run: chmod o-w '{parent}'",
            )


@contextlib.contextmanager
def serialized(directory: Path) -> Iterator[None]:
    """Hold an exclusive lock on `directory` (flock on the directory itself: no lock file
    left in a system directory) while privca changes a store kept there: its tool takes no
    lock (update-ca-certificates run twice at once collide on its temporary bundle), and a
    second privca must see the first one's file before choosing a name."""
    import fcntl  # POSIX only; the Linux store is the only caller

    try:
        descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        yield  # no such directory yet: the first write creates it, nothing to race on
        return
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # releases the lock


def with_sudo(argv: Sequence[str], privileged: bool) -> list[str]:
    if not privileged or is_root():
        return list(argv)
    return [find_tool(SUDO), "--", *argv]


def display(argv: Sequence[str]) -> str:
    return shlex.join(argv)


def run(
    argv: Sequence[str],
    *,
    input_bytes: bytes | None = None,
    env: Mapping[str, str] | None = None,
    hint: str | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[bytes]:
    """Run a store tool; a non-zero exit raises EnvironmentRefused naming the command."""
    full_env = {**os.environ, **env} if env else None
    try:
        completed = subprocess.run(
            list(argv),
            input=input_bytes,
            capture_output=True,
            env=full_env,
            check=False,
            timeout=300,
        )
    except FileNotFoundError as exc:
        raise ToolMissing(f"'{argv[0]}' could not be started: {exc.strerror}") from exc
    except subprocess.TimeoutExpired as exc:
        raise EnvironmentRefused(f"'{display(argv)}' did not finish within 300 s") from exc
    if check and completed.returncode != 0:
        output = (completed.stderr or completed.stdout).decode("utf-8", "replace").strip()
        if len(output) > _OUTPUT_TAIL:
            output = "…" + output[-_OUTPUT_TAIL:]
        raise EnvironmentRefused(
            f"'{display(argv)}' failed with exit code {completed.returncode}: "
            f"{output or '(no output)'}",
            hint or "run the command by hand to see why; privileged stores need root or sudo",
        )
    return completed


def command_step(
    argv: Sequence[str],
    *,
    input_bytes: bytes | None = None,
    env: Mapping[str, str] | None = None,
    hint: str | None = None,
    summary: str | None = None,
) -> Step:
    argv = list(argv)

    def apply() -> None:
        run(argv, input_bytes=input_bytes, env=env, hint=hint)

    return Step(summary or display(argv), apply)


def write_file_step(path: Path, data: bytes, mode: int = 0o644) -> Step:
    """Write `path` atomically; through `sudo install` when only root may write there."""

    def apply() -> None:
        if not needs_sudo(path):
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, data, mode)
            return
        with tempfile.TemporaryDirectory() as scratch:
            staged = Path(scratch) / path.name
            staged.write_bytes(data)
            run(with_sudo(["install", "-D", "-m", f"{mode:o}", str(staged), str(path)], True))

    return Step(f"write {path} (mode {mode:04o})", apply)


def remove_file_step(path: Path) -> Step:
    def apply() -> None:
        if needs_sudo(path):
            run(with_sudo(["rm", "-f", "--", str(path)], True))
            return
        with contextlib.suppress(FileNotFoundError):
            path.unlink()

    return Step(f"remove {path}", apply)


@contextlib.contextmanager
def staged_file(data: bytes, name: str) -> Iterator[Path]:
    """A temporary copy of `data` for tools that read certificates only from a file."""
    with tempfile.TemporaryDirectory(prefix="privca-trust-") as scratch:
        path = Path(scratch) / name
        path.write_bytes(data)
        yield path


def file_command_step(
    data: bytes,
    file_name: str,
    build: Callable[[Path], list[str]],
    *,
    privileged: bool = False,
    hint: str | None = None,
) -> Step:
    """A command that reads the certificate from a file: staged in a temporary directory."""

    def apply() -> None:
        with staged_file(data, file_name) as path:
            run(with_sudo(build(path), privileged), hint=hint)

    return Step(display(build(Path(file_name))), apply)
