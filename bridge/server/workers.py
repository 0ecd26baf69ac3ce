"""Several bridge processes, one per core: worker i listens on port + i, a local backend port.

The load balancer in front is the one public address; it hashes each session id onto every
worker port of every machine, so both sockets of a session reach the same process. A worker
serves whatever session reaches it: routing is the load balancer's job (docs/deployment.md).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

log = logging.getLogger(__name__)


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
