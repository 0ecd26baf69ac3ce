"""`speakbridge launch` and `leave` as a user runs them, against the fake API on loopback.

The fake API starts a simulated bot on whatever streaming URLs it is given, so the whole
path is real: CLI -> API -> bot -> signed URLs -> bridge -> responder -> bot.
"""

import asyncio
import signal
import socket
import subprocess
import sys
import threading
import time

import httpx
import pytest

from bridge.sim.simulator import SimulatorOptions, simulate
from tests.fake_meetingbaas import API_KEY, SVIX_SECRET, FakeMeetingBaas, deliver, status_change
from tests.sounds import ALSA

MEETING = "https://meet.google.com/abc-defg-hij"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_simulated_bot(reports: list) -> callable:
    """on_create hook: the bot joins and streams a recording to the URLs it was given."""

    def on_create(body: dict) -> None:
        config = body.get("streaming_config") or body["streaming"]
        output = config.get("output_url") or config["output"]
        playback = config.get("input_url") or config["input"]
        rate = config["audio_frequency"]
        rate = rate if isinstance(rate, int) else int(rate[:2]) * 1000
        urls = [output] if output == playback else [output, playback]
        opts = SimulatorOptions(sample_rate=rate, lead_in_s=0.3, gap_s=2.5, listen_s=0.3)
        wav = str(ALSA / "Front_Left.wav")
        threading.Thread(
            target=lambda: reports.append(asyncio.run(simulate(urls, [wav], opts))), daemon=True
        ).start()

    return on_create


def launch(api: FakeMeetingBaas, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bridge",
            "launch",
            MEETING,
            "--api-base-url",
            api.url,
            "--api-key",
            API_KEY,
            *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.mark.parametrize("split", [False, True], ids=["one-socket", "split"])
def test_launch_serve_speaks_and_ctrl_c_removes_the_bot(split):
    reports: list = []
    port = free_port()
    with FakeMeetingBaas(on_create=start_simulated_bot(reports)) as api:
        process = launch(
            api,
            "--serve",
            "--port",
            str(port),
            "--public-url",
            f"ws://127.0.0.1:{port}",
            "--secret",
            "s3cret",
            "--rate",
            "16000",
            *(["--split"] if split else []),
        )
        try:
            wait_for(lambda: reports)
        finally:
            process.send_signal(signal.SIGINT)
            out, err = process.communicate(timeout=20)
        assert process.returncode == 0, err
        (utterance,) = reports[0].utterances
        assert utterance.echo_correlation is not None and utterance.echo_correlation > 0.99
        create, leave = api.requests
        assert (create.method, create.path) == ("POST", "/v2/bots")
        config = create.body["streaming_config"]
        assert config["audio_frequency"] == 16000 and "token=" in config["output_url"]
        assert (config["output_url"] != config["input_url"]) == split
        assert (leave.method, leave.path) == ("POST", "/v2/bots/bot-1/leave")
        assert "bot bot-1 is joining" in out and "removing bot bot-1" in out
        assert "s3cret" not in out + err and API_KEY not in out + err


def test_launch_v1_leaves_after_a_while():
    with FakeMeetingBaas() as api:
        process = launch(
            api,
            "--api-version",
            "v1",
            "--public-url",
            "wss://bridge.example",
            "--leave-after",
            "0.3",
        )
        _, err = process.communicate(timeout=20)
        assert process.returncode == 0, err
        assert [(r.method, r.path) for r in api.requests] == [
            ("POST", "/bots"),
            ("DELETE", "/bots/bot-1"),
        ]
        streaming = api.requests[0].body["streaming"]
        assert streaming["input"] == streaming["output"]
        assert streaming["output"].startswith("wss://bridge.example/bots/")
        assert streaming["audio_frequency"] == "24khz"


def test_launch_errors_are_one_line():
    with FakeMeetingBaas() as api:
        process = launch(api, "--public-url", "wss://b.example", "--api-key", "wrong")
        _, err = process.communicate(timeout=20)
        assert process.returncode == 1
        assert err.strip() == (
            "speakbridge: Meeting BaaS API: POST /v2/bots -> 401: Invalid API "
            "key (check --api-key or MEETING_BAAS_API_KEY)"
        )
        process = launch(api)
        _, err = process.communicate(timeout=20)
        assert process.returncode == 2 and "--public-url is needed" in err


@pytest.mark.parametrize(
    ("version", "request_line"),
    [("v1", ("DELETE", "/bots/bot-7")), ("v2", ("POST", "/v2/bots/bot-7/leave"))],
)
def test_leave(version, request_line):
    with FakeMeetingBaas() as api:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "bridge",
                "leave",
                "bot-7",
                "--api-version",
                version,
                "--api-base-url",
                api.url,
            ],
            capture_output=True,
            text=True,
            timeout=20,
            env={"MEETING_BAAS_API_KEY": API_KEY},
        )
        assert done.returncode == 0, done.stderr
        assert [(r.method, r.path) for r in api.requests] == [request_line]


def test_launch_serve_ends_when_the_call_ends_and_leaves_the_bot_alone():
    reports: list = []
    port = free_port()
    with FakeMeetingBaas(on_create=start_simulated_bot(reports)) as api:
        process = launch(
            api, "--serve", "--port", str(port), "--public-url", f"ws://127.0.0.1:{port}",
            "--webhook-svix-secret", SVIX_SECRET,
        )  # fmt: skip
        try:
            sessions = f"http://127.0.0.1:{port}/sessions"
            wait_for(lambda: _listed(sessions))
            hook = f"http://127.0.0.1:{port}/webhooks/meetingbaas"
            assert deliver(hook, status_change("bot-1", "call_ended")).status_code == 200
            out, err = process.communicate(timeout=20)
        finally:
            if process.poll() is None:
                process.kill()
        assert process.returncode == 0, err
        assert "bot bot-1 has left (Meeting BaaS: call_ended)" in out
        assert [(r.method, r.path) for r in api.requests] == [("POST", "/v2/bots")]  # no leave
        assert "add http://127.0.0.1" in out and "--webhook-svix-secret" in out  # the note


def _listed(url: str) -> bool:
    try:
        return bool(httpx.get(url, timeout=2).json())
    except httpx.HTTPError:
        return False
