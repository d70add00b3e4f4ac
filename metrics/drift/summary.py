"""Drift summaries of one metric's series over stream time.

For a series ``(t_i, v_i)`` (one value per window; ``t_i`` the window's midpoint):

- **slope per minute**: ordinary least squares of ``v`` on ``t`` in minutes, with a t-based 95 %
  confidence interval ``b +/- t_{0.975, n-2} * se(b)``, ``se(b) = sqrt(SSR / (n-2) / Sxx)``. It needs
  at least 3 windows (else the CI is NaN). The interval assumes independent residuals: with
  overlapping windows (hop < window) neighbouring values share audio and the interval is too
  narrow; the default drift workloads use hop = window.
- **time to degrade** (the band rule): the band is ``mean +/- k * std`` (``std`` with ``ddof=1``) of
  the first ``m`` windows; a later window *leaves* the band when its value lies outside the band by
  more than ``threshold = max(abs_threshold, rel_threshold * |early mean|)``; the time to degrade
  is the START time of the first window that starts a run of ``persist`` consecutive leaving
  windows (NaN if none: the metric did not degrade within the horizon). When the per-window table
  has a confidence interval for the metric (``<metric>_ci_low`` / ``_ci_high``) and
  ``BandRule.use_ci`` is on (the default), a window leaves only when its WHOLE interval lies
  outside the band by more than the threshold, so sampling noise of one window does not count as
  degradation.
- **last/first ratio**: value of the last window divided by the first (NaN when the first is 0),
  beside ``last - first`` (the readable number for dB-like metrics).

Windows with a NaN value (for example spectral centroid of a silent window) are skipped.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from bench.core.errors import ConfigError

# (abs_threshold, rel_threshold) per metric; a metric is matched by exact name, then by prefix
# ("kad_" matches "kad_logmel"). Units are the metric's own.
DEFAULT_THRESHOLDS: dict[str, tuple[float, float]] = {
    "loudness_lufs": (2.0, 0.0),  # LU
    "rms_dbfs": (2.0, 0.0),  # dB
    "spectral_centroid_hz": (25.0, 0.10),  # Hz, or 10 % of the early mean
    "spectral_flatness": (0.05, 0.0),
    "silence_ratio": (0.10, 0.0),
    "clipping_ratio": (0.01, 0.0),
    "nonfinite_ratio": (0.0, 0.0),  # any NaN/inf sample after the early windows
    "kad_": (0.0, 0.25),  # embedding metrics: 25 % of the early mean
    "fad_": (0.0, 0.25),
    "self_kad_": (0.0, 0.25),
    "clap_score": (0.05, 0.0),  # cosine
    # music descriptors (metrics.drift.descriptor_windows; means over streams, docs/drift.md)
    "pitched_fraction": (0.15, 0.0),  # fraction of frames
    "pitch_range_semitones": (3.0, 0.0),  # semitones
    "pitch_class_entropy_bits": (0.3, 0.0),  # bits
    "key_strength": (0.15, 0.0),  # Pearson r
    "onset_rate_hz": (0.5, 0.25),  # onsets/s, or 25 % of the early mean
    "tempo_bpm": (8.0, 0.10),  # bpm, or 10 % of the early mean
    "key_same_as_first": (0.25, 0.0),  # fraction of streams still in their first window's key
    "chroma_corr_first": (0.2, 0.0),  # Pearson r with the first window's chroma
}
FALLBACK_THRESHOLD: tuple[float, float] = (0.0, 0.25)


@dataclass(frozen=True)
class BandRule:
    """Parameters of the time-to-degrade rule (see the module docstring)."""

    early_windows: int = 3  # m
    k: float = 3.0  # band half-width in early standard deviations
    persist: int = 1  # consecutive leaving windows needed
    use_ci: bool = True  # a window with a CI leaves only when its whole CI is outside band + threshold
    thresholds: Mapping[str, tuple[float, float]] = field(default_factory=lambda: dict(DEFAULT_THRESHOLDS))

    def __post_init__(self) -> None:
        if int(self.early_windows) != self.early_windows or self.early_windows < 2:
            raise ConfigError(
                f"BandRule.early_windows (m) must be an integer >= 2 (a std needs 2), got {self.early_windows}"
            )
        if not (self.k >= 0):
            raise ConfigError(f"BandRule.k must be >= 0, got {self.k}")
        if int(self.persist) != self.persist or self.persist < 1:
            raise ConfigError(f"BandRule.persist must be an integer >= 1, got {self.persist}")

    def threshold_params(self, metric: str) -> tuple[float, float]:
        """(abs_threshold, rel_threshold) for ``metric``: exact name, else longest matching prefix."""
        if metric in self.thresholds:
            return self.thresholds[metric]
        prefixes = [p for p in self.thresholds if p.endswith("_") and metric.startswith(p)]
        if prefixes:
            return self.thresholds[max(prefixes, key=len)]
        return FALLBACK_THRESHOLD

    def describe(self) -> str:
        return (
            f"band = mean +/- {self.k:g} std of the first {self.early_windows} windows; leaves when "
            f"outside by > max(abs, rel * |early mean|) for {self.persist} consecutive window(s)"
            + ("; with a CI, the whole CI must be outside" if self.use_ci else "")
        )


DEFAULT_BAND_RULE = BandRule()


@dataclass(frozen=True)
class SlopeFit:
    slope_per_min: float
    ci_low: float
    ci_high: float
    intercept: float
    n: int


def ols_slope_per_min(times_s: Sequence[float], values: Sequence[float], confidence: float = 0.95) -> SlopeFit:
    """OLS slope of ``values`` per minute of ``times_s`` with a t-based interval (NaNs skipped)."""
    t = np.asarray(times_s, dtype=np.float64) / 60.0
    v = np.asarray(values, dtype=np.float64)
    ok = np.isfinite(t) & np.isfinite(v)
    t, v = t[ok], v[ok]
    n = int(t.size)
    if n < 2 or np.ptp(t) == 0:
        return SlopeFit(math.nan, math.nan, math.nan, math.nan, n)
    t_mean, v_mean = t.mean(), v.mean()
    sxx = float(((t - t_mean) ** 2).sum())
    slope = float(((t - t_mean) * (v - v_mean)).sum() / sxx)
    intercept = float(v_mean - slope * t_mean)
    if n < 3:
        return SlopeFit(slope, math.nan, math.nan, intercept, n)
    residuals = v - (intercept + slope * t)
    se = math.sqrt(float((residuals**2).sum()) / (n - 2) / sxx)
    half = float(stats.t.ppf(0.5 + confidence / 2.0, n - 2)) * se
    return SlopeFit(slope, slope - half, slope + half, intercept, n)


@dataclass(frozen=True)
class DegradeResult:
    time_to_degrade_s: float  # start of the first leaving window (NaN: none)
    window_index: int  # -1: none
    value: float
    direction: str  # "up", "down" or ""
    early_mean: float
    early_std: float
    band_low: float
    band_high: float
    threshold: float


def time_to_degrade(
    starts_s: Sequence[float], values: Sequence[float], metric: str, rule: BandRule = DEFAULT_BAND_RULE,
    window_indices: Sequence[int] | None = None, ci_low: Sequence[float] | None = None,
    ci_high: Sequence[float] | None = None,
) -> DegradeResult:
    """Apply the band rule to one series (windows in time order). NaN windows are skipped.

    ``ci_low``/``ci_high`` (optional, per window) make a window leave only when its whole interval
    is outside the band (``rule.use_ci``); a window whose CI is NaN is judged by its value.
    """
    s = np.asarray(starts_s, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    idx = np.arange(v.size) if window_indices is None else np.asarray(window_indices)
    lo_v = v.copy() if ci_low is None or not rule.use_ci else np.asarray(ci_low, dtype=np.float64)
    hi_v = v.copy() if ci_high is None or not rule.use_ci else np.asarray(ci_high, dtype=np.float64)
    lo_v = np.where(np.isfinite(lo_v), np.minimum(lo_v, v), v)  # the hull of the CI and the value:
    hi_v = np.where(np.isfinite(hi_v), np.maximum(hi_v, v), v)  # a percentile CI need not contain it
    ok = np.isfinite(v)
    s, v, idx, lo_v, hi_v = s[ok], v[ok], idx[ok], lo_v[ok], hi_v[ok]
    nan = math.nan
    if v.size < rule.early_windows:
        return DegradeResult(nan, -1, nan, "", nan, nan, nan, nan, nan)
    early = v[: rule.early_windows]
    mean, std = float(early.mean()), float(early.std(ddof=1))
    abs_thr, rel_thr = rule.threshold_params(metric)
    threshold = max(abs_thr, rel_thr * abs(mean))
    low, high = mean - rule.k * std, mean + rule.k * std
    up = lo_v[rule.early_windows:] > high + threshold
    down = hi_v[rule.early_windows:] < low - threshold
    leaving = up | down
    run = 0
    for j, out in enumerate(leaving):
        run = run + 1 if out else 0
        if run == rule.persist:
            first = j - rule.persist + 1 + rule.early_windows
            return DegradeResult(
                float(s[first]), int(idx[first]), float(v[first]), "up" if v[first] > high else "down",
                mean, std, low, high, threshold,
            )
    return DegradeResult(nan, -1, nan, "", mean, std, low, high, threshold)


SUMMARY_COLUMNS: tuple[str, ...] = (
    "metric", "n_windows", "first", "last", "last_first_ratio", "last_minus_first",
    "slope_per_min", "slope_ci_low", "slope_ci_high", "time_to_degrade_s", "degrade_window",
    "degrade_value", "degrade_direction", "early_mean", "early_std", "band_low", "band_high",
    "threshold", "drifted",
)


def summarize_series(
    starts_s: Sequence[float], mids_s: Sequence[float], values: Sequence[float], metric: str,
    rule: BandRule = DEFAULT_BAND_RULE, window_indices: Sequence[int] | None = None,
    ci_low: Sequence[float] | None = None, ci_high: Sequence[float] | None = None,
) -> dict[str, object]:
    """All drift summaries of one metric's series, as one table row (see :data:`SUMMARY_COLUMNS`)."""
    v = np.asarray(values, dtype=np.float64)
    finite = v[np.isfinite(v)]
    first = float(finite[0]) if finite.size else math.nan
    last = float(finite[-1]) if finite.size else math.nan
    ratio = last / first if (finite.size and first != 0) else math.nan
    fit = ols_slope_per_min(mids_s, v)
    deg = time_to_degrade(starts_s, v, metric, rule, window_indices, ci_low, ci_high)
    return {
        "metric": metric,
        "n_windows": int(finite.size),
        "first": first,
        "last": last,
        "last_first_ratio": float(ratio),
        "last_minus_first": last - first,
        "slope_per_min": fit.slope_per_min,
        "slope_ci_low": fit.ci_low,
        "slope_ci_high": fit.ci_high,
        "time_to_degrade_s": deg.time_to_degrade_s,
        "degrade_window": deg.window_index,
        "degrade_value": deg.value,
        "degrade_direction": deg.direction,
        "early_mean": deg.early_mean,
        "early_std": deg.early_std,
        "band_low": deg.band_low,
        "band_high": deg.band_high,
        "threshold": deg.threshold,
        "drifted": bool(math.isfinite(deg.time_to_degrade_s)),
    }


