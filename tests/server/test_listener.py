"""The listening socket is bound before anything else: each way the machine can refuse
is one clear error naming the address."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from privca.errors import EnvironmentRefused, InputError
from privca.server.listener import bind_listener


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
