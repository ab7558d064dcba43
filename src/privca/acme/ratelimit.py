"""newAccount's rate limit per client network, kept in memory by each server process.

An account costs nothing to make (a key pair) and each one may place `orders_per_window`
orders, so without a limit on accounts a client's orders had none. Counted per client
network, not per address: an IPv6 client holds a whole /64, one address per request if
it likes. In memory, per process: `serve --workers N` and replicas each allow the limit
(docs/acme.md says so), and a restart forgets; the store is not written on every
newAccount for it.
"""

from __future__ import annotations

import collections
import ipaddress
import math
import threading

IPV6_PREFIX = 64
# Networks tracked at once; beyond it the one seen least recently is forgotten (memory
# stays bounded whoever connects, at worst a forgotten network gets a fresh allowance).
MAX_NETWORKS = 100_000


def client_network(address: str | None) -> str:
    """The key a client is counted under: its IPv4 address or its IPv6 /64 ('' if none)."""
    if not address:
        return ""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address[:64]
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.IPv6Network((parsed, IPV6_PREFIX), strict=False))
    return str(parsed)


class NetworkRate:
    """At most `limit` events per client network in any `window` seconds."""

    def __init__(self, limit: int, window: float, max_networks: int = MAX_NETWORKS) -> None:
        self.limit = limit
        self.window = window
        self._max_networks = max_networks
        self._events: collections.OrderedDict[str, collections.deque[float]] = (
            collections.OrderedDict()
        )
        self._lock = threading.Lock()

    def take(self, address: str | None, now: float) -> int | None:
        """Count one event of `address`'s network at `now` (monotonic seconds): None when
        allowed, else the whole seconds until it would be (nothing counted)."""
        network = client_network(address)
        with self._lock:
            events = self._events.pop(network, None) or collections.deque()
            while events and events[0] <= now - self.window:
                events.popleft()
            self._events[network] = events  # most recently seen last
            if len(events) >= self.limit:
                return max(1, math.ceil(events[0] + self.window - now))
            events.append(now)
            while len(self._events) > self._max_networks:
                self._events.popitem(last=False)
            return None


__all__ = ["IPV6_PREFIX", "NetworkRate", "client_network"]