def summarize_windows(
    windows: pd.DataFrame, metrics: Iterable[str], rule: BandRule = DEFAULT_BAND_RULE,
    group_by: Sequence[str] = ("generator",),
) -> pd.DataFrame:
    """One summary row per (group, metric) from a per-window table.

    ``windows`` needs columns ``window_index``, ``start_s``, ``mid_s``, the ``group_by`` columns
    and one column per metric (one row per window and group); ``<metric>_ci_low`` and
    ``<metric>_ci_high`` columns, when present, feed the band rule.
    """
    needed = {"window_index", "start_s", "mid_s", *group_by}
    missing = needed - set(windows.columns)
    if missing:
        raise ValueError(f"per-window table lacks column(s) {sorted(missing)}; has {list(windows.columns)}")
    metrics = list(metrics)
    absent = [m for m in metrics if m not in windows.columns]
    if absent:
        raise ValueError(f"metric column(s) {absent} not in the per-window table")
    rows: list[dict[str, object]] = []
    groups = windows.groupby(list(group_by), sort=True) if group_by else [((), windows)]
    for key, frame in groups:
        key = key if isinstance(key, tuple) else (key,)
        frame = frame.sort_values("window_index")
        for metric in metrics:
            row = dict(zip(group_by, key))
            lo, hi = f"{metric}_ci_low", f"{metric}_ci_high"
            row.update(
                summarize_series(
                    frame["start_s"].to_numpy(), frame["mid_s"].to_numpy(), frame[metric].to_numpy(),
                    metric, rule, frame["window_index"].to_numpy(),
                    frame[lo].to_numpy() if lo in frame else None, frame[hi].to_numpy() if hi in frame else None,
                )
            )
            rows.append(row)
    return pd.DataFrame(rows, columns=[*group_by, *SUMMARY_COLUMNS])


def band_rule_record(rule: BandRule) -> dict[str, object]:
    """The rule as plain data (stored with tables and baselines)."""
    out = asdict(rule)
    out["thresholds"] = {k: list(v) for k, v in rule.thresholds.items()}
    return out
