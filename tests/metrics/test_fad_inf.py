import numpy as np
import pytest

from metrics.quality.fad_inf import fad_inf, fit_inverse_n
from metrics.quality.fad import fad_from_stats
from metrics.quality.frechet import GaussianStats, InsufficientDataError


def test_fit_recovers_an_exact_inverse_n_law():
    ns = np.array([100, 200, 400, 800])
    intercept, slope, r2 = fit_inverse_n(ns, 0.7 + 50.0 / ns)
    assert intercept == pytest.approx(0.7) and slope == pytest.approx(50.0) and r2 == pytest.approx(1.0)


def test_extrapolation_removes_most_of_the_sample_size_bias():
    rng = np.random.default_rng(0)
    d = 24
    ref = GaussianStats(mu=np.zeros(d), cov=np.eye(d), n=0)  # the generating Gaussian itself
    shift = np.full(d, 0.1)
    truth = float(shift @ shift)  # same covariance: FD = |shift|^2 = 0.24
    ev = rng.standard_normal((3000, d)) + shift
    plain = fad_from_stats(ref, ev).value
    result = fad_inf(ref, ev, n_points=10, seed=1)
    assert abs(result.value - truth) < 0.25 * abs(plain - truth)
    assert result.r2 > 0.9 and result.slope > 0
    assert len(result.points) == 10 and result.points[-1][0] == 3000
    assert result.sampling == "without replacement"
    again = fad_inf(ref, ev, n_points=10, seed=1)
    assert again.value == result.value and again.points == result.points
    assert fad_inf(ref, ev, n_points=10, seed=2).value != result.value


def test_bootstrap_ci_over_clips_is_seeded():
    rng = np.random.default_rng(1)
    ref = rng.standard_normal((400, 4))
    ev = rng.standard_normal((400, 4)) + 0.2
    groups = np.repeat(np.arange(40), 10)
    a = fad_inf(ref, ev, n_points=5, seed=0, groups_evaluated=groups, n_boot=20)
    b = fad_inf(ref, ev, n_points=5, seed=0, groups_evaluated=groups, n_boot=20)
    assert a.ci == b.ci and a.ci.unit == "clip" and a.ci.n_boot == 20


def test_too_few_frames():
    rng = np.random.default_rng(2)
    with pytest.raises(InsufficientDataError, match="at least 34 evaluated frames"):
        fad_inf(rng.standard_normal((100, 16)), rng.standard_normal((30, 16)))
