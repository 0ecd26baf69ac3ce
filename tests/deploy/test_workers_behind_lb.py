"""`serve --workers 2` behind nginx with TLS, as deployed: the workers on local ports, nginx the
one public wss:// address, `launch --public-url` giving bots that address. The whole path is
real: CLI -> (fake) API -> simulated bot -> wss through nginx -> a worker -> echo -> the bot."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import threading
from collections.abc import Callable

import httpx

from benchmarks.load import free_ports, serve_command
from bridge.sim.simulator import SimulatorOptions, simulate
from tests.deploy.balancers import LoadBalancer, self_signed, wait_for
from tests.fake_meetingbaas import FakeMeetingBaas
from tests.meetingbaas.test_launch_cli import launch
from tests.sounds import ALSA

SECRET = "s3cret"


def start_simulated_bot(reports: list) -> Callable[[dict], None]:
    """on_create hook of the fake API: a bot that streams a recording to the URLs it was given
    (listening 1.5 s after its last echo is due: a loaded machine delays, it does not drop)."""

    def on_create(body: dict) -> None:
        config = body["streaming_config"]
        urls = list(dict.fromkeys([config["output_url"], config["input_url"]]))
        opts = SimulatorOptions(sample_rate=16000, lead_in_s=0.3, gap_s=2.5, listen_s=1.5)
        wav = str(ALSA / "Front_Left.wav")
        threading.Thread(
            target=lambda: reports.append(asyncio.run(simulate(urls, [wav], opts))), daemon=True
        ).start()

    return on_create


def sessions_total(port: int) -> float:
    page = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return float(re.search(r"^speakbridge_sessions_total (\S+)$", page, re.M)[1])


def test_launched_bots_reach_the_workers_through_one_tls_address(tmp_path, monkeypatch):
    cert, key = self_signed(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the simulated bots trust the test's CA
    base = free_ports(2)
    log = tmp_path / "workers.log"
    with log.open("w") as stderr:
        workers = subprocess.Popen(
            serve_command(base, 2, "--secret", SECRET, "--trusted-proxies", "127.0.0.1"),
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    nginx = None
    try:
        nginx = LoadBalancer(
            "nginx",
            [f"127.0.0.1:{base}"],
            tmp_path / "lb",
            cert=cert,
            extra=("--workers", "2", f"--key={key}"),
        )
        assert f"server 127.0.0.1:{base + 1} " in nginx.config.read_text()
        wait_for(lambda: all(_healthy(base + i) for i in range(2)), 20, "the workers")
        for split in (True, False):
            reports: list = []
            with FakeMeetingBaas(on_create=start_simulated_bot(reports)) as api:
                flags = ["--public-url", nginx.ws, "--secret", SECRET, "--rate", "16000"]
                process = launch(api, *flags, *(["--split"] if split else []))
                try:
                    wait_for(lambda: reports, 30, "the simulated bot")  # noqa: B023
                finally:
                    process.send_signal(signal.SIGINT)
                    out, err = process.communicate(timeout=20)
                assert process.returncode == 0, err
                (utterance,) = reports[0].utterances
                correlation = utterance.echo_correlation
                assert correlation is not None and correlation > 0.99, log.read_text()
                config = api.requests[0].body["streaming_config"]
                session = re.search(r"^session (\w+)$", out, re.M)[1]
                for url in (config["output_url"], config["input_url"]):
                    assert url.startswith(f"{nginx.ws}/bots/{session}")
        # A split session's echo comes back only if both its sockets reached one worker; and
        # each session was made once, on one worker (two halves would count two).
        assert sum(sessions_total(base + i) for i in range(2)) == 2
    finally:
        if nginx is not None:
            nginx.stop()
        workers.send_signal(signal.SIGINT)
        workers.communicate(timeout=20)


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
