"""The recorder: WAVs of both directions on one timeline, and a JSONL timeline, streamed."""

import asyncio
import json
import os
import signal
import time

import numpy as np
from websockets.asyncio.client import connect

from bridge.codecs.wav import read_wav
from bridge.sim.simulator import SimulatorOptions, best_alignment, load_script, simulate
from tests.helpers import eventually
from tests.server_process import ServerProcess
from tests.sounds import ALSA, recording

WAVS = [str(ALSA / "Front_Left.wav"), str(ALSA / "Rear_Right.wav")]


async def test_recorder_with_echo_writes_both_directions(start_bridge, tmp_path):
    server = await start_bridge("echo,recorder", (f"recorder.dir={tmp_path}",))
    url = f"ws://127.0.0.1:{server.port}/bots/rec"
    opts = SimulatorOptions(lead_in_s=0.3, gap_s=2.5, listen_s=0.3)
    report = await simulate([url], WAVS, opts)
    await server.close()  # ends the session: the recorder closes its files
    folder = tmp_path / "rec"
    meeting, rate = read_wav(folder / "meeting.wav")
    bot, bot_rate = read_wav(folder / "bot.wav")
    assert rate == bot_rate == 24000
    sent, _ = load_script(WAVS, opts)
    whole = len(sent) // 480 * 480  # the last partial frame never completes
    assert np.array_equal(meeting, sent[:whole])  # bit-exact: no resampling at the bot's rate
    assert len(bot) == len(meeting)  # one timeline
    # what the bot said is on the timeline where the meeting heard it: after each recording
    for utterance in report.utterances:
        lag, corr = best_alignment(utterance.samples, bot)
        assert corr is not None and corr > 0.99
        assert lag > utterance.start + len(utterance.samples)
        assert lag - (utterance.start + len(utterance.samples)) < 24000  # within a second
    events = [json.loads(line) for line in (folder / "timeline.jsonl").read_text().splitlines()]
    kinds = [e["type"] for e in events]
    assert kinds.count("speech_start") == 2 and kinds.count("speech_stop") == 2
    assert kinds.count("utterance_end") == 2 and kinds.count("speakers") == 5  # 1 on joining
    assert kinds.count("joined") == 1 and kinds.count("speaker_start") == 2
    assert kinds[0] == "hello" and kinds[-1] == "session_end"
    spoken = [e for e in events if e["type"] == "utterance_end"]
    assert all(not e["interrupted"] and e["sent_ms"] > 1000 for e in spoken)


def test_a_killed_server_leaves_valid_wavs(tmp_path):
    """SIGKILL mid-session: the WAVs written so far are readable and hold what was sent."""
    served = ServerProcess(
        "--responder", "echo", "--responder", "recorder", "-o", f"recorder.dir={tmp_path}"
    )
    server = served.process
    try:
        port = served.port
        speech = recording("Front_Left", 24000)
        audio = np.concatenate([speech, np.zeros(24000, dtype=np.int16)])

        async def stream() -> None:
            async with connect(f"ws://127.0.0.1:{port}/bots/killed") as ws:
                for at in range(0, len(audio), 480):
                    await ws.send(audio[at : at + 480].tobytes())
                # wait until the recorder has the whole meeting and some of the echo
                await eventually(
                    lambda: (
                        (tmp_path / "killed" / "bot.wav").exists()
                        and (tmp_path / "killed" / "bot.wav").stat().st_size > 44 + 48000
                    )
                )

        asyncio.run(stream())
        time.sleep(0.2)
    finally:
        os.kill(server.pid, signal.SIGKILL)
        server.wait()
    meeting, _ = read_wav(tmp_path / "killed" / "meeting.wav")
    bot, _ = read_wav(tmp_path / "killed" / "bot.wav")
    assert np.array_equal(meeting, audio[: len(meeting)]) and len(meeting) >= len(audio) - 480
    assert len(bot) > 24000 and np.any(bot)
