"""Capacity at the framings real bots use: sessions a core at 100, 20 and 10 ms, pipecat beside.

    .venv/bin/python -m benchmarks.capacity --duration 15 --out FILE.json [--no-peer]

For each framing, benchmarks/load.py ramps speakbridge (pinned to one core, live echo) and
then the pipecat peer, each ramp stopping at its first unsustained step; the framings are
bot generations (bridge/sim/generations.py): 100 ms is v2's chunks, 10 ms today's bot
(gen3), 20 ms the custom profile. At 20 and 10 ms speakbridge also runs at a 60 ms prebuffer
(`speakbridge_paired`): the bot then has 40 ms left as each frame comes, room for a frame to
wait for the next and go with it, two frames a message (bridge/server/playout.py); the echo
reaches the bot 60 ms later than at the default ramp's prebuffer of 0, not later than it
plays. First, the generator drives --generator-check sessions of
100 ms chunks into the plainest echo (picows, benchmarks/floor.py): if it keeps time there,
a failing step below is the server's. The summary table is printed and kept in the JSON.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
from pathlib import Path

from benchmarks import load
from bridge.server import loops


def parse_ramp(text: str) -> list[int]:
    return [int(n) for n in text.split(",")]


PAIRED_PREBUFFER_MS = 60.0  # two 20 ms frames a message: 40 ms left as a frame comes
FRAMINGS = {  # name: (bot generation, chunk ms), speakbridge's ramp, pipecat's ramp
    "100 ms": (
        ("v2", 100),
        "50,200,400,800,1000,1200,1600,2000,2500",
        "25,50,100,150,200,300",
    ),
    "20 ms": (
        ("custom", 20),
        "25,100,200,300,400,500,600,700,800,1000,1200,1400",
        "10,25,50,75,100,150",
    ),
    "10 ms": (("gen3", 10), "25,100,200,300,400,500,600,700,800,1000", "10,25,50,75,100"),
}


def load_args(
    bot: str, chunk_ms: int, ramp: list[int], args: argparse.Namespace, prebuffer_ms: float = 0.0
) -> argparse.Namespace:
    """benchmarks.load's options for one ramp of this run."""
    argv = ["--bot", bot, "--chunk-ms", str(chunk_ms), "--ramp", ",".join(map(str, ramp))]
    argv += ["--duration", str(args.duration), "--warmup", str(args.warmup), "--stop-on-fail"]
    argv += ["--prebuffer-ms", str(prebuffer_ms)]
    return load.parse_args(argv)


async def generator_check(sessions: int, args: argparse.Namespace) -> dict:
    """The generator alone at 100 ms chunks against the picows floor echo: its CPU and lateness."""
    check = await load.ramp("floor-picows", load_args("v2", 100, [sessions], args))
    step = check["steps"][0]
    keys = ("sessions", "generator_kept_time", "late_ticks", "generator_late_ms")
    keys += ("generator_longest_tick_ms", "generator_cpu_core_share", "generator_steal_share")
    keys += ("underruns", "round_trip_ms", "server_cpu_core_share")
    keys += ("others_on_server_core_share", "others_on_generator_core_share")
    return {key: step[key] for key in keys}


def failure(step: dict) -> list[str]:
    """Why a step was not sustained; "late ticks" means the generator fell behind."""
    if "failure" in step:  # no figures: the server did not answer
        return [step["failure"]]
    reasons = [
        name
        for name, key in (
            ("underruns", "underruns"),
            ("dropped", "dropped"),
            ("late ticks", "late_ticks"),
            ("lost connections", "connections_lost"),
        )
        if step.get(key)
    ]
    if step["server_cpu_core_share"] >= load.SUSTAINED_CPU_SHARE:
        reasons.append("CPU")
    return reasons


def summary_row(name: str, servers: dict) -> dict:
    """One framing's line: the largest sustained step of each server and its CPU there."""
    row: dict = {"framing": name}
    for kind, ramp in servers.items():
        sustained = ramp["max_sustained_sessions"]
        at = [s for s in ramp["steps"] if s["sessions"] == sustained and s["sustained"]]
        row[f"{kind}_sustained"] = sustained
        row[f"{kind}_cpu"] = at[0]["server_cpu_core_share"] if at else None
        failed = [s for s in ramp["steps"] if not s["sustained"]]
        row[f"{kind}_failed_at"] = failed[0]["sessions"] if failed else None
        row[f"{kind}_failed_by"] = failure(failed[0]) if failed else None
    # other processes on the server's core in the busiest step: a shared machine's noise
    row["others_on_server_core_max"] = max(
        (s.get("others_on_server_core_share") or 0.0 for r in servers.values() for s in r["steps"]),
        default=0.0,
    )
    if servers.get("pipecat") and row.get("pipecat_sustained"):
        best = max(row["speakbridge_sustained"], row.get("speakbridge_paired_sustained") or 0)
        row["ratio"] = round(best / row["pipecat_sustained"], 1)
    return row


