"""The listening socket is bound before anything else: each way the machine can refuse
is one clear error naming the address, and a hint naming the option it came from."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from privca.errors import EnvironmentRefused, InputError
from privca.server.listener import bind_listener
from tests.conftest import Cli, assert_user_error, tree_snapshot
from tests.server.conftest import free_port


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.fixture
def taken_v4() -> Iterator[int]:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


def test_a_free_port_is_bound_and_listening() -> None:
    listener = bind_listener("127.0.0.1", 0)
    try:
        port = listener.getsockname()[1]
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    finally:
        listener.close()


def test_a_taken_port_is_named(taken_v4: int) -> None:
    with pytest.raises(EnvironmentRefused) as caught:
        bind_listener("127.0.0.1", taken_v4)
    assert str(caught.value) == f"127.0.0.1:{taken_v4} is in use"
    assert caught.value.exit_code == 3


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback here")
def test_a_taken_ipv6_port_is_named_in_brackets() -> None:
    with socket.socket(socket.AF_INET6) as holder:
        holder.bind(("::1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(EnvironmentRefused, match=rf"^\[::1\]:{port} is in use$"):
            bind_listener("::1", port)


# host -> (error class, fragment)
REFUSALS = {
    "address-of-another-machine": ("192.0.2.1", EnvironmentRefused, "not one of this machine's"),
    "unresolvable-host": ("no-such-host.invalid", InputError, "does not resolve"),
}


@pytest.mark.parametrize(("host", "error", "fragment"), REFUSALS.values(), ids=list(REFUSALS))
def test_refusals_are_one_clear_error(host: str, error: type, fragment: str) -> None:
    with pytest.raises(error) as caught:
        bind_listener(host, 8443)
    assert fragment in str(caught.value)


LISTEN_OPTIONS = ("--listen", "--metrics-listen", "--publish-listen")


@pytest.mark.parametrize("option", LISTEN_OPTIONS)
def test_a_taken_port_names_the_option_it_came_from(option: str, run_cli: Cli) -> None:
    """serve binds three listeners: the hint must send the operator to the flag whose
    address is taken, not to --listen whichever it was."""
    result = run_cli(
        "init", "--name", "Listener CA", "--passphrase-file", str(run_cli.passphrase_file)
    )
    assert result.exit_code == 0, result.output
    before = tree_snapshot(run_cli.home)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        addresses = {other: f"127.0.0.1:{free_port()}" for other in LISTEN_OPTIONS}
        addresses[option] = f"127.0.0.1:{taken}"
        flags = [part for other, address in addresses.items() for part in (other, address)]
        result = run_cli(
            "serve", "--no-tls", *flags, "--passphrase-file", str(run_cli.passphrase_file)
        )
    assert_user_error(result, f"127.0.0.1:{taken} is in use", code=3)
    hint = f"  hint: stop what listens there, or give {option} another port"
    assert result.stderr.splitlines()[1:] == [hint], result.stderr
    assert tree_snapshot(run_cli.home) == before
