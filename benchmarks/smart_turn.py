"""Smart Turn v3 weighed against the acoustic policy on the conversation corpus (offline).

At every pause the VAD finds in a turn of benchmarks/turns.py's corpus (its segments' ends,
with the adaptive policy's 200 ms stop window) the model hears the turn so far (up to the
VAD's stop, so with the quiet after the voice, as pipecat runs it) and says whether the
speaker has finished. Ground truth: a pause inside a turn is "not finished",
the turn's last stop "finished". The acoustic policy is judged on the same points: it ends
the turn where the quiet reaches its delay (the endpointing delay the turn's pauses so far
give). Also timed: the model's cost per decision on one core.

    pip install -e '.[smart-turn]'; python -m benchmarks.smart_turn --out results/smart-turn.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import soxr

from benchmarks.turns import LEAD_IN_S, RATE, corpus
from bridge.audio._vadcore import VadFramer
from bridge.audio.smart_turn import RATE as MODEL_RATE
from bridge.audio.smart_turn import SmartTurn
from bridge.audio.turns import PauseModel
from bridge.audio.vad import VAD_RATE, SpeechStarted, SpeechStopped, VoiceActivityDetector
from bridge.config import BridgeConfig

PREROLL_MS = 300  # audio before the turn's start the model hears too


def stops(audio: np.ndarray, config: BridgeConfig) -> list[tuple[float, float, float]]:
    """(start of the turn, when the VAD said its segment stopped, the pause: from the last
    voice to the next start, or inf) in ms; the model hears what was heard at the stop."""
    vad = VoiceActivityDetector(
        config.frame_ms, stop_ms=config.turn_vad_stop_ms, onset_ms=config.vad_onset_ms
    )
    size = VAD_RATE * config.frame_ms // 1000
    frames = np.frombuffer(VadFramer(RATE, VAD_RATE, size).take(audio), np.int16)
    first: float | None = None
    found: list[list[float]] = []
    for i in range(0, len(frames) - size + 1, size):
        event = vad.process(frames[i : i + size])
        if isinstance(event, SpeechStarted):
            first = event.at_ms if first is None else first
            if found:  # the policy's pause: from the last voice to the next start
                found[-1][2] = event.at_ms - found[-1][3]
        elif isinstance(event, SpeechStopped) and first is not None:
            voice_end = max(event.at_ms, vad.last_voiced_ms)
            found.append([first, vad.position_ms, float("inf"), voice_end])
    return [(a, b, c) for a, b, c, _ in found]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/smart-turn.json"))
    args = parser.parse_args()
    config = BridgeConfig()
    model = SmartTurn()
    rows, costs = [], []
    with tempfile.TemporaryDirectory() as tmp:
        cases = [c for c in corpus(Path(tmp)) if c.kind == "pause"]
    for case in cases:
        audio = np.concatenate([np.zeros(int(LEAD_IN_S * RATE), np.int16), case.audio])
        audio = np.concatenate([audio, np.zeros(RATE, np.int16)])
        heard = soxr.resample(audio, RATE, MODEL_RATE).astype(np.int16)
        pauses = PauseModel(
            config.turn_min_delay_ms, config.turn_max_delay_ms, True, config.turn_initial_delay_ms
        )
        points = stops(audio, config)
        for n, (start_ms, end_ms, quiet_ms) in enumerate(points):
            finished = n == len(points) - 1
            turn = heard[int((start_ms - PREROLL_MS) * 16) : int(end_ms * 16)]
            began = time.perf_counter()
            probability = model.complete(turn)
            costs.append(time.perf_counter() - began)
            acoustic_ends = quiet_ms >= pauses.delay_ms
            rows.append(
                {
                    "case": case.name,
                    "at_ms": end_ms,
                    "finished": finished,
                    "smart_turn": probability,
                    "smart_turn_right": (probability > 0.5) == finished,
                    "acoustic_delay_ms": pauses.delay_ms,
                    "acoustic_right": acoustic_ends == finished,
                }
            )
            if not finished:
                pauses.observe(quiet_ms)
    summary = {
        "points": len(rows),
        "pauses_inside": sum(not r["finished"] for r in rows),
        "smart_turn_right": sum(r["smart_turn_right"] for r in rows),
        "smart_turn_cut_a_pause": sum(
            not r["finished"] and not r["smart_turn_right"] for r in rows
        ),
        "acoustic_right": sum(r["acoustic_right"] for r in rows),
        "ms_per_decision_p50": float(np.percentile(costs, 50) * 1000),
        "ms_per_decision_p90": float(np.percentile(costs, 90) * 1000),
    }
    for r in rows:
        print(
            f"{r['case']:24} {r['at_ms']:7.0f} ms  {'end' if r['finished'] else 'pause':5}  "
            f"smart turn {r['smart_turn']:.2f} {'ok' if r['smart_turn_right'] else 'WRONG':5}  "
            f"acoustic {'ok' if r['acoustic_right'] else 'WRONG'}"
        )
    for key, value in summary.items():
        print(f"{key:28} {value if isinstance(value, int) else round(value, 1)}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"summary": summary, "points": rows}, indent=1))


if __name__ == "__main__":
    main()
