import os

# laion-clap (also imported by frechet-audio-distance) must never reach for the hub (see metrics.embedders.base)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np
import pytest

from metrics.quality.fad import fad
from metrics.quality.frechet import (
    InsufficientDataError,
    frechet_distance,
    gaussian_stats,
)


def _random_rotation(d: int, rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    return q * np.sign(np.diag(r))[None, :]


def _spd(d: int, rng: np.random.Generator, scale: float = 1.0) -> np.ndarray:
    a = rng.standard_normal((d, 2 * d))
    return scale * (a @ a.T) / (2 * d) + 0.05 * np.eye(d)


def test_population_value_equals_closed_form_for_commuting_covariances():
    rng = np.random.default_rng(0)
    d = 6
    q = _random_rotation(d, rng)
    a, b = rng.uniform(0.2, 3.0, d), rng.uniform(0.2, 3.0, d)
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
    s1, s2 = q @ np.diag(a) @ q.T, q @ np.diag(b) @ q.T
    closed = float(((mu1 - mu2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum())
    assert frechet_distance(mu1, s1, mu2, s2).value == pytest.approx(closed, rel=1e-10)
    assert frechet_distance(mu1, s1, mu2, s2, factor="cholesky").value == pytest.approx(closed, rel=1e-10)


def test_fad_of_large_samples_equals_the_generating_gaussians_distance():
    rng = np.random.default_rng(1)
    d = 6
    q = _random_rotation(d, rng)
    a, b = rng.uniform(0.2, 3.0, d), rng.uniform(0.2, 3.0, d)
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
    closed = float(((mu1 - mu2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum())
    n = 200_000
    x = mu1 + (rng.standard_normal((n, d)) * np.sqrt(a)) @ q.T
    y = mu2 + (rng.standard_normal((n, d)) * np.sqrt(b)) @ q.T
    result = fad(x, y)
    assert result.value == pytest.approx(closed, rel=0.01)
    assert result.n_reference == n and result.dim == d


@pytest.mark.parametrize("d", [8, 64])
def test_matches_frechet_audio_distance_on_the_same_statistics(d):
    fad_lib = pytest.importorskip("frechet_audio_distance")
    rng = np.random.default_rng(d)
    mu1, mu2 = rng.standard_normal(d), 0.3 * rng.standard_normal(d)
    s1, s2 = _spd(d, rng), _spd(d, rng, scale=2.0)  # non-commuting
    ours = frechet_distance(mu1, s1, mu2, s2).value
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            peer = fad_lib.FrechetAudioDistance.calculate_frechet_distance(None, mu1, s1, mu2, s2)
    assert ours == pytest.approx(float(np.real(peer)), rel=1e-6)


def test_identical_gaussians_give_zero_and_the_distance_is_symmetric():
    rng = np.random.default_rng(3)
    mu, s = rng.standard_normal(16), _spd(16, rng)
    assert abs(frechet_distance(mu, s, mu, s).value) < 1e-9 * np.trace(s)
    mu2, s2 = rng.standard_normal(16), _spd(16, rng, 0.5)
    assert frechet_distance(mu, s, mu2, s2).value == pytest.approx(frechet_distance(mu2, s2, mu, s).value, rel=1e-9)


def test_singular_covariances_are_handled_and_clipping_is_reported():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((10, 32))  # rank 9 covariance in 32 dims
    y = rng.standard_normal((12, 32)) + 0.5
    a, b = gaussian_stats(x, full_rank=False), gaussian_stats(y, full_rank=False)
    result = frechet_distance(a.mu, a.cov, b.mu, b.cov)
    assert np.isfinite(result.value) and result.value > 0
    assert result.clipped_eigenvalues >= 0 and result.clipped_magnitude >= 0
    assert result.mean_term == pytest.approx(float(((a.mu - b.mu) ** 2).sum()))


def test_too_few_frames_says_how_many_are_needed():
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((40, 64)), rng.standard_normal((500, 64))
    groups = np.repeat(np.arange(4), 10)
    with pytest.raises(InsufficientDataError, match=r"40 embedding frames from 4 clip.*at least 3 more.*at least 65"):
        fad(x, y, groups_reference=groups)
    with pytest.raises(InsufficientDataError, match="at least 2"):
        fad(x[:1], y, full_rank=False)


def test_bad_inputs_are_named():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((100, 8))
    with pytest.raises(ValueError, match="dimensions differ"):
        fad(x, rng.standard_normal((100, 9)))
    bad = x.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        fad(x, bad)
    with pytest.raises(ValueError, match="not symmetric"):
        frechet_distance(np.zeros(2), np.array([[1.0, 0.5], [0.0, 1.0]]), np.zeros(2), np.eye(2))
