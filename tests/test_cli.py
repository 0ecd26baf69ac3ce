"""The command line as a user runs it: real processes, real signals."""

import os
import re
import signal
import subprocess
import sys
from importlib.metadata import requires

import httpx
import pytest

from tests.server_process import ServerProcess
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
    # "Front, Left": the VAD hears the pause between the words, the turn policy one turn
    summary = (
        r"session cli ended .* 16000 Hz, in the call, audio in .* 2 speech segments, "
        r"1 turn \(0 continued\), 0 barge"
    )
    assert re.search(summary, err)


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
            "bad options for responder 'echo': mode: Input should be 'utterance' or 'live'; "
            "it takes mode, preroll_ms, ",
        ),
        (
            ("--responder", "recorder", "-o", "nosuch=1"),
            "responder 'recorder' has no option 'nosuch'; it takes dir",
        ),
        (
            ("--responder", "echo", "--responder", "recorder", "-o", "recorder.dri=/tmp"),
            "responder 'recorder' has no option 'dri'; it takes dir",
        ),
        (("--responder", "nope"), "no responder named 'nope'"),
        (("--resample-quality", "best"), "--resample-quality: Input should be"),
        (("--prefetch-s", "5"), "prefetch_s must be below playback_buffer_s"),
        (("--workers", "2", "--port", "0"), "workers need a fixed port"),
    ],
)
def test_clear_errors_for_bad_settings(args, message):
    bad = run_cli("serve", *args)
    assert bad.returncode == 2 and message in bad.stderr
    assert "Traceback" not in bad.stderr


LOOSE_RESPONDER = """
import numpy as np
from pydantic import BaseModel

from bridge.responder import Responder


class LooseOptions(BaseModel):  # no extra="forbid": the registry refuses unknown keys anyway
    freq: float = 880.0


class Loose(Responder):
    Options = LooseOptions
"""


def test_unknown_options_refused_for_a_users_responder_too(tmp_path):
    (tmp_path / "loose.py").write_text(LOOSE_RESPONDER)
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.getcwd()}"}
    bad = subprocess.run(
        [sys.executable, "-m", "bridge", "serve", "--responder", "loose:Loose", "-o", "frq=440"],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
    )
    assert bad.returncode == 2
    assert bad.stderr == (
        "speakbridge: error: responder 'loose:Loose' has no option 'frq'; it takes freq\n"
    )


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("SPEAKBRIDGE_PORT", "abc", "SPEAKBRIDGE_PORT='abc': Input should be a valid integer"),
        ("SPEAKBRIDGE_PORT", "70000", "SPEAKBRIDGE_PORT='70000': Input should be less than or"),
        ("SPEAKBRIDGE_LOG_LEVEL", "verbose", "SPEAKBRIDGE_LOG_LEVEL='verbose': should be one of"),
        ("SPEAKBRIDGE_LOG_FORMAT", "xml", "SPEAKBRIDGE_LOG_FORMAT='xml': should be one of text"),
        ("SPEAKBRIDGE_RATE", "8000", "SPEAKBRIDGE_RATE='8000': Input should be 16000"),
        ("SPEAKBRIDGE_BARGE_IN", "maybe", "SPEAKBRIDGE_BARGE_IN='maybe': Input should be a valid"),
        ("SPEAKBRIDGE_WORKERS", "two", "SPEAKBRIDGE_WORKERS='two': Input should be a valid int"),
        ("SPEAKBRIDGE_URL", "http://x", "SPEAKBRIDGE_URL='http://x': should be a ws:// or wss://"),
        (
            "SPEAKBRIDGE_RESPONDER",
            "echo,ecko",
            "SPEAKBRIDGE_RESPONDER='echo,ecko': no responder named ecko; installed: agent, echo",
        ),
    ],
)
@pytest.mark.parametrize("command", [("serve", "--help"), ("serve",), ("say", "s", "hi")])
def test_a_bad_environment_value_is_one_line_whatever_the_command(
    variable, value, message, command
):
    bad = subprocess.run(
        [sys.executable, "-m", "bridge", *command],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, variable: value},
    )
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.startswith(f"speakbridge: error: {message}")
    assert bad.stderr.count("\n") == 1


