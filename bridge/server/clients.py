"""Who a connection comes from, and the caps on what clients may hold open.

ConnectionGate counts connections that have not finished the opening handshake (a slow
client holds one for up to the open timeout) and open connections per client address;
GatedConnection is the server's connection class, reporting to its gate as it goes.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Sequence
from ipaddress import IPv4Network, IPv6Network, ip_address
from typing import Any

from bridge.wire.connection import BotConnection

Network = IPv4Network | IPv6Network
FORWARDED_FOR = "X-Forwarded-For"


def is_trusted(address: str, trusted: Sequence[Network]) -> bool:
    """Whether address lies in one of the trusted proxies' networks."""
    try:
        ip = ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)


def client_address(peer: str, forwarded_for: str | None, trusted: Sequence[Network]) -> str:
    """The client's address: the peer's, unless the peer is a trusted proxy; then the
    rightmost X-Forwarded-For entry that is not itself a trusted proxy (entries to its left
    are whatever the client wrote). A trusted peer without a usable header stays itself."""
    if not forwarded_for or not is_trusted(peer, trusted):
        return peer
    for entry in reversed(forwarded_for.split(",")):
        entry = entry.strip()
        try:
            ip_address(entry)
        except ValueError:
            return peer  # a garbled header: trust none of it
        if not is_trusted(entry, trusted):
            return entry
    return peer


class ConnectionGate:
    """Admits a new connection unless max_pending are in their handshake or its address
    already has max_per_address open; counts what it refuses, by reason."""

    def __init__(self, max_pending: int, max_per_address: int) -> None:
        self.max_pending = max_pending
        self.max_per_address = max_per_address
        self.refused: Counter[str] = Counter()
        self.on_refused: Callable[[str, str], None] | None = None  # (address, reason)
        self._pending: set[object] = set()
        self._address_of: dict[object, str] = {}  # open connections with a counted address
        self._open: Counter[str] = Counter()

    @property
    def pending(self) -> int:
        """Connections whose opening handshake is not over."""
        return len(self._pending)

    def open_from(self, address: str) -> int:
        """Open connections counted against address."""
        return self._open[address]

    def opened(self, key: object, peer: str, counted: bool) -> str | None:
        """A new connection from peer (counted False: a trusted proxy, whose connections
        count once they name their client); returns why it is refused, or None."""
        if len(self._pending) >= self.max_pending:
            return self._refuse(peer, "pending_handshakes")
        if counted and not self.assign(key, peer):
            return "connections_per_address"
        self._pending.add(key)
        return None

    def assign(self, key: object, address: str) -> bool:
        """Count an open connection against address; False (and counted) if it is full."""
        if self._open[address] >= self.max_per_address:
            self._refuse(address, "connections_per_address")
            return False
        self._address_of[key] = address
        self._open[address] += 1
        return True

    def handshake_over(self, key: object) -> None:
        """The connection's opening handshake ended (upgraded or refused)."""
        self._pending.discard(key)

    def closed(self, key: object) -> None:
        """The connection is gone: its slots are free."""
        self._pending.discard(key)
        address = self._address_of.pop(key, None)
        if address is not None:
            self._open[address] -= 1
            if not self._open[address]:
                del self._open[address]

    def _refuse(self, address: str, reason: str) -> str:
        self.refused[reason] += 1
        if self.on_refused is not None:
            self.on_refused(address, reason)
        return reason


class GatedConnection(BotConnection):
    """A BotConnection that its gate admits on connect (else it is dropped at once, before
    any byte is read) and releases when its handshake is over and when it closes."""

    def __init__(
        self, *args: Any, gate: ConnectionGate, trusted: Sequence[Network], **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.gate = gate
        self._trusted = trusted
        self.refused_by_gate: str | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        peer = transport.get_extra_info("peername")
        address = str(peer[0]) if peer else "?"
        counted = not is_trusted(address, self._trusted)
        self.refused_by_gate = self.gate.opened(self, address, counted)
        if self.refused_by_gate is not None:
            transport.abort()

    async def handshake(self, *args: Any, **kwargs: Any) -> None:
        try:
            await super().handshake(*args, **kwargs)
        finally:
            self.gate.handshake_over(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.gate.closed(self)
        super().connection_lost(exc)
