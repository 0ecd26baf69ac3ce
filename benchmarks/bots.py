"""The fidelity matrix: every bot generation x rate x one socket or two, against a real bridge.

Each cell is a simulated bot (bridge.sim) speaking an ALSA recording to a bridge running the
echo responder on loopback; it reports what the bot heard back (echo correlation and delay,
underruns) and what the bridge made of it (its rate, audio in against audio sent).

    python -m benchmarks.bots --out benchmarks/results/bots.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
from pathlib import Path

from benchmarks.load import machine
from bridge.cli import responder_factories
from bridge.config import BridgeConfig
from bridge.server.server import BridgeServer
from bridge.sim.simulator import SimulatorOptions, simulate
from bridge.wire.protocol import SUPPORTED_RATES

RECORDING = "/usr/share/sounds/alsa/Front_Left.wav"
GENERATIONS = ("gen1", "gen3", "v2")


async def cell(server: BridgeServer, generation: str, rate: int, split: bool) -> dict:
    """One generation at one rate: what the bot heard, and what the bridge counted."""
    session_id = f"{generation}-{rate}-{'split' if split else 'dual'}"
    base = f"ws://127.0.0.1:{server.port}/bots/{session_id}"
    urls = [f"{base}/output", f"{base}/input"] if split else [base]
    opts = SimulatorOptions(bot=generation, sample_rate=rate, lead_in_s=0.3, gap_s=2.5)
    report = await simulate(urls, [RECORDING], opts)
    session = server.sessions.sessions[session_id]
    (utterance,) = report.utterances
    return {
        "generation": generation,
        "rate": rate,
        "sockets": "split" if split else "dual",
        "session_rate": session.sample_rate,
        "sent_s": round(report.bytes_sent / 2 / rate, 3),
        "bridge_heard_s": round(session.position_ms() / 1000, 3),
        "echo_correlation": round(utterance.echo_correlation or 0.0, 4),
        "echo_delay_ms": round(utterance.echo_delay_ms or 0.0, 1),
        "underruns": report.underruns,
        "phase": session.phase,
    }


async def matrix() -> list[dict]:
    server = BridgeServer(BridgeConfig(port=0), responder_factories(["echo"], []))
    await server.start()
    try:
        return [
            await cell(server, generation, rate, split)
            for generation in GENERATIONS
            for rate in SUPPORTED_RATES
            for split in (False, True)
        ]
    finally:
        await server.close()


def table(rows: list[dict]) -> str:
    """The matrix as a markdown table."""
    head = "| generation | rate | sockets | session rate | sent s | heard s | echo corr | delay ms"
    lines = [head + " |", "|" + "---|" * 8]
    for r in rows:
        lines.append(
            f"| {r['generation']} | {r['rate']} | {r['sockets']} | {r['session_rate']} | "
            f"{r['sent_s']} | {r['bridge_heard_s']} | {r['echo_correlation']} | "
            f"{r['echo_delay_ms']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="write the matrix and the machine as JSON")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    rows = asyncio.run(matrix())
    print(table(rows))
    if args.out:
        args.out.write_text(json.dumps({"machine": machine(), "cells": rows}, indent=1) + "\n")
        print(f"written to {args.out}")


if __name__ == "__main__":
    main()
