"""--workers: one process per worker on port + i, each serving whatever session reaches it (a
load balancer in front routes them: tests/deploy/test_workers_behind_lb.py)."""

import asyncio
import signal
import subprocess
import time
import uuid

import httpx
import pytest

from benchmarks.load import children, free_ports, serve_command
from bridge.config import BridgeConfig
from bridge.meetingbaas.launcher import session_urls
from bridge.sim.simulator import SimulatorOptions, simulate
from tests.sounds import ALSA

FRONT_LEFT = str(ALSA / "Front_Left.wav")


def test_launch_urls_are_the_public_url_whatever_the_workers():
    config = BridgeConfig(public_url="wss://bridges.example.com", port=9000, workers=3)
    urls = session_urls(config, split=True)
    assert urls.output_url.startswith(f"wss://bridges.example.com/bots/{urls.session_id}/output")
    assert urls.input_url.startswith(f"wss://bridges.example.com/bots/{urls.session_id}/input")


def test_workers_need_a_fixed_port():
    with pytest.raises(ValueError, match="fixed port"):
        BridgeConfig(port=0, workers=2)


def test_two_workers_serve_split_sessions_each_and_drain_on_sigterm():
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
        reports = asyncio.run(speak_to_both(base, [uuid.uuid4().hex[:12] for _ in range(2)]))
        for report in reports:
            (utterance,) = report.utterances
            assert utterance.echo_correlation is not None and utterance.echo_correlation > 0.99
        for i in range(2):  # each worker had its one session
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
    """Session i on worker i's port, both its sockets there."""
    opts = SimulatorOptions(lead_in_s=0.3, gap_s=2.5, listen_s=0.3)
    return await asyncio.gather(
        *(
            simulate([f"{url}/bots/{s}/output", f"{url}/bots/{s}/input"], [FRONT_LEFT], opts)
            for i, s in enumerate(sessions)
            for url in [f"ws://127.0.0.1:{base + i}"]
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
