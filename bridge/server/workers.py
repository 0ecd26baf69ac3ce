"""Several bridge processes, one per core: worker i listens on port + i, and a session lives
on the worker its id hashes to, so both sockets of a split session reach the same process.

The URLs a bot is given name its session's worker (`speakbridge launch` does this); a
worker refuses sessions that belong to another (421, naming the right port).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import zlib
from urllib.parse import urlsplit, urlunsplit

log = logging.getLogger(__name__)


def worker_of(session_id: str, workers: int) -> int:
    """The index (0 to workers - 1) of the worker that serves a session: a stable hash."""
    return zlib.crc32(session_id.encode()) % workers


def worker_url(base_url: str, session_id: str, workers: int) -> str:
    """base_url (ws[s]://host:port) moved to the port of the session's worker."""
    return base_url if workers == 1 else port_offset(base_url, worker_of(session_id, workers))


def port_offset(base_url: str, offset: int) -> str:
    """base_url with its port moved up by offset; the port must be explicit."""
    parts = urlsplit(base_url)
    if parts.port is None:
        raise ValueError(
            f"with --workers, the URL needs an explicit port (worker i is on port + i): {base_url}"
        )
    host = parts.netloc.rsplit(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{host}:{parts.port + offset}"))


async def supervise(argv: list[str], workers: int) -> int:
    """Run `speakbridge serve` once per worker (argv plus --worker i), pass SIGINT/SIGTERM on
    (a second one too: workers end at once), and wait; one worker dying stops them all."""
    children = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bridge", *argv, "--worker", str(i)
        )
        for i in range(workers)
    ]
    loop = asyncio.get_running_loop()
    stopping = failed = False

    def forward(sig: signal.Signals) -> None:
        nonlocal stopping
        stopping = True
        for child in children:
            if child.returncode is None:
                child.send_signal(sig)

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, forward, sig)
    waits = {asyncio.ensure_future(child.wait()): i for i, child in enumerate(children)}
    pending = set(waits)
    while pending:
        done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        if not stopping:
            failed = True
            for task in done:
                log.error("worker %d exited (%s); stopping the others", waits[task], task.result())
            forward(signal.SIGTERM)
    return 1 if failed else max(child.returncode or 0 for child in children)
