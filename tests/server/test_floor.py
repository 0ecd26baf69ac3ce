"""Turn-taking through the real server: the bot pauses at a backchannel and resumes, commits
a barge-in on real speech, says back whole turns, withdraws a reply when the turn goes on."""

import subprocess
from pathlib import Path

import numpy as np

from bridge.codecs.wav import read_wav, write_wav
from bridge.sim.simulator import SimulatorOptions, best_alignment, simulate
from tests.responders import HookLog
from tests.sounds import recording, silence

RATE = 24000
TONE_S = 3.0


def espeak_fast(text: str, tmp_path: Path, speed: int = 175) -> np.ndarray:
    path = tmp_path / "said.wav"
    subprocess.run(["espeak-ng", "-s", str(speed), "-w", str(path), text], check=True)
    return read_wav(path, RATE)[0]


def script(tmp_path: Path, *pieces: np.ndarray) -> str:
    path = tmp_path / "script.wav"
    write_wav(path, np.concatenate(pieces), RATE)
    return str(path)


def hooks(session_id: str) -> list[tuple[str, object]]:
    return HookLog.calls[f"{session_id}-floor"]


def kinds(session_id: str) -> list[str]:
    return [hook for hook, _ in hooks(session_id)]


async def run(start_bridge, session_id: str, wav: str, **settings):
    server = await start_bridge("tests.responders:Monologue", (f"seconds={TONE_S}",), **settings)
    url = f"ws://127.0.0.1:{server.port}/bots/{session_id}-floor"
    out = str(Path(wav).with_name("heard.wav"))
    opts = SimulatorOptions(lead_in_s=0.0, gap_s=0.5, listen_s=1)
    report = await simulate([url], [wav], opts, out)
    return server.sessions.sessions[f"{session_id}-floor"], report


async def test_a_backchannel_over_the_bot_pauses_it_and_it_resumes_where_it_paused(
    start_bridge, tmp_path
):
    yeah = espeak_fast("yeah", tmp_path)  # 290 ms of voice: under the 500 ms of a barge-in
    wav = script(tmp_path, silence(1.0, RATE), yeah, silence(3.0, RATE))
    session, report = await run(start_bridge, "backchannel", wav)
    tone = await session.runners[0].responder.utterance
    assert not tone.interrupted and tone.sent == int(TONE_S * 16000) * 3 // 2  # all of it
    assert report.bytes_received == 2 * tone.sent
    assert session.floor.false_interruptions == 1 and session.stats.barge_ins == 0
    assert "interrupted" not in kinds("backchannel")
    assert "turn_start" not in kinds("backchannel")  # a backchannel is no turn
    heard = np.flatnonzero(report_timeline(report))
    gaps = np.diff(heard)
    assert gaps.max() > RATE // 5  # the bot did fall silent while the user said yeah


def report_timeline(report) -> np.ndarray:
    return read_wav(report.output_wav, RATE)[0]


async def test_speech_over_the_bot_commits_a_barge_in_and_becomes_a_turn(start_bridge, tmp_path):
    speech = recording("Front_Left", RATE)
    wav = script(tmp_path, silence(1.0, RATE), speech, silence(2.0, RATE))
    session, report = await run(start_bridge, "barge", wav)
    tone = await session.runners[0].responder.utterance
    assert tone.interrupted and session.stats.barge_ins == 1
    assert report.bytes_received == 2 * tone.sent  # what the responder is told the meeting heard
    assert 1.0 <= tone.sent / RATE <= 1.0 + 0.06 + 0.08 + 0.1  # onset, lead, and slack
    order = kinds("barge")
    assert order.index("speech_start") < order.index("interrupted") < order.index("turn_start")
    assert order.count("turn_start") == 1 and order.count("turn_end") == 1


async def test_the_fixed_policy_cuts_the_bot_at_a_backchannel(start_bridge, tmp_path):
    yeah = espeak_fast("yeah", tmp_path)
    wav = script(tmp_path, silence(1.0, RATE), yeah, silence(3.0, RATE))
    session, _ = await run(start_bridge, "fixed", wav, turn_policy="fixed")
    tone = await session.runners[0].responder.utterance
    assert tone.interrupted and session.stats.barge_ins == 1  # the old false barge-in


async def test_echo_says_front_center_back_whole_and_the_fixed_policy_splits_it(start_bridge):
    for policy, replies in (("adaptive", 1), ("fixed", 2)):
        server = await start_bridge("echo", turn_policy=policy)
        url = f"ws://127.0.0.1:{server.port}/bots/fc-{policy}"
        path = "/usr/share/sounds/alsa/Front_Center.wav"
        report = await simulate([url], [path], SimulatorOptions(lead_in_s=0.5, gap_s=2.5))
        session = server.sessions.sessions[f"fc-{policy}"]
        assert session.floor.turns_started == replies, policy
        # the turns ended on ticks (the echo says a turn back at its end); then nothing is
        # left to decide on stream time, and the pipeline calls no tick a chunk
        assert not session.floor.ticking and session.pipeline.on_tick is None
        if policy == "adaptive":
            (utterance,) = report.utterances
            assert utterance.echo_correlation is not None and utterance.echo_correlation > 0.99


async def test_a_turn_resumed_after_its_end_is_said_back_whole(start_bridge, tmp_path):
    """A pause of 900 ms: the turn ends, the echo begins, the speaker goes on: the echo is
    withdrawn and the whole turn said back at its new end."""
    front, rear = recording("Front_Left", RATE), recording("Rear_Right", RATE)
    wav = script(tmp_path, front, silence(0.8, RATE), rear)  # not the echo's own words
    server = await start_bridge("echo", turn_policy="adaptive")
    url = f"ws://127.0.0.1:{server.port}/bots/resumed"
    opts = SimulatorOptions(lead_in_s=0.5, gap_s=3.0, listen_s=3.0)
    report = await simulate([url], [wav], opts, str(tmp_path / "heard.wav"))
    session = server.sessions.sessions["resumed"]
    assert session.floor.turns_started == 1 and session.floor.turns_continued == 1
    heard = report_timeline(report)
    reply_at = report.utterances[0].start + len(report.utterances[0].samples)
    # the echo keeps 100 ms after the voice: not all of a recording's quiet tail
    voiced, rear_voiced = front[: RATE * 13 // 10], rear[: RATE * 13 // 10]
    lag, corr = best_alignment(voiced, heard[reply_at:])  # the reply after the whole turn
    rest = heard[reply_at + lag + len(voiced) :]
    next_lag, next_corr = best_alignment(rear_voiced, rest)
    assert corr is not None and corr > 0.99 and next_corr is not None and next_corr > 0.99
    assert next_lag < RATE  # the second half follows the first: one reply
    assert session.stats.barge_ins == 0  # the withdrawn echo was no barge-in
