"""Output: JSON documents, rich tables on a terminal, plain lines when piped, progress bars."""

from __future__ import annotations

import contextlib
import itertools
import json
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

import click

from privca._text import printable
from privca.settings import parse_duration as parse_duration  # where the CLI finds it


def print_json(document: Any) -> None:
    click.echo(json.dumps(document, indent=2, sort_keys=False))


# Lines written per write(): one write per row would cost a system call each.
ECHO_BATCH = 256


def _echo_batched(pieces: Iterable[str]) -> None:
    batch: list[str] = []
    for piece in pieces:
        batch.append(piece)
        if len(batch) >= ECHO_BATCH:
            click.echo("".join(batch), nl=False)
            batch.clear()
    if batch:
        click.echo("".join(batch), nl=False)


def _batches(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


def print_json_array(documents: Iterable[Any]) -> None:
    """The same text as print_json(list(documents)), ECHO_BATCH elements at a time
    (memory does not grow with the list).

    Each batch is encoded as one indented array and its brackets cut off: the indented
    encoder is pure Python and costs most per call, so one call per batch instead of
    one per element makes the listing several times faster."""
    encoder = json.JSONEncoder(indent=2)  # one for all: json.dumps makes one per call
    first = True
    for batch in _batches(documents, ECHO_BATCH):
        # "[\n" + elements indented by two + "\n]": keep what is between the brackets
        elements = encoder.encode(batch)[2:-2]
        click.echo(("[\n" if first else ",\n") + elements, nl=False)
        first = False
    click.echo("[]" if first else "\n]")


def print_json_lines(documents: Iterable[Any]) -> None:
    """One compact JSON object per line (JSON Lines), ECHO_BATCH lines a write."""
    encoder = json.JSONEncoder(separators=(",", ":"))  # C-accelerated: no indent
    for batch in _batches(documents, ECHO_BATCH):
        click.echo("".join(encoder.encode(d) + "\n" for d in batch), nl=False)


def is_terminal() -> bool:
    return sys.stdout.isatty()


def print_table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
    """Aligned columns on a terminal; tab-separated lines when piped (stable for grep, awk
    and cut: a header line, then one line per row, no colour, no escapes).

    Cells may carry names from CSRs or ACME requests: control characters are escaped in
    both forms (so a tab or newline in a name cannot break a TSV row either), and rich gets
    them as plain Text, so `[link=...]` in a name is shown, never interpreted as markup."""
    cells = ([printable(cell) for cell in row] for row in rows)  # piped: streamed
    if not is_terminal():
        _echo_batched(["\t".join(columns) + "\n"])
        _echo_batched("\t".join(row) + "\n" for row in cells)
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title, header_style="bold", box=None, pad_edge=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in cells:
        table.add_row(*(Text(cell) for cell in row))
    Console().print(table)


def echo_files(paths: dict[str, Path]) -> None:
    """The files a command wrote, one per line: `  certificate: ./db.crt`. Paths are the
    user's (--out), and a terminal would act on an escape sequence in one: escaped."""
    for label, path in paths.items():
        click.echo(f"  {label + ':':13}{shown_path(path)}")


def nagios_unknown(message: str, escaped: bool = False) -> NoReturn:
    """Exit as a Nagios plugin that cannot answer: one UNKNOWN line on stdout, status 3,
    never 2, which Nagios reads as CRITICAL (the Monitoring Plugins guidelines). For the
    values `check` parses itself and for the usage errors click finds first (cli/main.py)."""
    from privca.monitoring import nagios_text

    click.echo(f"PRIVCA UNKNOWN - {nagios_text(message, escaped)}")
    sys.exit(3)


def shown_path(path: Path | str) -> str:
    """A path as the terminal may show it (printable)."""
    return printable(str(path))


# The exit status a checking command decided on before printing its findings: kept when
# the reader of its output goes away while it prints (`privca verify x.crt | head -1`),
# where a closed pipe otherwise ends the command with 0 (see cli/main.py).
_decided = [0]


def decide_exit(code: int) -> None:
    """Record a checking command's verdict (verify, check, doctor, scan, audit verify)
    before it prints: a reader that stops reading must not turn "failed" into 0."""
    _decided[0] = code


def decided_exit() -> int:
    return _decided[0]


def note(message: str, quiet: bool = False) -> None:
    """Human commentary goes to stderr so stdout stays parseable."""
    if not quiet:
        click.echo(message, err=True)


def warn(message: str) -> None:
    click.echo(f"privca: warning: {message}", err=True)


@contextlib.contextmanager
def progress(total: int, label: str) -> Iterator[Callable[[int], None]]:
    """A progress bar on a terminal for long work; a no-op callback when piped."""
    if total < 20 or not sys.stderr.isatty():
        yield lambda _done: None
        return
    from rich.progress import Progress

    with Progress(transient=True) as bar:
        task = bar.add_task(label, total=total)
        yield lambda done: bar.update(task, completed=done)
