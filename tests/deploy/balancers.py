"""Real programs for the deployment tests: bridge processes, and (from benchmarks.balancers)
HAProxy and nginx in front of them, configured by `speakbridge lb-config`."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from benchmarks.balancers import LoadBalancer, free_port, self_signed, wait_for

BRIDGE = [sys.executable, "-m", "bridge"]
__all__ = ["Bridge", "LoadBalancer", "free_port", "placement", "self_signed", "spread", "wait_for"]


def get(url: str, **kw: Any) -> httpx.Response | None:
    try:
        return httpx.get(url, timeout=5, **kw)
    except httpx.HTTPError:
        return None


class Bridge:
    """`speakbridge serve` on host, at the --port its args give (0: any free); logs to a file."""

    def __init__(self, log_dir: Path, name: str, *args: str, host: str = "127.0.0.1") -> None:
        self.name = name
        self.log = log_dir / f"{name}.log"
        with self.log.open("w") as log:
            self.process = subprocess.Popen(
                [*BRIDGE, "serve", "--host", host, "--log-level", "warning", *args],
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
            )
        banner = self.process.stdout.readline()  # type: ignore[union-attr]
        found = re.search(r"ws://([\d.]+):(\d+)", banner)
        assert found, f"{name} did not start: {banner!r} {self.log.read_text()}"
        self.address = f"{found[1]}:{found[2]}"

    def health(self) -> int | None:
        response = get(f"http://{self.address}/healthz")
        return response.status_code if response else None

    def sessions(self) -> dict[str, dict[str, Any]]:
        """The bridge's own /sessions, by session id."""
        response = get(f"http://{self.address}/sessions")
        assert response is not None and response.status_code == 200, self.log.read_text()
        return {entry["session"]: entry for entry in response.json()}

    def signal(self, sig: signal.Signals) -> None:
        self.process.send_signal(sig)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)


def placement(bridges: list[Bridge]) -> dict[str, tuple[int, int]]:
    """Every live session: (index of the bridge that lists it, its sockets there). Fails if a
    session is listed on two bridges."""
    found: dict[str, tuple[int, int]] = {}
    for i, bridge in enumerate(bridges):
        if bridge.process.poll() is not None:
            continue
        for session, entry in bridge.sessions().items():
            assert session not in found, f"session {session} on two bridges"
            found[session] = (i, entry["sockets"])
    return found


def spread(placed: dict[str, tuple[int, int]], sessions: list[str]) -> Counter[int]:
    return Counter(placed[s][0] for s in sessions)


def hello(bot_id: str, rate: int) -> str:
    return json.dumps({"protocol_version": 2, "bot_id": bot_id, "offset": 0.0, "sample_rate": rate})
