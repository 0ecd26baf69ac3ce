"""Micro-benchmarks of the per-frame hot path: cost per 20 ms frame and "x real time".

    .venv/bin/python -m benchmarks.micro [--rounds 30] [--out benchmarks/results/FILE.json]

Each case runs `frames` frames per round; the figure is the median (and p95) over rounds
of the time per frame, so one noisy round on a shared machine does not move it.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import socket
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from websockets.frames import Frame, Opcode, apply_mask

from bridge.audio._vadcore import VadFramer
from bridge.audio.framer import Framer
from bridge.audio.pacer import OutputPacer
from bridge.audio.pipeline import InputPipeline
from bridge.audio.resample import StreamResampler
from bridge.audio.ring import RingBuffer
from bridge.audio.vad import VAD_RATE, VoiceActivityDetector, spectral_flatness
from bridge.codecs.pcm import f32_to_s16, s16_to_f32
from bridge.codecs.wav import read_wav
from bridge.wire._frames import audio_frames
from bridge.wire.protocol import parse_audio, parse_text

FRAME_MS = 20
SPEECH = Path("/usr/share/sounds/alsa/Front_Left.wav")


def frames_of(rate: int, n: int) -> list[np.ndarray]:
    """n consecutive 20 ms frames of real speech (looped) at rate."""
    speech, _ = read_wav(SPEECH, rate)
    size = rate * FRAME_MS // 1000
    reps = n * size // len(speech) + 1
    looped = np.tile(speech, reps)
    return [looped[i * size : (i + 1) * size] for i in range(n)]


def case_ring(frames: list[np.ndarray]) -> Callable[[], None]:
    ring, out = RingBuffer(4800), np.zeros(len(frames[0]), dtype=np.int16)

    def run() -> None:
        for f in frames:
            ring.write(f)
            ring.read_into(out)

    return run


def case_framer(frames: list[np.ndarray]) -> Callable[[], None]:
    framer = Framer(len(frames[0]))
    chunks = [f[:-7] for f in frames]  # odd sizes: frames straddle chunks

    def run() -> None:
        for c in chunks:
            framer.take(c)

    return run


def case_resample(frames: list[np.ndarray], src: int, dst: int, quality: str):
    resampler = StreamResampler(src, dst, quality)  # type: ignore[arg-type]

    def run() -> None:
        for f in frames:
            resampler.process(f)

    return run, resampler


def steady_delay_ms(resampler: StreamResampler, chunks: int = 200) -> float:
    """Mean delay over many 20 ms chunks: what a frame waits in the filter, on average."""
    chunk = np.zeros(resampler.in_rate * FRAME_MS // 1000, dtype=np.int16)
    delays = []
    for _ in range(chunks):
        resampler.process(chunk)
        delays.append(resampler.delay_ms)
    return float(np.mean(delays))


def case_vad(frames8: list[np.ndarray], max_flatness: float) -> Callable[[], None]:
    vad = VoiceActivityDetector(FRAME_MS, max_flatness=max_flatness)

    def run() -> None:
        for f in frames8:
            vad.process(f)

    return run


def case_vad_input(frames: list[np.ndarray]) -> Callable[[], None]:
    """The VAD's input stage: 24 kHz decimated to 8 kHz and cut into frames, one call."""
    framer = VadFramer(24000, VAD_RATE, VAD_RATE * FRAME_MS // 1000)

    def run() -> None:
        for f in frames:
            framer.take(f)

    return run


def case_flatness(frames8: list[np.ndarray]) -> Callable[[], None]:
    """The spectral gate's measure of each frame (the VAD computes it only when needed)."""

    def run() -> None:
        for f in frames8:
            spectral_flatness(f)

    return run


def ignore(_event: object) -> None:
    """A speech event's listener that does nothing: the pipeline's own cost is timed."""


def case_input_pipeline(frames: list[np.ndarray]) -> Callable[[], None]:
    """A 24 kHz bot chunk through the whole input side: VAD at 8 kHz and 24 kHz framing."""
    pipeline = InputPipeline(24000, {24000}, FRAME_MS, VoiceActivityDetector(FRAME_MS))

    def run() -> None:
        for f in frames:
            pipeline.feed(f, ignore)

    return run


SESSIONS = 400  # VADs fed in turn, as a loaded server does: each one's state cold in cache
CHUNK_FRAMES = 5  # a v2 bot's 100 ms chunk


def case_vads_round_robin(frames8: list[np.ndarray]) -> Callable[[], None]:
    """SESSIONS VADs (with the gate), each given a 100 ms block in turn."""
    vads = [VoiceActivityDetector(FRAME_MS) for _ in range(SESSIONS)]
    blocks = [
        np.concatenate(frames8[i : i + CHUNK_FRAMES])
        for i in range(0, SESSIONS * CHUNK_FRAMES, CHUNK_FRAMES)
    ]

    def run() -> None:
        for vad, block in zip(vads, blocks, strict=True):
            vad.process_block(block, None, ignore)

    return run


def case_pipelines_round_robin(frames: list[np.ndarray]) -> Callable[[], None]:
    """SESSIONS input pipelines (24 kHz bots, 100 ms chunks), each fed a chunk in turn."""
    pipelines = [
        InputPipeline(24000, {24000}, FRAME_MS, VoiceActivityDetector(FRAME_MS))
        for _ in range(SESSIONS)
    ]
    chunks = [
        np.concatenate(frames[i : i + CHUNK_FRAMES])
        for i in range(0, SESSIONS * CHUNK_FRAMES, CHUNK_FRAMES)
    ]

    def run() -> None:
        for pipeline, chunk in zip(pipelines, chunks, strict=True):
            pipeline.feed(chunk, ignore)

    return run


def case_parse_audio(frames: list[np.ndarray]) -> Callable[[], None]:
    payloads = [f.tobytes() for f in frames]

    def run() -> None:
        for p in payloads:
            parse_audio(p)

    return run


def masked_reads(frames: list[np.ndarray]) -> list[bytes]:
    """Each frame as a bot writes it, one a read: a masked final binary WebSocket frame."""
    return [Frame(Opcode.BINARY, f.tobytes()).serialize(mask=True) for f in frames]


def python_audio_frames(data: bytes, max_size: int) -> tuple[list[bytes], int]:
    """The Python loop that bridge/wire/_frames.c replaced (before issue 21): the baseline."""
    payloads, taken, end, view = [], 0, len(data), memoryview(data)
    while end - taken >= 6 and data[taken] == 0x82 and data[taken + 1] & 0x80:
        length, start = data[taken + 1] & 0x7F, taken + 2
        if length >= 126:
            size = 2 if length == 126 else 8
            if end - start < size:
                break
            length, start = int.from_bytes(data[start : start + size], "big"), start + size
        payload = start + 4
        if payload + length > end or length > max_size:
            break
        taken = payload + length
        payloads.append(apply_mask(view[payload:taken], data[start:payload]))
    return payloads, taken


def case_audio_frames(
    frames: list[np.ndarray], parse: Callable[[bytes, int], tuple[list[bytes], int]]
) -> Callable[[], None]:
    reads = masked_reads(frames)

    def run() -> None:
        for data in reads:
            parse(data, 1 << 20)

    return run


def case_parse_speakers(n: int) -> Callable[[], None]:
    text = json.dumps([{"name": "Alice", "id": 2, "timestamp": 1732467000123, "isSpeaking": True}])

    def run() -> None:
        for _ in range(n):
            parse_text(text)

    return run


def case_pcm(frames: list[np.ndarray]) -> Callable[[], None]:
    def run() -> None:
        for f in frames:
            f32_to_s16(s16_to_f32(f))

    return run


def case_pacer(n: int) -> Callable[[], None]:
    pacer, clock = OutputPacer(24000, 40), [0.0]

    def run() -> None:
        for _ in range(n):
            now = clock[0]
            due = pacer.send_at(now, 480)
            if due <= now:
                pacer.sent(now, 480)
            clock[0] = max(due, now)

    return run


def measure(run: Callable[[], None], frames: int, rounds: int) -> dict[str, float]:
    """Time per frame of `run` (which handles `frames` frames), median and p95 over rounds."""
    run()  # warm up
    per_frame = []
    for _ in range(rounds):
        start = time.perf_counter()
        run()
        per_frame.append((time.perf_counter() - start) / frames)
    median, p95 = np.percentile(per_frame, [50, 95])
    return {
        "us_per_frame_p50": median * 1e6,
        "us_per_frame_p95": p95 * 1e6,
        "x_real_time": FRAME_MS / 1000 / median,
    }


def show(name: str, r: dict[str, float], more: str = "") -> None:
    print(
        f"{name:42} {r['us_per_frame_p50']:13.2f} {r['us_per_frame_p95']:8.2f} "
        f"{r['x_real_time']:12.0f}  {more}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--frames", type=int, default=500)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    n, rounds = args.frames, args.rounds
    f24, f16, f8 = frames_of(24000, n), frames_of(16000, n), frames_of(VAD_RATE, n)

    many_frames = SESSIONS * CHUNK_FRAMES
    f24_many, f8_many = frames_of(24000, many_frames), frames_of(VAD_RATE, many_frames)
    cases: dict[str, tuple[Callable[[], None], StreamResampler | None]] = {
        "ring buffer write+read (24 kHz)": (case_ring(f24), None),
        "framer, unaligned chunks (24 kHz)": (case_framer(f24), None),
        "audio frame, Python loop (24 kHz)": (case_audio_frames(f24, python_audio_frames), None),
        "audio frame, _frames.c (24 kHz)": (case_audio_frames(f24, audio_frames), None),
        "parse_audio (24 kHz frame)": (case_parse_audio(f24), None),
        "parse_text (speaker array)": (case_parse_speakers(n), None),
        "s16 -> f32 -> s16 (24 kHz)": (case_pcm(f24), None),
        "pacer decision": (case_pacer(n), None),
        "decimate + frame 24k->8k for the VAD": (case_vad_input(f24), None),
        "spectral flatness (8 kHz)": (case_flatness(f8), None),
        "VAD, webrtcvad only (8 kHz)": (case_vad(f8, 1.0), None),
        "VAD with flatness gate (8 kHz)": (case_vad(f8, 0.1), None),
        "input pipeline (24 kHz chunk)": (case_input_pipeline(f24), None),
    }
    many: dict[str, Callable[[], None]] = {
        f"VAD with gate, {SESSIONS} sessions in turn": case_vads_round_robin(f8_many),
        f"input pipeline, {SESSIONS} sessions in turn": case_pipelines_round_robin(f24_many),
    }
    for quality in ("QQ", "LQ", "MQ", "HQ", "VHQ"):
        for src, dst in ((24000, 16000), (16000, 24000)):
            frames = f24 if src == 24000 else f16
            run, resampler = case_resample(frames, src, dst, quality)
            cases[f"resample {src // 1000}k->{dst // 1000}k {quality}"] = (run, resampler)

    results = {}
    print(f"{'case':42} {'us/frame p50':>13} {'p95':>8} {'x real time':>12}  extra")
    for name, (run, resampler) in cases.items():
        r = measure(run, n, rounds)
        more = ""
        if resampler is not None:
            r["delay_ms"] = steady_delay_ms(resampler)
            more = f"delay {r['delay_ms']:.2f} ms"
        results[name] = r
        show(name, r, more)
    for name, run in many.items():
        r = measure(run, many_frames, rounds)
        results[name] = r
        show(name, r)
    if args.out:
        machine = {
            "host": socket.gethostname(),
            "cpus": os.cpu_count(),
            "machine": platform.machine(),
            "processor": platform.processor(),
            "python": platform.python_version(),
            "numpy": np.__version__,
        }
        document = {
            "date": datetime.date.today().isoformat(),
            "machine": machine,
            "frame_ms": FRAME_MS,
            "frames_per_round": n,
            "rounds": rounds,
            "results": results,
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(document, indent=2) + "\n")
        print(f"written to {args.out}")


if __name__ == "__main__":
    main()
