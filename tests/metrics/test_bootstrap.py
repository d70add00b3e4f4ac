import numpy as np
import pytest

from metrics.quality.bootstrap import (
    bootstrap_counts,
    bootstrap_interval,
    units_of,
)
from metrics.quality.fad import fad


def test_counts_are_seeded_multinomials():
    c = bootstrap_counts(7, 50, seed=3, stream=1)
    assert c.shape == (50, 7) and (c.sum(axis=1) == 7).all()
    assert np.array_equal(c, bootstrap_counts(7, 50, seed=3, stream=1))
    assert not np.array_equal(c, bootstrap_counts(7, 50, seed=4, stream=1))
    assert not np.array_equal(c, bootstrap_counts(7, 50, seed=3, stream=0))
    with pytest.raises(ValueError, match="at least 2"):
        bootstrap_counts(1, 5, 0, 0)


def test_same_seed_same_interval_and_interval_methods(sets):
    x, y, gx, gy = sets
    one = fad(x, y, groups_reference=gx, groups_evaluated=gy, n_boot=50, seed=9)
    two = fad(x, y, groups_reference=gx, groups_evaluated=gy, n_boot=50, seed=9)
    assert one.ci == two.ci and np.array_equal(one.replicates, two.replicates)
    basic = bootstrap_interval(one.replicates, level=0.9, seed=9, unit="clip", estimate=one.value, method="basic")
    pct = bootstrap_interval(one.replicates, level=0.9, seed=9, unit="clip", estimate=one.value)
    assert basic.low == pytest.approx(2 * one.value - pct.high) and basic.high == pytest.approx(2 * one.value - pct.low)
    assert pct.bias == pytest.approx(one.replicates.mean() - one.value)


def test_units_from_groups():
    u = units_of(6, ["b", "b", "a", "c", "c", "c"])
    assert u.n_units == 3 and u.kind == "clip" and list(u.index) == [1, 1, 0, 2, 2, 2]
    assert units_of(4, None).kind == "frame"
    with pytest.raises(ValueError, match="one label per frame"):
        units_of(4, [0, 1])
