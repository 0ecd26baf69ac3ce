"""A/B: the load ramp against several revisions of the bridge, alternating on one machine.

    nice -n -10 .venv/bin/python -m benchmarks.ab 02d1bd1 HEAD --rounds 4 --out FILE -- \\
        --ramp 100 --duration 15 --warmup 3

A shared VM's capacity drifts with the host's load by more than most changes are worth, so
two ramps an hour apart say little about a change. Here each revision runs from its own git
worktree (`.` is the working tree as it is, uncommitted changes included), one ramp each
round, the order reversed every other round (A B, B A, A B...) so that a drift weighs on
every revision alike. The summary gives, per revision and step, the median server CPU share
with its range over the rounds; its ratio to the first revision's, of the medians and round
by round (a pair runs minutes apart: the tighter measure); the median p99 latencies, the
underruns and how many rounds passed. Everything after `--` goes to benchmarks.load;
`--args REVISION="..."` adds arguments for one revision's ramps only (a setting weighed
against another revision's default: `--args HEAD="--prebuffer-ms 60"`).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import shlex
import statistics
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

from benchmarks.load import machine

WORKING_TREE = "."


def git(*args: str, cwd: Path | None = None) -> str:
    """Run git; its stdout, stripped (raises with git's message when it fails)."""
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"git {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout.strip()


def resolve(revision: str, root: Path) -> str:
    """A revision's short commit hash, or `.` for the working tree."""
    if revision == WORKING_TREE:
        return WORKING_TREE
    return git("rev-parse", "--short=7", "--verify", f"{revision}^{{commit}}", cwd=root)


@contextlib.contextmanager
def checkouts(commits: list[str], root: Path) -> Iterator[dict[str, Path]]:
    """A detached worktree per commit (the working tree runs from root); all removed after."""
    with tempfile.TemporaryDirectory(prefix="speakbridge-ab-") as scratch:
        trees: dict[str, Path] = {}
        try:
            for commit in commits:
                if commit == WORKING_TREE:
                    trees[commit] = root
                else:  # main() refuses a commit named twice
                    trees[commit] = Path(scratch) / commit
                    git("worktree", "add", "--detach", str(trees[commit]), commit, cwd=root)
                    build_extensions(trees[commit], Path(scratch))
            yield trees
        finally:
            for commit, tree in trees.items():
                if commit != WORKING_TREE:
                    git("worktree", "remove", "--force", str(tree), cwd=root)


def build_extensions(tree: Path, scratch: Path) -> None:
    """Compile a checkout's C extensions into it, as its editable install would: pip builds
    its wheel (isolated, with the setuptools its pyproject asks for) and the compiled
    modules are copied beside their sources. A checkout without any is left as it is."""
    if not any(tree.glob("bridge/**/*.c")):
        return
    wheels = scratch / f"wheel-{tree.name}"
    pip = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(wheels)]
    subprocess.run([*pip, str(tree)], check=True, capture_output=True)
    for wheel in wheels.glob("*.whl"):
        with zipfile.ZipFile(wheel) as archive:
            for name in archive.namelist():
                if name.endswith(".so"):
                    (tree / name).write_bytes(archive.read(name))


def order(revisions: list[str], round_index: int) -> list[str]:
    """The revisions in the order one round runs them: reversed every other round."""
    return revisions if round_index % 2 == 0 else revisions[::-1]


def run_ramp(tree: Path, load_args: list[str], out: Path) -> dict:
    """One benchmarks.load run from the given tree (its bridge, its generator); its result."""
    command = [sys.executable, "-m", "benchmarks.load", *load_args, "--out", str(out)]
    subprocess.run(command, cwd=tree, check=True)
    return json.loads(out.read_text())


def summarize(runs: list[dict], revisions: list[str]) -> dict[str, dict[str, dict]]:
    """Per revision and step: medians over the rounds, the CPU range, and the CPU ratio to
    the first revision, of the medians and round by round (the pairs ran minutes apart,
    so the host's drift weighs on them least)."""
    by_step: dict[str, dict[int, dict[int, dict]]] = {r: {} for r in revisions}
    for run in runs:
        for step in run["steps"]:
            by_step[run["revision"]].setdefault(step["sessions"], {})[run["round"]] = step
    summary = {
        revision: {
            str(n): step_summary(list(rounds.values())) for n, rounds in sorted(steps.items())
        }
        for revision, steps in by_step.items()
    }
    first = by_step[revisions[0]]
    for revision, steps in by_step.items():
        for n, rounds in steps.items():
            if n not in first:
                continue
            step = summary[revision][str(n)]
            step["cpu_ratio_to_first"] = round(
                step["cpu_median"] / summary[revisions[0]][str(n)]["cpu_median"], 3
            )
            paired = [
                rounds[r]["server_cpu_core_share"] / first[n][r]["server_cpu_core_share"]
                for r in rounds
                if r in first[n]
            ]
            step["cpu_ratio_in_round"] = {
                "median": round(statistics.median(paired), 3),
                "min": round(min(paired), 3),
                "max": round(max(paired), 3),
            }
    return summary


