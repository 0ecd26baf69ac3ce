"""Plot a load result: added latency percentiles and server CPU against concurrent sessions.

.venv/bin/python -m benchmarks.plot benchmarks/results/FILE.json [--out FILE.png]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def plot(result: dict, out: Path) -> None:
    """Write a PNG with latency (left axis) and CPU share of one core (right axis)."""
    steps = result["steps"]
    n = [s["sessions"] for s in steps]
    fig, latency_axis = plt.subplots(figsize=(8, 4.5), dpi=120)
    latency_axis.plot(n, [s["added_latency_ms"]["p50"] for s in steps], "o-", label="added p50")
    latency_axis.plot(n, [s["added_latency_ms"]["p99"] for s in steps], "s-", label="added p99")
    latency_axis.plot(n, [s["round_trip_ms"]["p99"] for s in steps], "^--", label="round trip p99")
    latency_axis.axhline(5, color="grey", linestyle=":", label="p99 limit 5 ms")
    latency_axis.set_yscale("log")
    latency_axis.set_xlabel("concurrent sessions (24 kHz, live echo)")
    latency_axis.set_ylabel("latency (ms)")
    cpu_axis = latency_axis.twinx()
    cpu_axis.plot(
        n,
        [100 * s["server_cpu_core_share"] for s in steps],
        "d-",
        color="tab:red",
        label="server CPU",
    )
    cpu_axis.set_ylabel("server CPU (% of one core)")
    cpu_axis.set_ylim(0, 105)
    lines = latency_axis.get_legend_handles_labels()
    more = cpu_axis.get_legend_handles_labels()
    latency_axis.legend(lines[0] + more[0], lines[1] + more[1], loc="upper left", fontsize=8)
    machine = result["machine"]
    passing = result["max_passing_sessions"]
    latency_axis.set_title(
        f"speakbridge on {machine['cores']} x {machine['cpu']}: {passing} sessions pass", fontsize=9
    )
    fig.tight_layout()
    fig.savefig(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("result", type=Path)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    out = args.out or args.result.with_suffix(".png")
    plot(json.loads(args.result.read_text()), out)
    print(f"written to {out}")


if __name__ == "__main__":
    main()
