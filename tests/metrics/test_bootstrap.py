import numpy as np
import pytest

from metrics.quality.bootstrap import (
    bootstrap_counts,
    bootstrap_frechet,
    bootstrap_generic,
    bootstrap_interval,
    units_of,
)
from metrics.quality.fad import fad, fad_from_stats
from metrics.quality.frechet import frechet_distance, gaussian_stats


@pytest.fixture(scope="module")
def sets():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((120, 6))
    y = rng.standard_normal((90, 6)) * 1.2 + 0.3
    return x, y, np.repeat(np.arange(12), 10), np.repeat(np.arange(30), 3)


def test_counts_are_seeded_multinomials():
    c = bootstrap_counts(7, 50, seed=3, stream=1)
    assert c.shape == (50, 7) and (c.sum(axis=1) == 7).all()
    assert np.array_equal(c, bootstrap_counts(7, 50, seed=3, stream=1))
    assert not np.array_equal(c, bootstrap_counts(7, 50, seed=4, stream=1))
    assert not np.array_equal(c, bootstrap_counts(7, 50, seed=3, stream=0))
    with pytest.raises(ValueError, match="at least 2"):
        bootstrap_counts(1, 5, 0, 0)


def test_table_path_equals_direct_path_equals_generic_resampling(sets):
    x, y, gx, gy = sets
    ci_t, reps_t = bootstrap_frechet(x, y, groups_reference=gx, groups_evaluated=gy, n_boot=40, seed=5)
    ci_d, reps_d = bootstrap_frechet(x, y, groups_reference=gx, groups_evaluated=gy, n_boot=40, seed=5, table_bytes=0)
    np.testing.assert_allclose(reps_t, reps_d, rtol=1e-9)

    def statistic(ref_rows, ev_rows):
        a, b = gaussian_stats(x[ref_rows]), gaussian_stats(y[ev_rows])
        return frechet_distance(a.mu, a.cov, b.mu, b.cov).value

    _, reps_g = bootstrap_generic(statistic, len(x), len(y), groups_reference=gx, groups_evaluated=gy,
                                  n_boot=40, seed=5)
    np.testing.assert_allclose(reps_t, reps_g, rtol=1e-8)
    assert ci_t.unit == "clip" and ci_t.n_boot == 40 and ci_t.seed == 5


def test_fixed_reference_resamples_only_the_evaluated_set(sets):
    x, y, _, gy = sets
    stats = gaussian_stats(x)
    a = fad_from_stats(stats, y, groups_evaluated=gy, n_boot=30, seed=2)
    _, reps = bootstrap_frechet(x, y, groups_evaluated=gy, n_boot=30, seed=2, resample_reference=False)
    np.testing.assert_allclose(a.replicates, reps, rtol=1e-9)
    assert a.value == pytest.approx(fad(x, y).value, rel=1e-12)


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


def test_replicates_do_not_depend_on_the_worker_count(sets):
    x, y, gx, gy = sets
    _, serial = bootstrap_frechet(x, y, groups_reference=gx, groups_evaluated=gy, n_boot=30, seed=1, workers=1)
    _, pooled = bootstrap_frechet(x, y, groups_reference=gx, groups_evaluated=gy, n_boot=30, seed=1, workers=3,
                                  batch_bytes=8 * 6 * 6 * 7)  # batches of 7: a short last batch too
    np.testing.assert_allclose(pooled, serial, rtol=1e-12)


def test_fixed_reference_replicates_equal_generic_resampling(sets):
    x, y, _, gy = sets
    stats = gaussian_stats(x)

    def statistic(_, ev_rows):
        b = gaussian_stats(y[ev_rows])
        return frechet_distance(stats.mu, stats.cov, b.mu, b.cov).value

    _, expected = bootstrap_generic(statistic, len(x), len(y), groups_evaluated=gy, n_boot=20, seed=4,
                                    resample_reference=False)
    _, reps = bootstrap_frechet(None, y, reference_stats=(stats.mu, stats.cov), groups_evaluated=gy, n_boot=20,
                                seed=4, workers=2)
    np.testing.assert_allclose(reps, expected, rtol=1e-9)


def test_a_singular_reference_replicate_takes_the_eigh_route():
    rng = np.random.default_rng(2)
    x = np.zeros((40, 5))
    x[:, :3] = rng.standard_normal((40, 3))  # rank 3 of 5: no Cholesky factor
    y = rng.standard_normal((40, 5))

    def statistic(ref_rows, ev_rows):
        a, b = gaussian_stats(x[ref_rows], full_rank=False), gaussian_stats(y[ev_rows])
        return frechet_distance(a.mu, a.cov, b.mu, b.cov).value

    _, expected = bootstrap_generic(statistic, 40, 40, n_boot=10, seed=0)
    _, reps = bootstrap_frechet(x, y, n_boot=10, seed=0)
    np.testing.assert_allclose(reps, expected, rtol=1e-8)
