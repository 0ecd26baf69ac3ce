"""End of turn to first audible sample: the `realtime` responder against the `agent` chain.

    .venv/bin/python -m benchmarks.realtime_latency [--turns 6] [--rounds 3] [--out FILE.json]

Both run in the real bridge, on loopback, against the test suite's fake servers (the fake
Realtime server; the fake OpenAI API for the agent's transcription, chat and speech), which
answer at once: what is measured is what each chain itself waits for. The simulated bot speaks
the ALSA recordings, one turn at a time; a turn's latency is from its last chunk sent to the
first reply chunk received. Both include the bridge's VAD stop window (vad_stop_ms), which
ends a turn. Chains alternate round by round, so a noisy host weighs on both.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import logging
import os
import platform
import socket
import statistics
from pathlib import Path

from bridge.cli import responder_factories
from bridge.config import BridgeConfig
from bridge.server.server import BridgeServer
from bridge.sim.simulator import SimulatorOptions, simulate
from tests.fake_openai import FakeOpenAI
from tests.fake_realtime import API_KEY, FakeRealtime

RECORDINGS = ["Front_Left", "Rear_Right"]  # one turn each for the VAD: no pause within
REPLY = "Sure, here it is."
REPLY_S = 0.5
CHAINS = ("realtime", "agent")


async def run_turns(
    responder: str, options: list[str], turns: int, vad_stop_ms: int
) -> list[float]:
    """One simulated call of `turns` turns; the latency of each turn's reply, in ms."""
    config = BridgeConfig(port=0, grace_s=1.0, vad_stop_ms=vad_stop_ms)
    server = BridgeServer(config, responder_factories([responder], options))
    await server.start()
    try:
        wavs = [
            f"/usr/share/sounds/alsa/{RECORDINGS[i % len(RECORDINGS)]}.wav" for i in range(turns)
        ]
        opts = SimulatorOptions(lead_in_s=0.3, gap_s=2.5, listen_s=0.5)
        report = await simulate([f"ws://127.0.0.1:{server.port}/bots/bench"], wavs, opts)
    finally:
        await server.close()
    latencies = [u.reply_latency_ms for u in report.utterances]
    if None in latencies:
        raise RuntimeError(f"{responder}: a turn got no reply:\n{report}")
    return [float(v) for v in latencies if v is not None]


async def realtime_round(turns: int, vad_stop_ms: int) -> list[float]:
    async with FakeRealtime([(REPLY, REPLY_S)] * turns, ["a question"] * turns) as api:
        options = [f"base_url={api.base_url}", f"api_key={API_KEY}", "model=bench"]
        latencies = await run_turns("realtime", options, turns, vad_stop_ms)
        if api.errors:
            raise RuntimeError(f"the fake Realtime server refused events: {api.errors}")
    return latencies


async def agent_round(turns: int, vad_stop_ms: int) -> list[float]:
    with FakeOpenAI(["a question"] * turns, [REPLY] * turns, speech_s=REPLY_S) as api:
        options = [
            f"base_url={api.base_url}",
            f"api_key={API_KEY}",
            "chat_model=bench",
            "stt=api",
            "tts=api",
        ]
        return await run_turns("agent", options, turns, vad_stop_ms)


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "turns": len(ordered),
        "median_ms": round(statistics.median(ordered), 1),
        "p90_ms": round(ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))], 1),
        "min_ms": round(ordered[0], 1),
        "max_ms": round(ordered[-1], 1),
    }


async def bench(turns: int, rounds: int, vad_stop_ms: int) -> dict[str, list[float]]:
    results: dict[str, list[float]] = {chain: [] for chain in CHAINS}
    for n in range(rounds):
        order = CHAINS if n % 2 == 0 else CHAINS[::-1]
        for chain in order:
            run = realtime_round if chain == "realtime" else agent_round
            latencies = await run(turns, vad_stop_ms)
            results[chain] += latencies
            print(f"round {n + 1} {chain}: " + ", ".join(f"{v:.0f}" for v in latencies) + " ms")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--turns", type=int, default=6, help="turns per simulated call")
    parser.add_argument("--rounds", type=int, default=3, help="calls per chain")
    parser.add_argument("--vad-stop-ms", type=int, default=500, help="the bridge's VAD stop window")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # the simulator's analysis trips the watchdog
    results = asyncio.run(bench(args.turns, args.rounds, args.vad_stop_ms))
    summaries = {chain: summary(values) for chain, values in results.items()}
    for chain, s in summaries.items():
        print(
            f"{chain:>8}: median {s['median_ms']:.0f} ms, p90 {s['p90_ms']:.0f} ms "
            f"(min {s['min_ms']:.0f}, max {s['max_ms']:.0f}; {s['turns']} turns)"
        )
    if args.out:
        document = {
            "date": datetime.date.today().isoformat(),
            "machine": {
                "host": socket.gethostname(),
                "cpus": os.cpu_count(),
                "machine": platform.machine(),
                "python": platform.python_version(),
            },
            "vad_stop_ms": args.vad_stop_ms,
            "reply_s": REPLY_S,
            "summary": summaries,
            "latencies_ms": {chain: [round(v, 1) for v in vs] for chain, vs in results.items()},
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(document, indent=2) + "\n")
        print(f"written to {args.out}")


if __name__ == "__main__":
    main()
