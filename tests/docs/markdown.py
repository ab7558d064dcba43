"""The commands of a Markdown file, as a reader would type them.

A code block is either fenced (``` or ~~~, with an optional language) or indented by four
spaces. Shell blocks (fenced `sh`, `shell`, `bash`, `console` or no language; indented
blocks not starting with Python's `from`/`import`) are split into commands: one per line,
backslash continuations joined, comment lines dropped. Python blocks are one command each.
Other languages (yaml, toml, caddyfile, ...) are configuration, not commands.

A block the suite cannot run is marked in the Markdown, invisibly to readers, by an HTML
comment on the line before it (a blank line between is allowed):

    <!-- doc-test: skip: REASON -->

REASON is required: it says why the block cannot run in a test (e.g. it needs Kubernetes).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

SHELL_LANGUAGES = {"", "sh", "shell", "bash", "console"}
PYTHON_LANGUAGES = {"python", "py", "python3"}
_FENCE = re.compile(r"^(```|~~~)\s*([\w+-]*)")
_DIRECTIVE = re.compile(r"^<!--\s*doc-test:\s*(.*?)\s*-->\s*$")


class MarkdownError(ValueError):
    """A doc-test directive that is malformed (e.g. a skip without a reason)."""


@dataclass(frozen=True)
class Block:
    source: str  # e.g. "README.md"
    line: int  # 1-based line of the block's first content line
    language: str  # "shell", "python" or the fence's language
    lines: tuple[str, ...]
    skip_reason: str | None = None


@dataclass(frozen=True)
class Command:
    source: str
    line: int
    language: str  # "shell" or "python"
    text: str  # as written (continuations joined for shell)

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line}"


def _directive(lines: list[str], start: int, source: str) -> str | None:
    """The skip reason of a `<!-- doc-test: skip: ... -->` just above line `start`."""
    index = start - 1
    if index >= 0 and not lines[index].strip():
        index -= 1
    if index < 0:
        return None
    match = _DIRECTIVE.match(lines[index].strip())
    if match is None:
        return None
    body = match.group(1)
    verb, _, reason = body.partition(":")
    if verb.strip() != "skip" or not reason.strip():
        raise MarkdownError(
            f"{source}:{index + 1}: write '<!-- doc-test: skip: REASON -->' (a reason is "
            f"required), not '{lines[index].strip()}'"
        )
    return reason.strip()


def _indented_language(block: list[str]) -> str:
    first = next((line for line in block if line.strip()), "")
    return "python" if first.startswith(("from ", "import ")) else "shell"


def blocks(text: str, source: str) -> list[Block]:
    lines = text.splitlines()
    found: list[Block] = []
    index = 0
    previous_blank = True
    while index < len(lines):
        line = lines[index]
        fence = _FENCE.match(line)
        if fence is not None:
            marker, language = fence.group(1), fence.group(2).lower()
            body_start = index + 1
            end = body_start
            while end < len(lines) and not lines[end].startswith(marker):
                end += 1
            kind = (
                "shell"
                if language in SHELL_LANGUAGES
                else "python"
                if language in PYTHON_LANGUAGES
                else language
            )
            found.append(
                Block(
                    source,
                    body_start + 1,
                    kind,
                    tuple(lines[body_start:end]),
                    _directive(lines, index, source),
                )
            )
            index = end + 1
            previous_blank = False
            continue
        if previous_blank and line.startswith("    ") and line.strip():
            start = index
            body: list[str] = []
            while index < len(lines) and (
                lines[index].startswith("    ") or not lines[index].strip()
            ):
                body.append(lines[index][4:])
                index += 1
            while body and not body[-1].strip():
                body.pop()
            found.append(
                Block(
                    source,
                    start + 1,
                    _indented_language(body),
                    tuple(body),
                    _directive(lines, start, source),
                )
            )
            previous_blank = True
            continue
        previous_blank = not line.strip()
        index += 1
    return found


def commands(block: Block) -> list[Command]:
    if block.language == "python":
        return [Command(block.source, block.line, "python", "\n".join(block.lines) + "\n")]
    if block.language != "shell":
        return []
    result: list[Command] = []
    pending: list[str] = []
    pending_line = 0
    for offset, raw in enumerate(block.lines):
        line = raw.rstrip()
        if not pending:
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            pending_line = block.line + offset
        if line.endswith("\\"):
            pending.append(line[:-1].strip() if pending else line[:-1].rstrip())
            continue
        pending.append(line.strip() if pending else line)
        result.append(Command(block.source, pending_line, "shell", " ".join(pending).strip()))
        pending = []
    if pending:
        raise MarkdownError(f"{block.source}:{pending_line}: a command ends with a backslash")
    return result


def file_commands(path: Path, root: Path) -> tuple[list[Command], list[Block]]:
    """Every command of a Markdown file, and the blocks it skipped (with reasons)."""
    source = str(path.relative_to(root))
    found = blocks(path.read_text(encoding="utf-8"), source)
    runnable = [b for b in found if b.skip_reason is None]
    return [c for b in runnable for c in commands(b)], [b for b in found if b.skip_reason]


def strip_comment(command: str) -> str:
    """The command without a trailing `# comment` (outside quotes)."""
    quote = ""
    for index, char in enumerate(command):
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == "#" and (index == 0 or command[index - 1].isspace()):
            return command[:index].rstrip()
    return command.strip()
