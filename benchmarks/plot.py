"""Plot a load result (added latency percentiles and server CPU against concurrent sessions)
or a capacity result (one panel per framing: CPU per step, sustained or not, both servers).

.venv/bin/python -m benchmarks.plot benchmarks/results/FILE.json [--out FILE.png]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.ticker import NullFormatter, ScalarFormatter

COLOURS = {  # server kinds a load result may hold
    "speakbridge": "tab:blue",
    "speakbridge_paired": "tab:purple",  # capacity's ramp at a 60 ms prebuffer
    "pipecat": "tab:orange",
    "floor-websockets": "tab:grey",
    "floor-picows": "tab:green",
}


def spaced(sizes: list[int], factor: float = 1.5) -> list[int]:
    """The step sizes to label on a log axis: each at least factor times the one before,
    the largest always (700, 800, 900 and 1000 would print over each other)."""
    labelled: list[int] = []
    for size in sizes[:-1]:
        if not labelled or size >= labelled[-1] * factor:
            labelled.append(size)
    while labelled and sizes and labelled[-1] * factor > sizes[-1]:
        labelled.pop()
    return labelled + sizes[-1:]


def p99(measure: dict | None) -> float:
    """A step's p99, or a gap in the line where the step could not give one (frames dropped)."""
    return float("nan") if measure is None else measure["p99"]


def plot(result: dict, out: Path) -> None:
    """Write a PNG: latency (left axis, log) and server CPU (right axis) per server kind."""
    fig, latency_axis = plt.subplots(figsize=(8, 4.5), dpi=120)
    cpu_axis = latency_axis.twinx()
    for kind, colour in COLOURS.items():
        steps = result["servers"].get(kind, {}).get("steps", [])
        steps = [s for s in steps if "failure" not in s]  # an unanswered step has no figures
        if not steps:
            continue
        n = [s["sessions"] for s in steps]
        if steps[0]["added_latency_ms"] is not None:
            latency_axis.plot(
                n,
                [p99(s["added_latency_ms"]) for s in steps],
                "s-",
                color=colour,
                label=f"{kind} added p99",
            )
        latency_axis.plot(
            n,
            [p99(s["round_trip_ms"]) for s in steps],
            "^--",
            color=colour,
            label=f"{kind} round trip p99",
        )
        cpu_axis.plot(
            n,
            [100 * s["server_cpu_core_share"] for s in steps],
            "o:",
            color=colour,
            label=f"{kind} CPU",
        )
    latency_axis.axhline(5, color="grey", linestyle=":", label="5 ms")
    latency_axis.set_yscale("log")
    latency_axis.set_xlabel(f"concurrent sessions ({result['rate'] // 1000} kHz, echo per frame)")
    latency_axis.set_ylabel("latency (ms, log)")
    cpu_axis.set_ylabel("server CPU (% of its one core)")
    cpu_axis.set_ylim(0, 105)
    lines, labels = latency_axis.get_legend_handles_labels()
    more_lines, more_labels = cpu_axis.get_legend_handles_labels()
    latency_axis.legend(lines + more_lines, labels + more_labels, loc="upper left", fontsize=7)
    machine = result["machine"]
    latency_axis.set_title(
        f"{machine['cores']} x {machine['cpu']}: speakbridge passes "
        f"{result['max_passing_sessions']} sessions on one core",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(out)


def cpu_pct(step: dict) -> float:
    """A step's server CPU in %; one the server could not answer (swamped) is drawn at 100."""
    return 100 * step.get("server_cpu_core_share", 1.0)


def plot_capacity(result: dict, out: Path) -> None:
    """Write a PNG: per framing, each server's CPU at every step; a filled marker is a
    sustained step, a cross the first that was not."""
    framings = result["framings"]
    fig, axes = plt.subplots(1, len(framings), figsize=(4 * len(framings), 4), dpi=120)
    axes = axes if len(framings) > 1 else [axes]
    rows = {row["framing"]: row for row in result["summary"]}
    for axis, (name, framing) in zip(axes, framings.items(), strict=True):
        for kind, ramp in framing["servers"].items():
            colour = COLOURS[kind]
            steps = ramp["steps"]
            n = [s["sessions"] for s in steps]
            axis.plot(n, [cpu_pct(s) for s in steps], ":", color=colour)
            for s in steps:
                axis.plot(
                    s["sessions"],
                    cpu_pct(s),
                    "o" if s["sustained"] else "x",
                    color=colour,
                    markersize=6 if s["sustained"] else 9,
                )
            axis.plot([], [], "o:", color=colour, label=f"{kind}: {ramp['max_sustained_sessions']}")
        axis.axhline(90, color="grey", linestyle=":")
        axis.set_xscale("log")
        axis.xaxis.set_major_formatter(ScalarFormatter())
        axis.xaxis.set_minor_formatter(NullFormatter())
        sizes = {s["sessions"] for r in framing["servers"].values() for s in r["steps"]}
        axis.set_xticks(spaced(sorted(sizes)))
        axis.set_ylim(0, 105)
        axis.set_xlabel("concurrent sessions (log)")
        axis.set_title(f"{name} ({framing['bot']}): sustained", fontsize=9)
        axis.legend(loc="lower right", fontsize=7)
        if name in rows and rows[name].get("ratio"):
            axis.text(0.03, 0.93, f"{rows[name]['ratio']}x pipecat", transform=axis.transAxes)
    axes[0].set_ylabel("server CPU (% of its one core)")
    machine = result["machine"]
    fig.suptitle(
        f"{machine['cores']} x {machine['cpu']}, one core for the server\n"
        "o sustained, x not (underrun, drop, late tick or CPU > 90 %)",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("result", type=Path)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    out = args.out or args.result.with_suffix(".png")
    result = json.loads(args.result.read_text())
    (plot_capacity if result["benchmark"] == "capacity" else plot)(result, out)
    print(f"written to {out}")


if __name__ == "__main__":
    main()
