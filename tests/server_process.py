"""A bridge server in its own process, for tests that measure it or kill it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families


class ServerProcess:
    """`python -m bridge serve` on a free port; use as a context manager."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bridge", "serve", "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.banner = self.process.stdout.readline()
        self.port = int(re.search(r"(?::|port )(\d+) ", self.banner).group(1))
        self.url = f"ws://127.0.0.1:{self.port}"

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def rss_kb(self) -> int:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1))

    def open_fds(self) -> int:
        return len(list(Path(f"/proc/{self.process.pid}/fd").iterdir()))

    def metrics(self) -> dict[str, float]:
        page = httpx.get(f"http://127.0.0.1:{self.port}/metrics", timeout=10).text
        return {
            sample.name: sample.value
            for family in text_string_to_metric_families(page)
            for sample in family.samples
            if not sample.labels
        }
