"""--workers: one process per worker on port + i; a session's sockets reach its own worker."""

import asyncio
import signal
import subprocess
import time
import uuid
from collections import Counter

import httpx
import pytest

from benchmarks.load import children, free_ports, serve_command
from bridge.config import BridgeConfig
from bridge.meetingbaas.launcher import session_urls
from bridge.server.workers import worker_of, worker_url
from bridge.sim.simulator import SimulatorOptions, simulate
from tests.sounds import ALSA

FRONT_LEFT = str(ALSA / "Front_Left.wav")


def session_on(worker: int, workers: int) -> str:
    while worker_of(session := uuid.uuid4().hex[:12], workers) != worker:
        pass
    return session


def test_sessions_spread_over_workers_and_urls_name_the_worker_port():
    counts = Counter(worker_of(uuid.uuid4().hex, 4) for _ in range(4000))
    assert sorted(counts) == [0, 1, 2, 3] and min(counts.values()) > 850
    session = session_on(2, 4)
    assert worker_url("wss://bridge.example.com:9000", session, 4) == (
        "wss://bridge.example.com:9002"
    )
    assert worker_url("wss://bridge.example.com", session, 1) == "wss://bridge.example.com"
    with pytest.raises(ValueError, match="explicit port"):
        worker_url("wss://bridge.example.com", session, 4)


def test_launch_urls_go_to_the_sessions_worker():
    config = BridgeConfig(public_url="ws://10.0.0.5:9000", port=9000, workers=3)
    urls = session_urls(config, split=True)
    port = 9000 + worker_of(urls.session_id, 3)
    assert urls.output_url.startswith(f"ws://10.0.0.5:{port}/bots/{urls.session_id}/output")
    assert urls.input_url.startswith(f"ws://10.0.0.5:{port}/bots/{urls.session_id}/input")


def test_workers_need_a_fixed_port():
    with pytest.raises(ValueError, match="fixed port"):
        BridgeConfig(port=0, workers=2)


def test_two_workers_serve_split_sessions_refuse_misrouted_ones_and_drain_on_sigterm():
    base = free_ports(2)
    supervisor = subprocess.Popen(
        serve_command(base, 2),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while not all(healthy(base + i) for i in range(2)):
            assert time.monotonic() < deadline and supervisor.poll() is None
            time.sleep(0.1)
        sessions = [session_on(0, 2), session_on(1, 2)]
        reports = asyncio.run(speak_to_both(base, sessions))
        for report in reports:
            (utterance,) = report.utterances
            assert utterance.echo_correlation is not None and utterance.echo_correlation > 0.99
        misrouted = httpx.get(f"http://127.0.0.1:{base}/bots/{sessions[1]}")
        assert misrouted.status_code == 421 and f"port {base + 1}" in misrouted.text
        for i in range(2):  # each worker had its one session, and refused the misrouted one
            page = httpx.get(f"http://127.0.0.1:{base + i}/metrics").text
            assert "speakbridge_sessions_total 1.0" in page
        workers = children(supervisor.pid)
        assert len(workers) == 2
        supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(30) == 0
        assert not any(alive(pid) for pid in workers)
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
            supervisor.wait()


async def speak_to_both(base: int, sessions: list[str]) -> list:
    opts = SimulatorOptions(lead_in_s=0.3, gap_s=2.5, listen_s=0.3)
    return await asyncio.gather(
        *(
            simulate([f"{url}/bots/{s}/output", f"{url}/bots/{s}/input"], [FRONT_LEFT], opts)
            for s in sessions
            for url in [worker_url(f"ws://127.0.0.1:{base}", s, 2)]
        )
    )


def healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_control_commands_reach_the_sessions_worker():
    from bridge import cli

    session = session_on(1, 2)
    args = cli._parser().parse_args(["events", session, "--url", "ws://h:9000", "--workers", "2"])
    assert cli._control_url(args) == f"ws://h:9001/control/{session}"
