import pytest

from bridge.server.histogram import Histogram


def test_counts_sum_and_cumulative_buckets():
    h = Histogram((1.0, 2.0, 5.0))
    for value in (0.5, 1.0, 1.5, 3.0, 9.0):
        h.observe(value)
    assert h.counts == [2, 1, 1, 1] and h.count == 5 and h.sum == 15.0
    assert h.cumulative() == [("1.0", 2), ("2.0", 3), ("5.0", 4), ("+Inf", 5)]


def test_quantiles_interpolate_within_buckets():
    h = Histogram((1.0, 2.0))
    for _ in range(50):
        h.observe(0.5)
    for _ in range(50):
        h.observe(1.5)
    assert h.quantile(0.5) == pytest.approx(1.0)
    assert h.quantile(0.75) == pytest.approx(1.5)
    assert Histogram((1.0,)).quantile(0.5) is None


def test_merge_adds_observations():
    a, b = Histogram((1.0,)), Histogram((1.0,))
    a.observe(0.5)
    b.observe(2.0)
    a.merge(b)
    assert a.counts == [1, 1] and a.count == 2 and a.sum == 2.5
    with pytest.raises(AssertionError):
        a.merge(Histogram((2.0,)))
