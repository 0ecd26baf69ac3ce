"""What a load balancer in front adds per session: HAProxy and nginx (plain and with TLS)
against connecting to the bridge directly, side by side in one run.

    .venv/bin/python -m benchmarks.lb --sessions 40 --duration 10 --rounds 3 [--out FILE]

One bridge (live echo) and the balancers, each on the configuration `speakbridge lb-config`
writes, run at once; each round streams the same N bots through every path in turn (the
order rotates round by round), each bot sending a hello and 20 ms of real speech every 20 ms
and reading the echo. Measured per path: the WebSocket handshake (TCP, TLS where there is
TLS, upgrade), the round trip of a WebSocket ping every 0.5 s (the bridge answers it: what
the path adds to every frame, without the bridge's pacing), and the CPU time of the balancer
and of the bridge over the streaming window, per session. On a shared machine the absolute
numbers move with the neighbours; the ratios of one round, taken within a minute of each
other, are what to read (their median over the rounds, and the host's steal per round).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import re
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from websockets.asyncio.client import connect

from benchmarks.balancers import LoadBalancer, self_signed
from benchmarks.load import children, steal_seconds
from bridge.codecs.wav import read_wav

RATE = 16000
CHUNK = RATE // 50  # 20 ms
SPEECH = Path("/usr/share/sounds/alsa/Front_Center.wav")
PING_EVERY_S = 0.5


@dataclass
class Route:
    """One way to the bridge: a base URL, the balancer's processes (none: direct), TLS."""

    name: str
    url: str
    balancer: LoadBalancer | None = None
    tls: ssl.SSLContext | None = None


def cpu_seconds(pid: int) -> float:
    """User + system CPU of pid and the processes it started (nginx's workers)."""
    ticks = 0
    for p in [pid, *children(pid)]:
        fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def bot(path: Route, session: str, frames: list[bytes], until: float, out: dict) -> None:
    """Connect (timed), hello, then a chunk every 20 ms and a timed ping every 0.5 s."""
    started = time.perf_counter()
    async with connect(
        f"{path.url}/bots/{session}", ssl=path.tls, ping_interval=None, compression=None
    ) as ws:
        out["handshake"].append(time.perf_counter() - started)
        await ws.send(
            json.dumps(
                {"protocol_version": 2, "bot_id": session, "offset": 0.0, "sample_rate": RATE}
            )
        )
        reader = asyncio.create_task(_drain(ws))
        pinger = asyncio.create_task(_ping(ws, out["rtt"]))
        loop = asyncio.get_running_loop()
        deadline, i = loop.time(), 0
        while deadline < until:
            await ws.send(frames[i % len(frames)])
            i += 1
            deadline += 0.02
            await asyncio.sleep(max(0.0, deadline - loop.time()))
        pinger.cancel()
        reader.cancel()


async def _drain(ws) -> None:
    async for _ in ws:
        pass


async def _ping(ws, rtts: list[float]) -> None:
    while True:
        await asyncio.sleep(PING_EVERY_S)
        sent = time.perf_counter()
        await (await ws.ping())
        rtts.append(time.perf_counter() - sent)


async def step(path: Route, sessions: int, duration: float, bridge_pid: int, frames) -> dict:
    """N bots through one path; the CPU window is the streaming time after every handshake."""
    out: dict[str, list[float]] = {"handshake": [], "rtt": []}
    loop = asyncio.get_running_loop()
    until = loop.time() + duration + 2.0
    tasks = [
        asyncio.create_task(bot(path, f"{path.name}-{time.monotonic_ns()}-{i}", frames, until, out))
        for i in range(sessions)
    ]
    while len(out["handshake"]) < sessions and not any(t.done() for t in tasks):
        await asyncio.sleep(0.01)
    await asyncio.sleep(1.0)  # past the connection burst
    lb_pid = path.balancer.process.pid if path.balancer else None
    cpu0 = (cpu_seconds(bridge_pid), cpu_seconds(lb_pid) if lb_pid else 0.0, steal_seconds(None))
    wall0 = time.monotonic()
    await asyncio.sleep(duration)
    wall = time.monotonic() - wall0
    cpu1 = (cpu_seconds(bridge_pid), cpu_seconds(lb_pid) if lb_pid else 0.0, steal_seconds(None))
    await asyncio.gather(*tasks)
    return {
        "handshake_ms_p50": 1000 * statistics.median(out["handshake"]),
        "handshake_ms_p95": 1000 * percentile(out["handshake"], 0.95),
        "ping_rtt_ms_p50": 1000 * statistics.median(out["rtt"]),
        "ping_rtt_ms_p95": 1000 * percentile(out["rtt"], 0.95),
        # share of one core per session, over the window
        "bridge_cpu_per_session": (cpu1[0] - cpu0[0]) / wall / sessions,
        "lb_cpu_per_session": (cpu1[1] - cpu0[1]) / wall / sessions,
        "host_steal_share": (cpu1[2] - cpu0[2]) / wall / (os.cpu_count() or 1),
    }


