"""The A/B runner: alternating order, the summary's arithmetic, and a real run of two
revisions (a worktree of HEAD and the working tree) that leaves no worktree behind."""

import json
from pathlib import Path

import pytest

from benchmarks.ab import git, main, order, summarize

ROOT = Path(__file__).resolve().parents[2]


def step(sessions, cpu, added_p99=1.0, rtt_p99=2.0, underruns=0, passed=True, steal=0.001):
    return {
        "sessions": sessions,
        "host_steal_share": steal,
        "server_cpu_core_share": cpu,
        "added_latency_ms": {"p99": added_p99},
        "round_trip_ms": {"p99": rtt_p99} if rtt_p99 is not None else None,
        "underruns": underruns,
        "passed": passed,
    }


def test_every_other_round_runs_the_revisions_in_reverse():
    assert [order(["a", "b", "c"], r) for r in range(3)] == [
        ["a", "b", "c"],
        ["c", "b", "a"],
        ["a", "b", "c"],
    ]


def test_the_summary_takes_medians_over_rounds_and_ratios_to_the_first_revision():
    runs = [
        {"revision": "a", "round": 1, "steps": [step(100, 0.80, added_p99=4.0), step(50, 0.40)]},
        {"revision": "b", "round": 1, "steps": [step(100, 0.60, underruns=3, passed=False)]},
        {"revision": "b", "round": 2, "steps": [step(100, 0.72, rtt_p99=None), step(50, 0.20)]},
        {"revision": "a", "round": 2, "steps": [step(100, 0.90, added_p99=2.0), step(50, 0.50)]},
        {"revision": "a", "round": 3, "steps": [step(100, 0.70, added_p99=3.0), step(50, 0.45)]},
        {"revision": "b", "round": 3, "steps": [step(100, 0.65, steal=0.05), step(50, 0.25)]},
    ]
    summary = summarize(runs, ["a", "b"])
    assert list(summary["a"]) == ["50", "100"]  # steps in order of sessions
    a100, b100 = summary["a"]["100"], summary["b"]["100"]
    assert (a100["cpu_median"], a100["cpu_min"], a100["cpu_max"]) == (0.8, 0.7, 0.9)
    assert a100["added_p99_ms_median"] == 3.0
    assert a100["cpu_ratio_to_first"] == 1.0
    assert b100["cpu_median"] == 0.65
    assert b100["cpu_ratio_to_first"] == pytest.approx(0.65 / 0.8, abs=1e-3)
    # round by round: 0.60 / 0.80, 0.72 / 0.90, 0.65 / 0.70
    assert b100["cpu_ratio_in_round"] == {"median": 0.8, "min": 0.75, "max": 0.929}
    assert b100["round_trip_p99_ms_median"] == 2.0  # the round without one is left out
    assert (b100["underruns"], b100["passed"], b100["rounds"]) == ([3, 0, 0], 2, 3)
    assert b100["host_steal_share"] == [0.001, 0.001, 0.05]  # round by round, to judge noise
    b50 = summary["b"]["50"]  # round 1 ran no 50 for b: only rounds 2 and 3 pair up
    assert b50["rounds"] == 2
    assert b50["cpu_ratio_in_round"] == {"median": 0.478, "min": 0.4, "max": 0.556}


def worktrees() -> list[str]:
    listing = git("worktree", "list", "--porcelain", cwd=ROOT)
    return [line for line in listing.splitlines() if line.startswith("worktree ")]


def test_a_real_ab_runs_each_revision_from_its_own_tree_and_cleans_up(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    before = worktrees()
    out = tmp_path / "ab.json"
    argv = ["HEAD", ".", "--rounds", "2", "--label", ".=this tree", "--out", str(out)]
    argv += ["--", "--ramp", "2", "--duration", "1", "--warmup", "0.5", "--no-pin"]
    report = main(argv)
    assert worktrees() == before
    assert json.loads(out.read_text()) == report
    head = git("rev-parse", "--short=7", "HEAD", cwd=ROOT)
    assert report["revisions"] == {head: "", ".": "this tree"}
    assert [(r["revision"], r["round"]) for r in report["runs"]] == [
        (head, 1),
        (".", 1),
        (".", 2),
        (head, 2),
    ]
    for run in report["runs"]:
        (only,) = run["steps"]
        assert only["sessions"] == 2 and only["frames_measured"] > 0
    assert report["summary"]["."]["2"]["rounds"] == 2


def test_one_revisions_own_arguments_reach_only_its_ramps(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    out = tmp_path / "ab.json"
    argv = ["HEAD", ".", "--rounds", "1", "--args", ".=--prebuffer-ms 60", "--out", str(out)]
    argv += ["--", "--bot", "custom", "--chunk-ms", "20", "--ramp", "2", "--duration", "2"]
    argv += ["--warmup", "0.5", "--no-pin"]
    report = main(argv)
    assert report["revision_args"] == {".": ["--prebuffer-ms", "60"]}
    by_revision = {run["revision"]: run["steps"][0] for run in report["runs"]}
    head = git("rev-parse", "--short=7", "HEAD", cwd=ROOT)
    # the server sent 60 ms ahead only in the tree's ramp: the bots' players hold it
    lead = {r: step["player_lead_ms"]["p50"] for r, step in by_revision.items()}
    assert lead["."] > lead[head] + 30


def test_arguments_for_a_revision_not_compared_are_refused(monkeypatch):
    monkeypatch.chdir(ROOT)
    with pytest.raises(SystemExit, match="not one of the revisions compared"):
        main(["HEAD", ".", "--args", "HEAD~1=--prebuffer-ms 60", "--", "--ramp", "2"])


def test_the_same_commit_twice_is_refused(monkeypatch):
    monkeypatch.chdir(ROOT)
    with pytest.raises(SystemExit, match="same commit twice"):
        main(["HEAD", "HEAD", "--", "--ramp", "2"])


def test_an_unknown_revision_is_refused_with_gits_reason(monkeypatch):
    monkeypatch.chdir(ROOT)
    with pytest.raises(SystemExit, match="no-such-revision"):
        main(["HEAD", "no-such-revision", "--", "--ramp", "2"])
