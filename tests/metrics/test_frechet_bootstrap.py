import numpy as np
import pytest

from metrics.quality.bootstrap import bootstrap_generic
from metrics.quality.fad import fad, fad_from_stats
from metrics.quality.frechet import frechet_distance, gaussian_stats
from metrics.quality.frechet_bootstrap import _packing, bootstrap_frechet


def test_packing_round_trips_a_symmetric_matrix_and_unpacks_only_the_upper_triangle():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((7, 7))
    a = a + a.T
    p = _packing(7)
    packed = p.pack(a)
    assert packed.shape == (28,) and np.array_equal(packed[p.diagonal], np.diag(a))
    assert np.array_equal(p.full(packed), a)
    out = np.full((7, 7), np.nan)
    p.unpack_upper(packed, out)
    assert np.array_equal(np.triu(out), np.triu(a)) and np.isnan(out[np.tril_indices(7, -1)]).all()



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



def test_singular_published_reference_statistics_take_the_eigh_factor():
    rng = np.random.default_rng(3)
    x = np.zeros((60, 5))
    x[:, :2] = rng.standard_normal((60, 2))  # rank 2 of 5: no Cholesky factor of the reference
    stats = gaussian_stats(x, full_rank=False)
    y = rng.standard_normal((60, 5))
    gy = np.repeat(np.arange(20), 3)

    def statistic(_, ev_rows):
        b = gaussian_stats(y[ev_rows])
        return frechet_distance(stats.mu, stats.cov, b.mu, b.cov).value

    _, expected = bootstrap_generic(statistic, 60, 60, groups_evaluated=gy, n_boot=15, seed=1, resample_reference=False)
    _, reps = bootstrap_frechet(None, y, reference_stats=(stats.mu, stats.cov), groups_evaluated=gy, n_boot=15,
                                seed=1, workers=2)
    np.testing.assert_allclose(reps, expected, rtol=1e-9)