def table(rows: list[dict]) -> str:
    """The summary in Markdown: framing | speakbridge sustained | CPU | pipecat sustained."""

    def cell(row: dict, kind: str) -> str:
        if f"{kind}_sustained" not in row:
            return "not run"
        failed, by = row[f"{kind}_failed_at"], row.get(f"{kind}_failed_by") or []
        why = f": {', '.join(by)}" if by else ""
        return f"{row[f'{kind}_sustained']}" + (f" (fails at {failed}{why})" if failed else "")

    def cpu(row: dict, kind: str) -> str:
        share = row.get(f"{kind}_cpu")
        return f"{100 * share:.0f} %" if share is not None else "-"

    lines = [
        "| framing | speakbridge sustained | CPU | 60 ms prebuffer | CPU | pipecat sustained |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        paired = cell(row, "speakbridge_paired") if "speakbridge_paired_sustained" in row else "-"
        lines.append(
            f"| {row['framing']} | {cell(row, 'speakbridge')} | {cpu(row, 'speakbridge')} "
            f"| {paired} | {cpu(row, 'speakbridge_paired')} | {cell(row, 'pipecat')} |"
        )
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> dict:
    os.sched_setaffinity(0, {load.GENERATOR_CORE})
    result: dict = {
        "benchmark": "capacity",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": load.machine(),
        "rate": 24000,
        "duration_s": args.duration,
        "responder": "echo -o mode=live (speakbridge, VAD on), pipecat frame echo",
        "criteria": "sustained: no player underrun, nothing dropped, no late generator tick, "
        "no connection lost, server CPU under 90 % of its one core",
    }
    if args.generator_check:
        result["generator_check"] = await generator_check(args.generator_check, args)
        print("generator check:", json.dumps(result["generator_check"]), flush=True)
    framings, rows = {}, []
    for name in args.framing:
        (bot, chunk_ms), ours, peers = FRAMINGS[name]
        ours, peers = args.speakbridge_ramp or ours, args.pipecat_ramp or peers
        servers = {
            "speakbridge": await load.ramp(
                "speakbridge", load_args(bot, chunk_ms, parse_ramp(ours), args)
            )
        }
        if chunk_ms < 40:  # a frame at a time: a 60 ms prebuffer pairs them
            paired = load_args(bot, chunk_ms, parse_ramp(ours), args, PAIRED_PREBUFFER_MS)
            servers["speakbridge_paired"] = await load.ramp("speakbridge", paired)
        if args.peer:
            servers["pipecat"] = await load.ramp(
                "pipecat", load_args(bot, chunk_ms, parse_ramp(peers), args)
            )
        framings[name] = {"bot": bot, "chunk_ms": chunk_ms, "servers": servers}
        rows.append(summary_row(name, servers))
    result["framings"] = framings
    result["summary"] = rows
    result["table"] = table(rows)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=15.0, help="measured seconds a step")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument(
        "--framing", action="append", choices=list(FRAMINGS), help="repeat; default: all three"
    )
    parser.add_argument(
        "--no-peer", dest="peer", action="store_false", help="skip pipecat (the `peer` extra)"
    )
    parser.add_argument(
        "--generator-check",
        type=int,
        default=2000,
        help="sessions the generator drives into the floor echo first (0: skip)",
    )
    parser.add_argument("--speakbridge-ramp", help="N,N,... for every framing, not its own")
    parser.add_argument("--pipecat-ramp", help="N,N,... for every framing, not its own")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.peer and importlib.util.find_spec("pipecat") is None:
        parser.error("pipecat is not installed: pip install -e '.[peer]' (as make bench does)")
    args.framing = args.framing or list(FRAMINGS)
    result = loops.run(main_async(args))
    print(result["table"])
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"written to {args.out}")


if __name__ == "__main__":
    main()
