"""When a failed ramp step runs once more: the host or the generator disturbed it."""

import argparse

from benchmarks.load import disturbance


def step(late_ticks: int = 0, generator_cpu: float = 0.1, steal_ms: tuple = (0, 0)) -> dict:
    """A 20 s step's figures as `measured_step` reports them, those the retry reads."""
    return {
        "late_ticks": late_ticks,
        "generator_cpu_core_share": generator_cpu,
        "host_steal_ms_every_10s": list(steal_ms),
        "host_steal_share": sum(steal_ms) / 20_000,
        "generator_steal_ms_every_10s": [0, 0],
        "generator_steal_share": 0.0,
    }


ARGS = argparse.Namespace(retry_steal_ms=100.0, duration=20.0)


def test_a_quiet_step_is_not_disturbed():
    assert disturbance(step(), ARGS) is None


def test_steal_in_one_window_disturbs_a_step():
    assert disturbance(step(steal_ms=(0, 150)), ARGS) == "the host stole 150 ms of a core"
    assert disturbance(step(steal_ms=(60, 60)), ARGS) is None  # the worst window counts


def test_a_generator_late_with_time_to_spare_disturbs_a_step():
    why = disturbance(step(late_ticks=17, generator_cpu=0.06), ARGS)
    assert why == "the generator fell late 17 times below its CPU bound"


def test_a_generator_late_at_its_bound_is_its_own_limit_not_a_disturbance():
    assert disturbance(step(late_ticks=17, generator_cpu=0.95), ARGS) is None


def test_no_retry_when_retries_are_off():
    off = argparse.Namespace(retry_steal_ms=0.0, duration=20.0)
    assert disturbance(step(late_ticks=17, steal_ms=(0, 900)), off) is None
