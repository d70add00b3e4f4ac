import numpy as np
import pytest

from metrics.quality.bootstrap import STREAM_EVALUATED, STREAM_REFERENCE, bootstrap_counts
from metrics.quality.fad import fad
from metrics.quality.frechet import InsufficientDataError
from metrics.quality.kad import SCALE, _kernel_pass, kad, median_pairwise_distance


def _naive_kernel(a, b, sigma):
    d2 = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
    return np.exp(-d2 / (2 * sigma**2))


def _naive_unbiased_mmd2(x, y, sigma):
    m, n = len(x), len(y)
    kxx, kyy, kxy = _naive_kernel(x, x, sigma), _naive_kernel(y, y, sigma), _naive_kernel(x, y, sigma)
    return (kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1)) - 2 * kxy.mean()


def test_equals_a_direct_unbiased_mmd_with_reference_median_bandwidth():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((60, 5)), rng.standard_normal((45, 5)) * 1.3 + 0.2
    result = kad(x, y, tile_frames=16)  # several tiles
    d = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))[np.triu_indices(60, 1)]
    assert result.bandwidth == pytest.approx(np.median(d), rel=1e-12)
    assert result.bandwidth_source == "reference median (exact)"
    assert result.value == pytest.approx(SCALE * _naive_unbiased_mmd2(x, y, np.median(d)), rel=1e-10)
    assert result.scale == 100.0 and result.value == pytest.approx(100 * result.mmd2)


def test_bandwidth_comes_from_the_reference_not_the_evaluated_set():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((80, 4))
    a, b = kad(x, rng.standard_normal((50, 4)) * 5), kad(x, rng.standard_normal((50, 4)) * 0.1)
    assert a.bandwidth == b.bandwidth == pytest.approx(median_pairwise_distance(x)[0], rel=1e-12)
    assert kad(x, x[:40] * 3, bandwidth=2.0).bandwidth_source == "given"


def test_kad_ci_contains_zero_for_one_distribution_while_fad_is_visibly_biased():
    rng = np.random.default_rng(0)
    d = 32
    x, y = rng.standard_normal((500, d)), rng.standard_normal((500, d))  # one distribution
    k = kad(x, y, n_boot=300, seed=0)
    f = fad(x, y, n_boot=300, seed=0, ci_method="percentile")
    assert k.ci.contains(0.0), k.ci
    assert abs(k.value) < k.ci.high - k.ci.low
    # FAD of two samples of one distribution is far from its true value 0 ...
    assert f.value > 0.5 and f.ci.low > 0.5, f.ci
    assert f.ci.bias > 0.5  # ... the bootstrap sees the same upward bias ...
    corrected = fad(x, y, n_boot=300, seed=0)  # ... and only the bias-corrected ("basic") interval reaches 0
    assert corrected.ci.method == "basic" and corrected.ci.contains(0.0) and not corrected.ci.contains(f.value)
    # ... and the bias shrinks like 1/n: four times the frames, about a quarter of the FAD
    bigger = fad(rng.standard_normal((2000, d)), rng.standard_normal((2000, d)))
    assert 2.5 < f.value / bigger.value < 6.0


def test_kad_detects_a_shift_that_its_ci_excludes_zero():
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((300, 8)), rng.standard_normal((300, 8)) + 0.5
    k = kad(x, y, n_boot=200, seed=1)
    assert k.ci.low > 0 and k.value > 0


def test_bootstrap_replicates_are_u_statistics_of_the_resamples():
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((30, 3)), rng.standard_normal((25, 3)) + 0.3
    groups_x = np.repeat(np.arange(10), 3)
    result = kad(x, y, groups_reference=groups_x, n_boot=4, seed=7, tile_frames=8)
    cx = bootstrap_counts(10, 4, 7, STREAM_REFERENCE)
    cy = bootstrap_counts(25, 4, 7, STREAM_EVALUATED)
    sigma = result.bandwidth
    for b in range(4):
        rows_x = np.repeat(np.arange(30), cx[b][groups_x])
        rows_y = np.repeat(np.arange(25), cy[b])

        def within(rows, data):
            k = _naive_kernel(data[rows], data[rows], sigma)
            distinct = rows[:, None] != rows[None, :]  # pairs of different original frames
            return k[distinct].mean()

        expected = within(rows_x, x) + within(rows_y, y) - 2 * _naive_kernel(x[rows_x], y[rows_y], sigma).mean()
        assert result.replicates[b] == pytest.approx(SCALE * expected, rel=1e-9)
    assert result.ci.unit == "clip(reference)/frame(evaluated)"


def test_subsampled_median_is_seeded_and_close_to_exact():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((1500, 6))
    exact, how = median_pairwise_distance(x)
    s1, how1 = median_pairwise_distance(x, max_frames=500, seed=3)
    s2, _ = median_pairwise_distance(x, max_frames=500, seed=3)
    assert "exact" in how and "all pairs of 500 of 1500 frames, seed 3" in how1
    assert s1 == s2 and s1 == pytest.approx(exact, rel=0.02)


def test_bad_inputs():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((10, 3))
    with pytest.raises(InsufficientDataError, match="at least 2 evaluated"):
        kad(x, x[:1])
    with pytest.raises(ValueError, match="dimensions differ"):
        kad(x, rng.standard_normal((10, 4)))
    with pytest.raises(ValueError, match="identical"):
        kad(np.ones((5, 3)), x)


def test_unit_aggregated_and_frame_count_bootstrap_paths_agree():
    rng = np.random.default_rng(6)
    x, y = rng.standard_normal((90, 4)), rng.standard_normal((70, 4)) + 0.2
    gx, gy = rng.integers(0, 9, 90), rng.integers(0, 7, 70)  # unsorted, uneven clips
    a = kad(x, y, groups_reference=gx, groups_evaluated=gy, n_boot=25, seed=3, tile_frames=32)
    b = kad(x, y, groups_reference=gx, groups_evaluated=gy, n_boot=25, seed=3, tile_frames=32, aggregate_bytes=0)
    np.testing.assert_allclose(a.replicates, b.replicates, rtol=1e-10)
    assert a.value == pytest.approx(b.value, rel=1e-12) == kad(x, y).value


def test_tiles_reduce_in_a_fixed_order_whatever_the_worker_count():
    rng = np.random.default_rng(4)
    a, b = rng.standard_normal((70, 6)), rng.standard_normal((50, 6))
    units = np.repeat(np.arange(14), 5)
    counts = rng.integers(0, 3, size=(70, 4)).astype(float)
    for same, other in ((True, a), (False, b)):
        kwargs = dict(ca=counts, cb=counts if same else rng.integers(0, 3, size=(50, 4)).astype(float))
        if same:
            kwargs.update(row_units=units, col_units=units, n_row_units=14, n_col_units=14)
        one = _kernel_pass(a, other, 0.1, same, 16, workers=1, **kwargs)
        three = _kernel_pass(a, other, 0.1, same, 16, workers=3, **kwargs)
        assert one[0] == three[0] and np.array_equal(one[1], three[1])
        if same:
            assert np.array_equal(one[2], three[2])
            full = np.exp(-0.1 * ((a[:, None] - a[None]) ** 2).sum(-1))
            assert one[0] == pytest.approx(full.sum(), rel=1e-12)
            expected = np.add.reduceat(np.add.reduceat(full, np.arange(0, 70, 5), 1), np.arange(0, 70, 5), 0)
            np.testing.assert_allclose(one[2], expected, rtol=1e-12)
