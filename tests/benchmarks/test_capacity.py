"""The capacity benchmark: its summary of ramps, and a real (tiny) run against the server
through the load generator's raw client."""

import json
import subprocess
import sys
from pathlib import Path

import httpx

from benchmarks.capacity import summary_row, table
from benchmarks.load import unresponsive

ROOT = Path(__file__).resolve().parents[2]


def ramp(*steps: tuple[int, bool, float], others: float = 0.0, failing: str = "") -> dict:
    made = [
        {"sessions": n, "sustained": ok, "server_cpu_core_share": cpu}
        | {"others_on_server_core_share": others}
        | ({failing: 3} if not ok else {})
        for n, ok, cpu in steps
    ]
    return {
        "steps": made,
        "max_sustained_sessions": max([s["sessions"] for s in made if s["sustained"]], default=0),
    }


def test_the_summary_names_the_largest_sustained_step_its_cpu_and_where_it_failed():
    servers = {
        "speakbridge": ramp(
            (100, True, 0.2), (200, True, 0.45), (400, False, 0.93), failing="underruns"
        ),
        "pipecat": ramp((25, True, 0.6), (50, False, 0.95), others=0.31, failing="late_ticks"),
    }
    row = summary_row("100 ms", servers)
    assert row == {
        "framing": "100 ms",
        "speakbridge_sustained": 200,
        "speakbridge_cpu": 0.45,
        "speakbridge_failed_at": 400,
        "speakbridge_failed_by": ["underruns", "CPU"],
        "pipecat_sustained": 25,
        "pipecat_cpu": 0.6,
        "pipecat_failed_at": 50,
        "pipecat_failed_by": ["late ticks", "CPU"],
        "others_on_server_core_max": 0.31,
        "ratio": 8.0,
    }
    never = summary_row("10 ms", {"speakbridge": ramp((25, False, 0.5), failing="dropped")})
    assert never["speakbridge_failed_by"] == ["dropped"]
    assert table([row, never]).splitlines() == [
        "| framing | speakbridge sustained | CPU | 60 ms prebuffer | CPU | pipecat sustained |",
        "|---|---|---|---|---|---|",
        "| 100 ms | 200 (fails at 400: underruns, CPU) | 45 % | - | - "
        "| 25 (fails at 50: late ticks, CPU) |",
        "| 10 ms | 0 (fails at 25: dropped) | - | - | - | not run |",
    ]


def test_the_ratio_to_pipecat_takes_the_better_of_speakbridges_two_ramps():
    servers = {
        "speakbridge": ramp((100, True, 0.5), (200, False, 0.95), failing="underruns"),
        "speakbridge_paired": ramp((100, True, 0.4), (200, True, 0.8)),
        "pipecat": ramp((10, True, 0.5), (25, False, 0.95), failing="underruns"),
    }
    row = summary_row("20 ms", servers)
    assert (row["speakbridge_sustained"], row["speakbridge_paired_sustained"]) == (100, 200)
    assert row["ratio"] == 20.0
    assert table([row]).splitlines()[2] == (
        "| 20 ms | 100 (fails at 200: underruns, CPU) | 50 % | 200 | 80 % "
        "| 10 (fails at 25: underruns, CPU) |"
    )


def run_capacity(tmp_path: Path, framing: str, duration: float) -> tuple[dict, str]:
    """A real capacity run of one framing, 3 sessions, no peer: its result and stdout."""
    out = tmp_path / "capacity.json"
    command = [sys.executable, "-m", "benchmarks.capacity", "--framing", framing, "--no-peer"]
    command += ["--generator-check", "0", "--speakbridge-ramp", "3"]
    command += ["--duration", str(duration), "--warmup", "1", "--out", str(out)]
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    return json.loads(out.read_text()), run.stdout


def test_a_real_run_ramps_the_server_with_v2_bots_and_writes_the_summary(tmp_path):
    result, stdout = run_capacity(tmp_path, "100 ms", 2)
    framing = result["framings"]["100 ms"]
    assert framing["bot"] == "v2"
    (step,) = framing["servers"]["speakbridge"]["steps"]
    assert step["sessions"] == 3
    assert step["connections_lost"] == 0 and step["chunks_unsent"] == 0
    assert step["frames_measured"] > 0  # the server timed the echoes of our frames
    assert step["round_trip_ms"] is not None  # the bots heard them and matched them to sends
    row = result["summary"][0]
    assert row["speakbridge_sustained"] == (3 if step["sustained"] else 0)
    assert "speakbridge_paired" not in framing["servers"]  # 100 ms chunks go whole already
    assert result["table"] in stdout


def test_at_20_ms_speakbridge_also_ramps_at_a_60_ms_prebuffer_and_pairs_its_frames(tmp_path):
    servers = run_capacity(tmp_path, "20 ms", 3)[0]["framings"]["20 ms"]["servers"]
    assert servers["speakbridge"]["prebuffer_ms"] == 0.0
    assert servers["speakbridge_paired"]["prebuffer_ms"] == 60.0
    (plain,), (paired,) = servers["speakbridge"]["steps"], servers["speakbridge_paired"]["steps"]
    assert paired["frames_measured"] > 0 and plain["frames_measured"] > 0
    # the bot's player holds about the 60 ms more the server sent ahead
    assert paired["player_lead_ms"]["p50"] > plain["player_lead_ms"]["p50"] + 30


def test_a_step_the_server_did_not_answer_ends_the_ramp_as_its_failure():
    swamped = unresponsive("speakbridge", 2500, httpx.ReadTimeout("timed out"))
    assert swamped == {
        "sessions": 2500,
        "server": "speakbridge",
        "sustained": False,
        "passed": False,
        "failure": "the server did not answer /metrics: ReadTimeout",
    }
    servers = {"speakbridge": ramp((2000, True, 0.7))}
    servers["speakbridge"]["steps"].append(swamped)
    row = summary_row("100 ms", servers)
    assert row["speakbridge_sustained"] == 2000
    assert row["speakbridge_failed_at"] == 2500
    assert row["speakbridge_failed_by"] == ["the server did not answer /metrics: ReadTimeout"]