def step_summary(steps: list[dict]) -> dict:
    """One step over the rounds: CPU median and range, median p99s, underruns, passes."""
    cpu = [s["server_cpu_core_share"] for s in steps]
    added = [s["added_latency_ms"]["p99"] for s in steps if s.get("added_latency_ms")]
    round_trip = [s["round_trip_ms"]["p99"] for s in steps if s.get("round_trip_ms")]
    return {
        "rounds": len(steps),
        "cpu_median": round(statistics.median(cpu), 3),
        "cpu_min": min(cpu),
        "cpu_max": max(cpu),
        "added_p99_ms_median": round(statistics.median(added), 3) if added else None,
        "round_trip_p99_ms_median": round(statistics.median(round_trip), 2) if round_trip else None,
        "underruns": [s["underruns"] for s in steps],
        "host_steal_share": [s.get("host_steal_share") for s in steps],  # the host's noise
        "passed": sum(s["passed"] for s in steps),
    }


def table(summary: dict[str, dict[str, dict]]) -> str:
    """The summary as a plain-text table, a line per revision and step."""
    lines = [
        f"{'revision':<9} {'sessions':>8}  {'cpu median (range)':<19} "
        f"{'ratio in round (range)':<22}  {'added p99':>9}  {'rtt p99':>7}  underruns  passed"
    ]
    for revision, steps in summary.items():
        for n, s in steps.items():
            spread = f"{s['cpu_median']:.3f} ({s['cpu_min']:.2f}-{s['cpu_max']:.2f})"
            paired = s.get("cpu_ratio_in_round")
            ratio = (
                "-"
                if paired is None
                else (f"{paired['median']:.3f} ({paired['min']:.3f}-{paired['max']:.3f})")
            )
            lines.append(
                f"{revision:<9} {n:>8}  {spread:<19} {ratio:<22}  "
                f"{s['added_p99_ms_median']!s:>9}  {s['round_trip_p99_ms_median']!s:>7}  "
                f"{s['underruns']}  {s['passed']}/{s['rounds']}"
            )
    return "\n".join(lines)


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """This script's arguments, and benchmarks.load's (after `--`)."""
    split = argv.index("--") if "--" in argv else len(argv)
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("revisions", nargs="+", help="git revisions, or . for the working tree")
    parser.add_argument("--rounds", type=int, default=4, help="ramps per revision")
    parser.add_argument("--label", action="append", default=[], help="REVISION=what it is")
    parser.add_argument(
        "--args",
        action="append",
        default=[],
        help='REVISION="ARGS": more benchmarks.load arguments for that revision only',
    )
    parser.add_argument("--out", type=Path, help="write the runs and the summary here (JSON)")
    args = parser.parse_args(argv[:split])
    load_args = argv[split + 1 :]
    if len(args.revisions) < 2:
        parser.error("give at least two revisions to compare")
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if "--out" in load_args:
        parser.error("benchmarks.load's --out is set per run; give --out before --")
    return args, load_args


def revision_args(given: list[str], resolved: dict[str, str], root: Path) -> dict[str, list[str]]:
    """--args REVISION="ARGS" as {commit: [arg, ...]}, for revisions being compared."""
    extra: dict[str, list[str]] = {}
    for item in given:
        name, _, text = item.partition("=")
        commit = resolved.get(name) or resolve(name, root)
        if commit not in resolved.values():
            raise SystemExit(f"--args {item!r}: {name} is not one of the revisions compared")
        if "--out" in (words := shlex.split(text)):
            raise SystemExit("benchmarks.load's --out is set per run")
        extra[commit] = words
    return extra


def main(argv: list[str] | None = None) -> dict:
    args, load_args = parse_args(sys.argv[1:] if argv is None else argv)
    root = Path(git("rev-parse", "--show-toplevel"))
    revisions = [resolve(r, root) for r in args.revisions]
    if len(set(revisions)) < len(revisions):
        raise SystemExit(f"revisions {args.revisions} name the same commit twice: {revisions}")
    labels = dict(label.split("=", 1) for label in args.label)
    extra = revision_args(args.args, dict(zip(args.revisions, revisions, strict=True)), root)
    runs = []
    with checkouts(revisions, root) as trees, tempfile.TemporaryDirectory() as scratch:
        for round_index in range(args.rounds):
            for revision in order(revisions, round_index):
                print(f"round {round_index + 1}/{args.rounds}: {revision}", flush=True)
                ramp_args = [*load_args, *extra.get(revision, [])]
                result = run_ramp(trees[revision], ramp_args, Path(scratch) / "run.json")
                runs.append(
                    {
                        "revision": revision,
                        "round": round_index + 1,
                        "steps": result["servers"]["speakbridge"]["steps"],
                        "max_passing_sessions": result["max_passing_sessions"],
                    }
                )
    summary = summarize(runs, revisions)
    print(table(summary))
    report = {
        "benchmark": "ab",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "revisions": {
            r: labels.get(given, labels.get(r, ""))
            for r, given in zip(revisions, args.revisions, strict=True)
        },
        "load_args": load_args,
        "revision_args": extra,
        "rounds": args.rounds,
        "summary": summary,
        "runs": runs,
    }
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
        print(f"written to {args.out}")
    return report


if __name__ == "__main__":
    main()
