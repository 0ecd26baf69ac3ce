"""No client floods the log: refusals summed per address, lines cut and escaped, and one
warning when file descriptors run out. Each against a real server process's stderr."""

import asyncio
import json
import re
import resource
import socket
import subprocess
import sys
import time

import httpx
from websockets.asyncio.client import connect

from tests.server_process import ServerProcess


def stderr_of(server: ServerProcess) -> str:
    server.process.terminate()
    _, err = server.process.communicate(timeout=30)
    return err


def test_refusals_from_one_address_are_logged_once_then_summed():
    with ServerProcess("--refusal-log-window-s", "120") as server:
        with httpx.Client() as http:
            for n in range(300):  # 8 KB paths, as fast as one client can send them
                assert (
                    http.get(f"http://127.0.0.1:{server.port}/{n}{'x' * 8000}").status_code == 404
                )
        assert http_ok(server.port)  # the prober is not locked out: 404 is no failed login
        log = stderr_of(server)  # its window is still open: the summary comes at shutdown
    refusals = [line for line in log.splitlines() if "refused" in line]
    assert len(refusals) == 2, refusals
    assert "404" in refusals[0] and len(refusals[0]) < 600  # the path cut to its start
    assert re.search(r"refused 299 more from 127\.0\.0\.1 within 120 s of the first", refusals[1])
    assert len(log) < 3000


def http_ok(port: int) -> bool:
    return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code == 200


def test_a_clients_control_characters_and_long_values_are_escaped_and_cut():
    forged = "\x1b[2J\r\n2026-01-01 00:00:00,000 ERROR bridge: forged line" + "y" * 10_000

    async def hello() -> None:
        async with connect(f"{server.url}/bots/esc") as ws:
            await ws.send(json.dumps({"protocol_version": 1, "bot_id": forged}))
            await asyncio.sleep(0.3)

    with ServerProcess("--grace-s", "0") as server:
        asyncio.run(hello())
        log = stderr_of(server)
    (said_hello,) = [line for line in log.splitlines() if "session esc: bot " in line]
    assert "\x1b" not in log and "\r" not in log
    assert "\\x1b[2J\\x0d\\x0a2026-01-01" in said_hello  # escaped, on its own line
    assert not any(line.startswith("2026-01-01 00:00:00,000 ERROR") for line in log.splitlines())
    assert len(said_hello) < 2200 and "more characters)" in said_hello


def test_out_of_file_descriptors_is_one_warning_not_a_traceback_flood():
    def few_files() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (48, 48))

    process = subprocess.Popen(
        [sys.executable, "-m", "bridge", "serve", "--port", "0", "--event-loop", "asyncio"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=few_files,
    )
    try:
        port = int(re.search(r":(\d+) ", process.stdout.readline()).group(1))
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(80)]
        time.sleep(3)  # asyncio retries the accepts every second
        for client in clients:
            client.close()
        time.sleep(1.5)
        assert http_ok(port)  # files again: it accepts again
    finally:
        process.terminate()
        _, log = process.communicate(timeout=30)
    assert log.count("cannot accept connections: [Errno 24] Too many open files") == 1
    assert "Traceback" not in log and len(log.splitlines()) < 10, log[:2000]
