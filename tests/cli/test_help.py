"""Every option of every command says what it does (`privca CMD --help` is the manual a
newcomer reads first), and every command's help renders."""

from __future__ import annotations

from collections.abc import Iterator

import click
import pytest
from click.testing import CliRunner

from privca.cli.main import COMMANDS, cli


def _walk(group: click.Group, ctx: click.Context, path: str) -> Iterator[tuple[str, click.Command]]:
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None, name
        yield f"{path} {name}", command
        if isinstance(command, click.Group):
            yield from _walk(command, click.Context(command, parent=ctx), f"{path} {name}")


def _all_commands() -> list[tuple[str, click.Command]]:
    ctx = click.Context(cli, info_name="privca")
    return [("privca", cli), *_walk(cli, ctx, "privca")]


ALL = _all_commands()


def test_every_lazy_command_is_listed() -> None:
    top = {path.split()[1] for path, _ in ALL if path != "privca"}
    assert top == set(COMMANDS)


@pytest.mark.parametrize(("path", "command"), ALL, ids=[path for path, _ in ALL])
def test_every_option_has_help(path: str, command: click.Command) -> None:
    missing = [
        "/".join(param.opts)
        for param in command.params
        if isinstance(param, click.Option) and not param.hidden and not (param.help or "").strip()
    ]
    assert not missing, f"{path}: options without help: {', '.join(missing)}"
    assert (command.help or command.short_help or "").strip(), f"{path} has no help text"


@pytest.mark.parametrize(("path", "command"), ALL, ids=[path for path, _ in ALL])
def test_help_renders(path: str, command: click.Command) -> None:
    result = CliRunner().invoke(cli, [*path.split()[1:], "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