def test_good_environment_values_reach_the_server():
    env = {**os.environ, "SPEAKBRIDGE_RATE": "16000", "SPEAKBRIDGE_BARGE_IN": "off"}
    with ServerProcess(env=env) as server:
        assert "default rate 16000 Hz" in server.banner


def test_speakbridge_alone_lists_its_commands():
    alone = run_cli()
    assert alone.returncode == 2
    listed = re.findall(r"^    (\w+)", alone.stdout, re.M)
    assert {"serve", "simulate", "launch", "leave", "say", "events", "responders"} <= set(listed)


def test_internal_flags_are_hidden_from_help():
    helptext = run_cli("serve", "--help").stdout
    assert "--workers" in helptext and "--lead-ms" in helptext
    assert not re.search(r"--worker\b(?!s)", helptext)


def test_the_banner_asks_for_a_public_url_on_a_wildcard_address():
    with ServerProcess("--host", "0.0.0.0", "--allow-unsigned") as server:  # open on purpose
        assert server.banner.startswith("speakbridge listening on every address, port ")
        hint = server.process.stdout.readline()
        assert "--public-url wss://HOST" in hint and "docs/deployment.md" in hint
        urls = server.process.stdout.readline()
        assert "0.0.0.0" not in urls and "wss://HOST/bots/{session_id}" in urls
    public = speakbridge("serve", "--port", "0", "--public-url", "wss://bridge.example.com")
    banner = public.stdout.readline()
    public.send_signal(signal.SIGTERM)
    public.communicate(timeout=10)
    assert banner.startswith("speakbridge listening on wss://bridge.example.com ")


def test_metrics_work_on_a_plain_install():
    # prometheus-client and uvloop are core dependencies, not extras
    core = [r for r in requires("speakbridge") if "extra ==" not in r]
    assert any(r.startswith("prometheus-client") for r in core)
    assert any(r.startswith("uvloop") and 'sys_platform != "win32"' in r for r in core)
    with ServerProcess() as server:
        page = httpx.get(f"http://127.0.0.1:{server.port}/metrics", timeout=10)
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/plain")
        assert server.metrics()["speakbridge_sessions_active"] == 0


def test_sigterm_with_only_idle_sessions_exits_at_once():
    # the session outlives its socket by a minute; draining has no bot to wait for
    server = speakbridge("serve", "--port", "0", "--grace-s", "60", "--drain-timeout-s", "60")
    port = re.search(r"ws://127\.0\.0\.1:(\d+)", server.stdout.readline()).group(1)
    sim = run_cli(
        "simulate",
        f"ws://127.0.0.1:{port}/bots/idle",
        "--wav",
        str(ALSA / "Front_Left.wav"),
        "--gap-s",
        "0.5",
        "--listen-s",
        "0",
    )
    assert sim.returncode == 0, sim.stderr
    server.send_signal(signal.SIGTERM)
    _, err = server.communicate(timeout=15)  # well inside the grace and the drain timeout
    assert server.returncode == 0
    assert "draining: 1 session may finish within 60 s" in err
    assert "session idle ended (server draining)" in err


def test_a_refused_connection_names_its_url():
    sim = run_cli(
        "simulate", "ws://127.0.0.1:9/bots/nobody?token=secret", "--wav", str(ALSA / "Noise.wav")
    )
    assert sim.returncode == 2
    assert sim.stderr.startswith(
        "speakbridge: error: cannot connect to ws://127.0.0.1:9/bots/nobody?token=...: "
    )
    assert "secret" not in sim.stderr and "Traceback" not in sim.stderr


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
