"""The command line as a user runs it: real processes, real signals."""

import re
import signal
import subprocess
import sys

import pytest

from tests.sounds import ALSA


def speakbridge(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "bridge", *args],
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **kw,
    )


def test_serve_simulate_and_stop_on_sigterm():
    server = speakbridge("serve", "--port", "0", "--grace-s", "0.2")
    banner = server.stdout.readline()
    port = re.search(r"ws://127\.0\.0\.1:(\d+)", banner).group(1)
    lines = [server.stdout.readline() for _ in range(4)]
    assert any("/bots/{session_id}/output" in line for line in lines)
    sim = subprocess.run(
        [
            sys.executable,
            "-m",
            "bridge",
            "simulate",
            f"ws://127.0.0.1:{port}/bots/cli",
            "--wav",
            str(ALSA / "Front_Left.wav"),
            "--rate",
            "16000",
            "--gap-s",
            "2.5",
            "--listen-s",
            "0.2",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert sim.returncode == 0, sim.stderr
    assert re.search(r"Front_Left: 1\.48 s spoken; reply \d+ ms", sim.stdout)
    server.send_signal(signal.SIGTERM)
    _, err = server.communicate(timeout=10)
    assert server.returncode == 0
    assert re.search(r"session cli ended .* 16000 Hz, in the call, audio in .* 1 speech segm", err)


def test_environment_sets_flags():
    server = speakbridge(
        "serve", "--port", "0", env={"SPEAKBRIDGE_RATE": "16000", "PATH": "/usr/bin:/bin"}
    )
    assert "default rate 16000 Hz" in server.stdout.readline()
    server.send_signal(signal.SIGINT)
    assert server.wait(timeout=10) == 0


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bridge", *args], capture_output=True, text=True, timeout=30
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--lead-ms", "-5"), "--lead-ms: Input should be greater than 0"),
        (
            ("--responder", "echo", "-o", "mode=loud"),
            "bad options for responder EchoResponder: mode",
        ),
        (("--responder", "nope"), "no responder named 'nope'"),
        (("--resample-quality", "best"), "--resample-quality: Input should be"),
        (("--prefetch-s", "5"), "prefetch_s must be below playback_buffer_s"),
        (("--workers", "2", "--port", "0"), "workers need a fixed port"),
        (("--workers", "2", "--public-url", "wss://b.example.com"), "needs an explicit port"),
    ],
)
def test_clear_errors_for_bad_settings(args, message):
    bad = run_cli("serve", *args)
    assert bad.returncode == 2 and message in bad.stderr


def test_responders_lists_echo():
    out = run_cli("responders")
    assert "echo" in out.stdout.split()


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_serve_on_either_event_loop(loop):
    server = speakbridge("serve", "--port", "0", "--grace-s", "0.2", "--event-loop", loop)
    port = re.search(r"ws://127\.0\.0\.1:(\d+)", server.stdout.readline()).group(1)
    sim = run_cli(
        "simulate",
        f"ws://127.0.0.1:{port}/bots/{loop}",
        "--wav",
        str(ALSA / "Front_Left.wav"),
        "--gap-s",
        "2.5",
        "--listen-s",
        "0.2",
    )
    server.send_signal(signal.SIGINT)
    server.communicate(timeout=10)
    assert sim.returncode == 0 and "correlation 1.000" in sim.stdout
    assert server.returncode == 0
