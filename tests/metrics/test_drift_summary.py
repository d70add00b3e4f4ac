"""Drift summaries: OLS slope + t interval against scipy, the band rule on constructed series."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from bench.core.errors import ConfigError
from metrics.drift.summary import BandRule, ols_slope_per_min, summarize_series, summarize_windows, time_to_degrade


def test_slope_of_an_exact_line_has_a_zero_width_interval() -> None:
    t = np.arange(10) * 30.0  # seconds
    fit = ols_slope_per_min(t, 2.0 + 0.5 * t / 60.0)
    assert fit.slope_per_min == pytest.approx(0.5)
    assert fit.ci_low == pytest.approx(0.5) and fit.ci_high == pytest.approx(0.5)


def test_slope_and_interval_match_scipy_linregress() -> None:
    rng = np.random.default_rng(1)
    t = np.arange(12) * 10.0
    v = 1.0 - 0.3 * t / 60 + 0.05 * rng.standard_normal(12)
    fit = ols_slope_per_min(t, v)
    ref = stats.linregress(t / 60.0, v)
    half = stats.t.ppf(0.975, 10) * ref.stderr
    assert fit.slope_per_min == pytest.approx(ref.slope, rel=1e-12)
    assert fit.ci_low == pytest.approx(ref.slope - half, rel=1e-10)
    assert fit.ci_high == pytest.approx(ref.slope + half, rel=1e-10)
    assert fit.ci_high < 0  # the sign is resolved


def test_slope_skips_nan_and_needs_three_points_for_an_interval() -> None:
    fit = ols_slope_per_min([0.0, 60.0, 120.0], [1.0, math.nan, 3.0])
    assert fit.slope_per_min == pytest.approx(1.0) and fit.n == 2 and math.isnan(fit.ci_low)


def _series(n: int, step_at: int | None, jump: float, noise: float = 0.01, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    v = 1.0 + noise * rng.standard_normal(n)
    if step_at is not None:
        v[step_at:] += jump
    return v


def test_band_rule_finds_a_step_and_its_direction() -> None:
    starts = np.arange(10) * 5.0
    rule = BandRule(early_windows=3, k=3.0, thresholds={"m": (0.1, 0.0)})
    up = time_to_degrade(starts, _series(10, 6, +1.0), "m", rule)
    assert up.window_index == 6 and up.time_to_degrade_s == 30.0 and up.direction == "up"
    down = time_to_degrade(starts, _series(10, 4, -1.0), "m", rule)
    assert down.window_index == 4 and down.direction == "down"
    assert down.band_low == pytest.approx(down.early_mean - 3 * down.early_std)
    # a jump inside band + threshold is not a degradation
    small = time_to_degrade(starts, _series(10, 6, +0.05), "m", rule)
    assert math.isnan(small.time_to_degrade_s) and small.window_index == -1


def test_band_rule_persistence_ignores_a_single_spike() -> None:
    v = _series(10, None, 0.0)
    v[5] += 1.0  # one spike
    v[8:] += 1.0  # a sustained change
    starts = np.arange(10) * 5.0
    assert time_to_degrade(starts, v, "m", BandRule(thresholds={"m": (0.1, 0.0)})).window_index == 5
    assert time_to_degrade(starts, v, "m", BandRule(persist=2, thresholds={"m": (0.1, 0.0)})).window_index == 8


def test_threshold_lookup_exact_then_longest_prefix() -> None:
    rule = BandRule()
    assert rule.threshold_params("loudness_lufs") == (2.0, 0.0)
    assert rule.threshold_params("kad_logmel") == rule.thresholds["kad_"]
    assert rule.threshold_params("self_kad_logmel") == rule.thresholds["self_kad_"]
    with pytest.raises(ConfigError, match="early_windows"):
        BandRule(early_windows=1)


def test_summaries_ratio_and_table() -> None:
    row = summarize_series([0, 5, 10, 15], [2.5, 7.5, 12.5, 17.5], [2.0, 2.0, 2.0, 3.0], "m")
    assert row["last_first_ratio"] == pytest.approx(1.5) and row["last_minus_first"] == pytest.approx(1.0)
    zero = summarize_series([0, 5, 10], [2.5, 7.5, 12.5], [0.0, 0.0, 1.0], "m")
    assert math.isnan(zero["last_first_ratio"])  # undefined, not inf
    windows = pd.DataFrame({
        "generator": ["a"] * 4 + ["b"] * 4, "window_index": [0, 1, 2, 3] * 2,
        "start_s": [0.0, 5, 10, 15] * 2, "mid_s": [2.5, 7.5, 12.5, 17.5] * 2,
        "x": [1.0, 1.0, 1.0, 1.0, 1.0, 2.0, 3.0, 4.0],
    })
    table = summarize_windows(windows, ["x"])
    assert list(table["generator"]) == ["a", "b"]
    assert table["slope_per_min"].tolist() == pytest.approx([0.0, 12.0])
    with pytest.raises(ValueError, match="not in the per-window table"):
        summarize_windows(windows, ["y"])
