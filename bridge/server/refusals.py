"""Refused handshakes, logged without flooding: an address's first refusal in a window is
logged in full, the rest are counted and summed up in one line when the window ends."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass


@dataclass
class _Window:
    opened: float
    suppressed: int = 0


class RefusalLog:
    """Decides which refusals are logged; remembers at most max_addresses addresses (the
    counts of those it forgets go into the next summary as "other addresses")."""

    def __init__(self, window_s: float, max_addresses: int = 10_000) -> None:
        self.window_s = window_s
        self.max_addresses = max_addresses
        self._windows: OrderedDict[str, _Window] = OrderedDict()
        self._forgotten = 0  # suppressed refusals of addresses pushed out of memory

    def refused(self, address: str, now: float) -> bool:
        """Note a refusal from address at now; True if it is the one to log in full."""
        window = self._windows.get(address)
        if window is not None and now - window.opened < self.window_s:
            window.suppressed += 1
            return False
        self._windows.pop(address, None)
        self._windows[address] = _Window(now)
        while len(self._windows) > self.max_addresses:
            _, oldest = self._windows.popitem(last=False)
            self._forgotten += oldest.suppressed
        return True

    def summaries(self, now: float) -> list[tuple[str, int]]:
        """(address, refusals not logged) of every window over by now, which it forgets;
        address "other addresses" sums those forgotten to bound memory."""
        over = [a for a, w in self._windows.items() if now - w.opened >= self.window_s]
        lines = [(a, self._windows.pop(a).suppressed) for a in over]
        if self._forgotten:
            lines.append(("other addresses", self._forgotten))
            self._forgotten = 0
        return [(address, n) for address, n in lines if n]