def start_bridge(workdir: Path) -> tuple[subprocess.Popen, int]:
    command = [sys.executable, "-m", "bridge", "serve", "--port", "0", "--responder", "echo"]
    command += ["-o", "mode=live", "--max-sessions", "10000", "--grace-s", "0"]
    command += ["--log-level", "warning", "--trusted-proxies", "127.0.0.1"]
    log = (workdir / "bridge.log").open("w")
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, text=True)
    banner = process.stdout.readline()  # type: ignore[union-attr]
    return process, int(re.search(r":(\d+) ", banner)[1])  # type: ignore[index]


def summary(rounds: list[dict[str, dict]]) -> dict[str, dict]:
    """Per path: the median over the rounds of each number, and of its ratio to direct."""
    result: dict[str, dict] = {}
    for name in rounds[0]:
        keys = rounds[0][name]
        entry = {k: statistics.median(r[name][k] for r in rounds) for k in keys}
        for k in ("handshake_ms_p50", "ping_rtt_ms_p50", "bridge_cpu_per_session"):
            entry[f"{k}_ratio"] = statistics.median(r[name][k] / r["direct"][k] for r in rounds)
        entry["ping_rtt_ms_p50_added"] = statistics.median(
            r[name]["ping_rtt_ms_p50"] - r["direct"]["ping_rtt_ms_p50"] for r in rounds
        )
        result[name] = entry
    return result


async def run(args: argparse.Namespace) -> dict:
    frames_audio = read_wav(SPEECH, RATE)[0]
    frames = [
        frames_audio[i : i + CHUNK].tobytes() for i in range(0, len(frames_audio) - CHUNK, CHUNK)
    ]
    with tempfile.TemporaryDirectory(prefix="speakbridge-lb-") as tmp:
        workdir = Path(tmp)
        bridge, port = start_bridge(workdir)
        cert, _key = self_signed(workdir)
        combined = workdir / "combined.pem"
        context = ssl.create_default_context(cafile=str(cert))
        backend = [f"127.0.0.1:{port}"]
        balancers = {
            "haproxy": LoadBalancer("haproxy", backend, workdir / "haproxy"),
            "haproxy-tls": LoadBalancer("haproxy", backend, workdir / "haproxy-tls", combined),
            "nginx": LoadBalancer("nginx", backend, workdir / "nginx"),
            "nginx-tls": LoadBalancer("nginx", backend, workdir / "nginx-tls", combined),
        }
        paths = [Route("direct", f"ws://127.0.0.1:{port}")] + [
            Route(name, lb.ws, lb, context if name.endswith("tls") else None)
            for name, lb in balancers.items()
        ]
        rounds: list[dict[str, dict]] = []
        try:
            await asyncio.sleep(2.5)  # HAProxy's health checks see the bridge up
            for r in range(args.rounds):
                order = paths[r % len(paths) :] + paths[: r % len(paths)]
                results = {}
                for path in order:
                    results[path.name] = await step(
                        path, args.sessions, args.duration, bridge.pid, frames
                    )
                    print(f"round {r + 1} {path.name}: {results[path.name]}", flush=True)
                rounds.append(results)
        finally:
            for lb in balancers.values():
                lb.stop()
            bridge.terminate()
            bridge.wait(10)
    return {
        "benchmark": "lb",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {
            "host": platform.node(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "haproxy": _version(["haproxy", "-v"]),
            "nginx": _version(["nginx", "-v"]),
        },
        "settings": vars(args) | {"chunk_ms": 20, "rate": RATE, "ping_every_s": PING_EVERY_S},
        "rounds": rounds,
        "summary": summary(rounds),
    }


def _version(command: list[str]) -> str:
    done = subprocess.run(command, capture_output=True, text=True)
    return (done.stdout + done.stderr).splitlines()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=40)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args()
    result = asyncio.run(run(args))
    print(json.dumps(result["summary"], indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
