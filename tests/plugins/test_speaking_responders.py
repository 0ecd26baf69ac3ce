"""player, tts and transcriber over real sockets, with real speech."""

import asyncio
import subprocess
import sys

import numpy as np
import pytest
from pocketsphinx import Decoder

from bridge.audio.framer import frame_samples, frames_of
from bridge.audio.resample import StreamResampler
from bridge.audio.vad import VAD_RATE, VoiceActivityDetector
from bridge.codecs.wav import read_wav, write_wav
from bridge.sim.simulator import SimulatorOptions, best_alignment, simulate
from tests.helpers import Control
from tests.sounds import ALSA, recording, silence


def resample(samples: np.ndarray, src: int, dst: int) -> np.ndarray:
    r = StreamResampler(src, dst)
    return np.concatenate([r.process(samples), r.flush()])


def speech_segments(samples: np.ndarray, rate: int) -> int:
    size = frame_samples(VAD_RATE, 20)
    vad, heard = VoiceActivityDetector(20), resample(samples, rate, VAD_RATE)
    found = [vad.process(f) for f in frames_of(heard[: len(heard) // size * size], size)]
    return sum(1 for e in found if e is not None and not vad.speaking) + vad.speaking


def keyword_heard(samples16k: np.ndarray, keyword: str) -> bool:
    decoder = Decoder(samprate=16000, keyphrase=keyword, kws_threshold=1e-20, loglevel="FATAL")
    decoder.start_utt()
    decoder.process_raw(samples16k.tobytes(), full_utt=True)
    decoder.end_utt()
    return decoder.hyp() is not None


def silent_wav(tmp_path, seconds: float, rate: int) -> str:
    path = tmp_path / "silence.wav"
    write_wav(path, silence(seconds, rate), rate)
    return str(path)


async def test_player_plays_a_stereo_44k_file_intact(start_bridge, tmp_path):
    voice = recording("Front_Center", 44100)
    stereo = tmp_path / "stereo.wav"
    subprocess.run(
        ["sox", str(ALSA / "Front_Center.wav"), "-r", "44100", "-c", "2", str(stereo)], check=True
    )
    server = await start_bridge("player", (f"file={stereo}",))
    url = f"ws://127.0.0.1:{server.port}/bots/play?rate=16000"
    out = tmp_path / "heard.wav"
    opts = SimulatorOptions(sample_rate=16000, lead_in_s=0.0, gap_s=0.0, listen_s=0.2)
    report = await simulate([url], [silent_wav(tmp_path, 2.0, 16000)], opts, str(out))
    heard, _ = read_wav(out)
    expected = resample(voice, 44100, 16000)
    _, correlation = best_alignment(expected, heard)
    assert correlation is not None and correlation > 0.99
    assert abs(report.bytes_received // 2 - len(expected)) < 160  # all of it, once
    assert report.underruns == 0


async def test_player_plays_again_on_command_and_on_a_schedule(start_bridge, tmp_path):
    server = await start_bridge(
        "player", (f"file={ALSA / 'Front_Left.wav'}", "at_start=false", "every_s=1.5")
    )
    url = f"ws://127.0.0.1:{server.port}/bots/sched"
    opts = SimulatorOptions(lead_in_s=0.0, gap_s=0.0, listen_s=2.0)
    sim = simulate([url], [silent_wav(tmp_path, 1.6, 24000)], opts)
    task = asyncio.create_task(sim)
    control = await Control.open(server, "sched")
    assert await control.command({"type": "play"}) == {"type": "ok", "command": "play"}
    report = await task
    await control.close()
    plays = len(recording("Front_Left", 24000))
    # the command's play, then the schedule's at 1.5 s (queued behind it)
    assert report.bytes_received // 2 >= 2 * plays - 480


async def test_tts_greeting_is_intelligible(start_bridge, tmp_path):
    server = await start_bridge("tts", ("greeting=the weather is nice today",))
    url = f"ws://127.0.0.1:{server.port}/bots/tts?rate=16000"
    out = tmp_path / "heard.wav"
    opts = SimulatorOptions(sample_rate=16000, lead_in_s=0.0, gap_s=0.0, listen_s=0.3)
    report = await simulate([url], [silent_wav(tmp_path, 2.5, 16000)], opts, str(out))
    heard, _ = read_wav(out)
    assert report.bytes_received > 16000 * 2  # over a second of speech
    assert np.abs(heard).max() > 3000  # not silent
    assert speech_segments(heard, 16000) >= 1
    assert keyword_heard(heard, "weather")
    assert not keyword_heard(heard, "morning")  # the keyword spotter is not fooled by any speech


async def test_say_command_goes_through_the_tts_responder(start_bridge, tmp_path):
    server = await start_bridge("tts", ("voice=en-us+f3",))
    url = f"ws://127.0.0.1:{server.port}/bots/say?rate=16000"
    out = tmp_path / "heard.wav"
    opts = SimulatorOptions(sample_rate=16000, lead_in_s=0.0, gap_s=0.0, listen_s=0.3)
    task = asyncio.create_task(simulate([url], [silent_wav(tmp_path, 3.0, 16000)], opts, str(out)))
    control = await Control.open(server, "say")
    reply = await control.command({"type": "say", "text": "good morning everyone"})
    assert reply == {"type": "ok", "command": "say"}
    await control.wait_event("bot_text", text="good morning everyone")
    await task
    await control.close()
    heard, _ = read_wav(out)
    assert keyword_heard(heard, "morning")


def test_tts_refuses_to_start_without_espeak(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "bridge", "serve", "--responder", "tts"],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": str(tmp_path)},
    )
    assert done.returncode == 2
    assert "espeak-ng is not installed" in done.stderr


@pytest.mark.parametrize("rate", [16000, 24000])
async def test_transcriber_transcribes_and_names_the_speaker(start_bridge, tmp_path, rate):
    sentence = tmp_path / "sentence.wav"
    subprocess.run(
        ["espeak-ng", "-v", "en-us", "-s", "160", "-w", str(sentence), "good morning everyone"],
        check=True,
    )
    server = await start_bridge("transcriber")
    url = f"ws://127.0.0.1:{server.port}/bots/stt?rate={rate}"
    opts = SimulatorOptions(sample_rate=rate, lead_in_s=0.5, gap_s=1.5, listen_s=0.1)
    task = asyncio.create_task(simulate([url], [str(sentence)], opts))
    control = await Control.open(server, "stt")
    transcript = await control.wait_event("transcript")
    await task
    await control.close()
    assert {"good", "morning"} <= set(transcript["text"].split())
    assert transcript["speaker"] == "Simulated Speaker"
    assert 300 < transcript["start_ms"] < transcript["end_ms"]
