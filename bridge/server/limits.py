"""Rate limiting of failed handshakes per client address, in bounded memory."""

from __future__ import annotations

from collections import OrderedDict, deque
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network


class FailureLimiter:
    """Blocks an address once it has failed `limit` handshakes within `window_s` seconds.

    Remembers at most `max_addresses` addresses; the least recently seen are forgotten first.
    """

    def __init__(self, limit: int, window_s: float, max_addresses: int = 10_000) -> None:
        self.limit = limit
        self.window_s = window_s
        self.max_addresses = max_addresses
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self.refused = 0  # handshakes refused because their address was blocked

    def blocked(self, address: str, now: float) -> bool:
        """Whether address is over its limit at clock time now."""
        times = self._failures.get(address)
        return times is not None and len(times) == self.limit and now - times[0] < self.window_s

    def record_failure(self, address: str, now: float) -> None:
        """Count one failed handshake of address."""
        times = self._failures.pop(address, None) or deque(maxlen=self.limit)
        times.append(now)
        self._failures[address] = times
        while len(self._failures) > self.max_addresses:
            self._failures.popitem(last=False)


Networks = tuple[IPv4Network | IPv6Network, ...]


def parse_networks(spec: str) -> Networks:
    """Comma-separated addresses or CIDR networks ("10.0.0.5, 10.1.0.0/16"); ValueError if bad."""
    return tuple(ip_network(part.strip(), strict=False) for part in spec.split(",") if part.strip())


def client_address(peer: str, forwarded_for: str | None, proxies: Networks) -> str:
    """The client's address: peer, or behind trusted proxies the last X-Forwarded-For entry that
    is not one of them (each proxy appends the address it saw; entries before it are hearsay)."""
    if not proxies or forwarded_for is None or not _trusted(peer, proxies):
        return peer
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, proxies):
            return hop
    return hops[0] if hops else peer


def _trusted(address: str, proxies: Networks) -> bool:
    try:
        ip = ip_address(address)
    except ValueError:
        return False  # not an address (a name, garbage): never a trusted proxy
    return any(ip in network for network in proxies)
