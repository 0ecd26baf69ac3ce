"""The conversation benchmark: turn-taking measured through the real server and sockets.

Each case is one simulated bot talking to the echo responder (it says back each whole
turn), with its ground truth known by construction: turns with pauses of known length
inside (espeak-ng phrases, the ALSA Front_Center recording), backchannels and noises over
the bot's reply, real barge-ins over it, and the bot's own reply mixed back into the
meeting's audio (150-600 ms late, -6 to -20 dB). What the meeting heard from the bot is the
simulator's player timeline; every metric is read from it against the ground truth.

The simulator sends each 20 ms chunk at its start time, a chunk before a real bot could
(it has to capture it first): every latency from a user's sample to the bot's audio here has
that chunk (CAPTURE_MS) added back. `--micro` first times the turn machinery per chunk
(the per-session cost: floor, echo guard and the playout's feed to it, on against off).

    python -m benchmarks.turns --out benchmarks/results/turns.json   (make bench-turns)
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import platform
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from bridge.audio.echo_guard import EchoGuard
from bridge.audio.pipeline import InputPipeline
from bridge.audio.vad import VoiceActivityDetector
from bridge.cli import responder_factories
from bridge.codecs.wav import read_wav, write_wav
from bridge.config import BridgeConfig
from bridge.responder import SessionInfo
from bridge.server.floor import Floor, floor_settings
from bridge.server.playout import Playout
from bridge.server.server import BridgeServer
from bridge.sim.simulator import SimulatorOptions, simulate

RATE = 24000
ALSA = Path("/usr/share/sounds/alsa")
GAP_MS = 300  # a gap this long in the bot's audio at the player is silence, not jitter
CAPTURE_MS = SimulatorOptions().chunk_ms  # a real bot sends a chunk once it has captured it
LEAD_IN_S = 0.5
# each policy's settings over BridgeConfig's defaults: the old fixed window (no echo guard)
# and the defaults (adaptive endpointing, pause-then-decide, the echo guard)
POLICIES: dict[str, dict[str, object]] = {
    "fixed": {"turn_policy": "fixed", "echo_guard": False},
    "adaptive": {},
}


@dataclass
class Case:
    """One conversation and its ground truth, in timeline samples (after the lead-in)."""

    name: str
    kind: str  # pause | backchannel | barge_in | self_echo
    audio: np.ndarray
    turn_end: int  # where the user's (first) turn ends
    event_start: int = 0  # backchannel / barge-in: where the user's sound over the bot starts
    event_end: int = 0
    echo_delay_ms: float | None = None
    echo_gain_db: float = -12.0


@dataclass
class Outcome:
    """What the meeting heard in one case."""

    name: str
    kind: str
    spoke_inside_turn: bool = False  # bot audio before the user's turn was over
    eot_latency_ms: float | None = None  # user stops -> bot's first audio of the reply
    decided_ms: float | None = None  # user stops -> the turn_end decided (stream time)
    output_ms: float | None = None  # the turn_end decided -> the reply's first audio
    cut: bool = False  # the bot's reply stopped for good during the user's sound
    paused: bool = False  # the bot paused at the sound (then silent_ms, resumed_after_ms)
    silent_ms: float = 0.0  # the longest the bot fell silent during its reply
    resumed_after_ms: float | None = None  # the bot went on this long after the sound ended
    reaction_ms: float | None = None  # user's onset -> the bot silent at the player
    self_interrupted: bool = False
    notes: list[str] = field(default_factory=list)


def espeak(text: str, folder: Path, speed: int = 175, voice: str = "en-us") -> np.ndarray:
    """espeak-ng speech, its leading and trailing silence trimmed (pauses are then exact)."""
    path = folder / "say.wav"
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(path), text], check=True)
    samples = read_wav(path, RATE)[0]
    voiced = np.flatnonzero(np.abs(samples) > 200)
    return samples[voiced[0] : voiced[-1] + 1]


def alsa(name: str) -> np.ndarray:
    samples = read_wav(ALSA / f"{name}.wav", RATE)[0]
    voiced = np.flatnonzero(np.abs(samples) > 200)
    return samples[voiced[0] : voiced[-1] + 1]


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * RATE), dtype=np.int16)


def noise_burst(seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    burst = rng.normal(0, 4000, int(seconds * RATE)) * np.hanning(int(seconds * RATE))
    return burst.astype(np.int16)


def click() -> np.ndarray:
    out = np.zeros(int(0.01 * RATE), dtype=np.int16)
    out[:24] = 20000
    return out


def corpus(folder: Path) -> list[Case]:
    """The cases: every one built here from real speech, each with its ground truth."""
    cases: list[Case] = []
    first = espeak("I think we should move the launch", folder)
    second = espeak("to the second week of March", folder)
    for voice in ("en-us", "en-gb"):
        a, b = espeak("I think we should move the launch", folder, voice=voice), second
        for pause in (0.3, 0.5, 0.7):
            audio = np.concatenate([a, silence(pause), b])
            cases.append(Case(f"pause {pause:.1f}s {voice}", "pause", audio, len(audio)))
    center = alsa("Front_Center")
    cases.append(Case("Front_Center (440 ms)", "pause", center, len(center)))
    mono = np.concatenate([first, silence(0.25), second, silence(0.3), alsa("Rear_Center")])
    cases.append(Case("monologue", "pause", mono, len(mono)))

    # the bot says back a 3 s turn; the user makes a sound 1.3 s after the turn ended
    turn = np.concatenate([first, silence(0.2), second])
    sounds = {
        "yeah": espeak("yeah", folder, 220),
        "mhm": espeak("mhm", folder, 300),
        "okay": espeak("okay", folder, 240),
        "right": espeak("right", folder, 220),
        "cough (noise 250 ms)": noise_burst(0.25, 1),
        "click": click(),
    }
    for name, sound in sounds.items():
        cases.append(over_reply(f"backchannel {name}", "backchannel", turn, sound))
    for name, speech in (
        ("Rear_Center", alsa("Rear_Center")),
        ("wait", espeak("wait, that is not what I meant at all", folder)),
    ):
        cases.append(over_reply(f"barge-in {name}", "barge_in", turn, speech))
    for delay, gain in ((150, -6), (300, -12), (450, -16), (600, -20)):
        audio = np.concatenate([turn, silence(6.0)])
        case = Case(f"own echo {delay} ms {gain} dB", "self_echo", audio, len(turn))
        case.echo_delay_ms, case.echo_gain_db = delay, gain
        cases.append(case)
    return cases


def over_reply(name: str, kind: str, turn: np.ndarray, sound: np.ndarray) -> Case:
    at = len(turn) + int(1.3 * RATE)
    audio = np.concatenate([turn, silence(1.3), sound, silence(5.0)])
    return Case(name, kind, audio, len(turn), at, at + len(sound))


def runs(heard: np.ndarray, start: int) -> list[tuple[int, int]]:
    """Stretches of bot audio at the player from `start` on, split at gaps of GAP_MS."""
    loud = np.flatnonzero(heard[start:] != 0) + start
    if not len(loud):
        return []
    breaks = np.flatnonzero(np.diff(loud) > GAP_MS * RATE // 1000)
    starts = [loud[0], *loud[breaks + 1]]
    ends = [*loud[breaks], loud[-1]]
    return list(zip(starts, ends, strict=True))


def judge(case: Case, heard: np.ndarray, events: list[dict]) -> Outcome:
    """Read the case's metrics off what the meeting heard."""
    ms = 1000 / RATE
    offset = int(LEAD_IN_S * RATE)
    turn_end = offset + case.turn_end
    outcome = Outcome(case.name, case.kind)
    during = runs(heard[:turn_end], offset)
    outcome.spoke_inside_turn = bool(during)
    after = runs(heard, turn_end)
    if after:
        outcome.eot_latency_ms = (after[0][0] - turn_end) * ms + CAPTURE_MS
    ends = [e["at_ms"] for e in events if e["type"] == "turn_end"]
    decided = [at for at in ends if at >= turn_end * ms]
    if decided:
        outcome.decided_ms = decided[0] - turn_end * ms
        if after:
            outcome.output_ms = after[0][0] * ms - decided[0] + CAPTURE_MS
    interrupted = [e for e in events if e["type"] == "interrupted"]  # a withdrawal cuts too
    if case.kind in ("backchannel", "barge_in"):
        onset, end = offset + case.event_start, offset + case.event_end
        loud = np.flatnonzero(heard[turn_end:] != 0) + turn_end
        before = loud[loud < onset + 20 * RATE // 1000]
        later = loud[loud >= onset]
        if case.kind == "barge_in":
            last = loud[loud < onset + 3 * RATE][-1:] if len(loud) else []
            stops = [e for e in runs(heard, turn_end) if e[0] <= onset <= e[1] + GAP_MS * 24]
            if stops:
                outcome.reaction_ms = (stops[0][1] - onset) * ms + CAPTURE_MS
            elif len(last):
                outcome.reaction_ms = (last[0] - onset) * ms + CAPTURE_MS
        else:
            outcome.cut = bool(interrupted)
            outcome.paused = any(e["type"] == "paused" for e in events)
            if (outcome.paused or outcome.cut) and len(before) and len(later):
                gaps = np.diff(np.concatenate([before[-1:], later]))
                worst = int(np.argmax(gaps))
                outcome.silent_ms = gaps[worst] * ms
                resumed_at = later[worst]
                outcome.resumed_after_ms = max(0.0, (resumed_at - end) * ms + CAPTURE_MS)
    if case.kind == "self_echo":
        outcome.self_interrupted = bool(interrupted)
        outcome.notes += [f"{e['type']}" for e in events if e["type"] in ("paused", "resumed")]
    return outcome


async def run_case(server: BridgeServer, case: Case, folder: Path, policy: str) -> Outcome:
    session_id = f"{policy}-{case.name}".replace(" ", "_").replace("(", "").replace(")", "")
    wav = folder / f"{session_id}.wav"
    write_wav(wav, case.audio, RATE)
    out = folder / f"{session_id}-heard.wav"
    url = f"ws://127.0.0.1:{server.port}/bots/{session_id}"
    opts = SimulatorOptions(
        lead_in_s=LEAD_IN_S,
        gap_s=3.0,
        listen_s=1.0,
        echo_delay_ms=case.echo_delay_ms,
        echo_gain_db=case.echo_gain_db,
    )
    events: list[dict] = []
    hub_task = asyncio.create_task(collect(server, session_id, events))
    await simulate([url], [str(wav)], opts, str(out))
    hub_task.cancel()
    heard = read_wav(out, RATE)[0]
    outcome = judge(case, heard, events)
    for name in (
        "eot_latency_ms",
        "decided_ms",
        "output_ms",
        "silent_ms",
        "resumed_after_ms",
        "reaction_ms",
    ):
        value = getattr(outcome, name)
        setattr(outcome, name, None if value is None else float(value))
    outcome.spoke_inside_turn, outcome.cut = bool(outcome.spoke_inside_turn), bool(outcome.cut)
    return outcome


async def collect(server: BridgeServer, session_id: str, into: list[dict]) -> None:
    """Every event of the session, from its hub (the control channel's source)."""
    while (session := server.sessions.sessions.get(session_id)) is None:
        await asyncio.sleep(0.005)
    queue = session.events.subscribe()
    while True:
        into.append(await queue.get())


def percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def summarise(outcomes: list[Outcome]) -> dict:
    pauses = [o for o in outcomes if o.kind == "pause"]
    backchannels = [o for o in outcomes if o.kind == "backchannel"]
    barges = [o for o in outcomes if o.kind == "barge_in"]
    echoes = [o for o in outcomes if o.kind == "self_echo"]
    latencies = [o.eot_latency_ms for o in pauses if o.eot_latency_ms is not None]
    reactions = [o.reaction_ms for o in barges if o.reaction_ms is not None]
    cut = [o for o in backchannels if o.cut]
    return {
        "turns": len(pauses),
        "turns_split": sum(o.spoke_inside_turn for o in pauses),
        "eot_latency_ms_p50": percentile(latencies, 50),
        "eot_latency_ms_p90": percentile(latencies, 90),
        "eot_decided_ms_p50": percentile([o.decided_ms for o in pauses if o.decided_ms], 50),
        "eot_output_ms_p50": percentile([o.output_ms for o in pauses if o.output_ms], 50),
        "false_barge_ins": len(cut),
        "backchannels": len(backchannels),
        "false_barge_in_rate": len(cut) / len(backchannels) if backchannels else None,
        "backchannels_paused": sum(o.paused for o in backchannels),
        "backchannel_silence_ms_max": max((o.silent_ms for o in backchannels), default=None),
        "resumed_after_ms_p90": percentile(
            [
                o.resumed_after_ms
                for o in backchannels
                if o.resumed_after_ms is not None and not o.cut
            ],
            90,
        ),
        "barge_in_reaction_ms_p50": percentile(reactions, 50),
        "barge_in_reaction_ms_p90": percentile(reactions, 90),
        "self_interruptions": sum(o.self_interrupted for o in echoes),
        "self_echo_cases": len(echoes),
    }


async def run_policy(policy: str, cases: list[Case], folder: Path, parallel: int) -> list[Outcome]:
    config = BridgeConfig(port=0, grace_s=0.5, **POLICIES[policy])
    server = BridgeServer(config, responder_factories(["echo"], []))
    await server.start()
    try:
        limit = asyncio.Semaphore(parallel)

        async def one(case: Case) -> Outcome:
            async with limit:
                return await run_case(server, case, folder, policy)

        return list(await asyncio.gather(*(one(c) for c in cases)))
    finally:
        await server.close()


def chunk_cost(speech: np.ndarray, floor_on: bool, guarded: bool) -> float:
    """Microseconds per 20 ms chunk of a session's input side while the bot speaks: the
    pipeline (VAD at 8 kHz, 24 kHz framing), with the floor's events and tick (floor_on), and
    the echo guard judging every frame and hearing every frame sent (guarded: the defaults
    for interruptible responders; a live loopback gets the floor without a guard)."""
    config = BridgeConfig(echo_guard=guarded)
    chunk = RATE * CAPTURE_MS // 1000
    vad = VoiceActivityDetector(config.frame_ms, stop_ms=config.turn_vad_stop_ms)
    guard = EchoGuard(config.frame_ms) if guarded else None
    pipeline = InputPipeline(RATE, {RATE}, config.frame_ms, vad, 1000, echo_guard=guard)
    playout = Playout(RATE, config.frame_ms, config.lead_ms, 10.0, 4)
    playout.queue.write(playout.queue.open(), np.ones(len(speech), np.int16))  # speaking
    settings = dataclasses.replace(floor_settings(config, []), interruptible=guarded)
    info = SessionInfo("micro", RATE)
    floor = Floor(settings, vad, playout, info, lambda *a: None, lambda *a, **k: None, str)
    reply = speech[::-1].copy()  # the bot's frames, sent as the input arrives
    started = time.perf_counter()
    for i in range(0, len(speech) - chunk + 1, chunk):
        if guard is not None:
            guard.played(reply[i : i + chunk], vad.position_ms + 200)
        for item in pipeline.feed(speech[i : i + chunk]):
            if floor_on and not isinstance(item, tuple):
                floor.hear(item)
        if floor_on:
            floor.tick()
    return (time.perf_counter() - started) / (len(speech) // chunk) * 1e6


def micro(folder: Path) -> dict[str, float]:
    """The turn machinery's cost per chunk: the best of 9 runs over 50 s of real speech each,
    the three set-ups taking turns (so a busy moment of the machine hits all alike)."""
    talk = [espeak("I think we should move the launch to the second week of March", folder)]
    talk.append(alsa("Front_Center"))
    speech = np.concatenate([np.concatenate([t, silence(0.4)]) for t in talk * 10])
    setups = {"alone": (False, False), "floor": (True, False), "guarded": (True, True)}
    best = dict.fromkeys(setups, float("inf"))
    for _ in range(9):
        for name, (floor_on, guard) in setups.items():
            best[name] = min(best[name], chunk_cost(speech, floor_on, guard))
    alone, floor, guarded = best["alone"], best["floor"], best["guarded"]
    return {
        "us_per_chunk_input_alone": alone,
        "us_per_chunk_with_floor": floor,
        "us_per_chunk_with_floor_and_guard": guarded,
        "us_per_chunk_floor": floor - alone,
        "us_per_chunk_guard": guarded - floor,
        "core_share_per_session_floor_and_guard": (guarded - alone) / (CAPTURE_MS * 1000),
    }


def plot(results: dict[str, dict], out: Path) -> None:
    """Bars of each metric, fixed and adaptive side by side (needs the bench extra)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        ("ms", ["eot_latency_ms_p50", "eot_latency_ms_p90", "resumed_after_ms_p90"]),
        ("ms", ["barge_in_reaction_ms_p50", "barge_in_reaction_ms_p90"]),
        ("count", ["turns_split", "false_barge_ins", "self_interruptions"]),
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(13, 4), dpi=110)
    width = 0.8 / len(results)
    for axis, (unit, keys) in zip(axes, panels, strict=True):
        for n, (policy, summary) in enumerate(results.items()):
            values = [np.nan if summary[k] is None else summary[k] for k in keys]
            bars = axis.bar(np.arange(len(keys)) + n * width, values, width, label=policy)
            labels = ["none" if np.isnan(v) else f"{v:.0f}" for v in values]  # never resumed
            axis.bar_label(bars, labels=labels, fontsize=8)
        axis.set_xticks(np.arange(len(keys)) + width / 2, [k.replace("_ms", "") for k in keys])
        axis.tick_params(axis="x", labelsize=7, rotation=15)
        axis.set_ylabel(unit)
        axis.legend(fontsize=8)
    fig.suptitle("turn-taking on the conversation corpus: fixed window vs adaptive")
    fig.tight_layout()
    fig.savefig(out)


def table(results: dict[str, dict]) -> str:
    keys = list(next(iter(results.values())).keys())
    policies = list(results)
    lines = [f"{'metric':32}" + "".join(f"{p:>14}" for p in policies)]
    for key in keys:
        cells = []
        for p in policies:
            value = results[p][key]
            cells.append(f"{'-' if value is None else round(value, 3):>14}")
        lines.append(f"{key:32}" + "".join(cells))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/turns.json"))
    parser.add_argument(
        "--parallel", type=int, default=2, help="cases run at once (the simulator shares the loop)"
    )
    parser.add_argument("--micro", action="store_true", help="time the machinery per chunk too")
    parser.add_argument("--plot", type=Path, help="write the side-by-side plot (bench extra)")
    args = parser.parse_args()
    costs: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if args.micro:
            costs = micro(folder)
            for name, value in costs.items():
                print(f"{name:42} {value:10.3f}")
        cases = corpus(folder)
        results, outcomes = {}, {}
        started = time.monotonic()
        for policy in POLICIES:
            found = asyncio.run(run_policy(policy, cases, folder, args.parallel))
            outcomes[policy] = [asdict(o) for o in found]
            results[policy] = summarise(found)
    print(table(results))
    for policy, found in outcomes.items():
        for o in found:
            print(
                f"  {policy:8} {o['name']:28} "
                + ", ".join(
                    f"{k}={v if not isinstance(v, float) else round(v)}"
                    for k, v in o.items()
                    if k not in ("name", "kind") and v not in (None, False) and v != []
                )
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "summary": results,
                "cases": outcomes,
                "micro": costs,
                "machine": {"cpus": os.cpu_count(), "processor": platform.processor()},
                "seconds": time.monotonic() - started,
            },
            indent=1,
        )
    )
    print(f"results: {args.out}")
    if args.plot:
        plot(results, args.plot)
        print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
