"""Drift baselines: store a generator's drift result, compare a later one, fail readably.

A :class:`DriftResult` holds one generator's per-window table (aggregated over its streams), its
summary table (one row per metric) and the provenance needed to judge comparability (window spec,
embedder identity, reference set, band rule, workload, seeds). :func:`save_baseline` writes it as
a small JSON file; :func:`compare_to_baseline` compares a new result with it and
:func:`assert_matches_baseline` raises ``AssertionError`` with a message that names each metric
that moved, from which window (stream time) and by how much, beyond which tolerance.

A metric *regresses* when either
1. at some window the result and the baseline are further apart than the tolerance
   ``max(abs_tol, rel_tol * |baseline value|)``: for a metric with a confidence interval in both
   (KAD, FAD, self distance, CLAP, the stream means of the signal statistics) the distance is the
   GAP between the two intervals (0 when they overlap), so sampling noise is not a regression;
   without intervals it is the difference of the values. The message names the first such
   window, the values, the largest deviation and both slopes; or
2. the band rule finds a time to degrade that the baseline did not have, or that comes more than
   one hop earlier than the baseline's.
Both directions count: a change for the better is still a change the baseline does not describe;
refresh the baseline when it is intended.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

BASELINE_SCHEMA = "live-music-bench/drift-baseline/1"

# Keys of DriftResult.config that must be equal for two results to be comparable.
COMPARABLE_KEYS: tuple[str, ...] = (
    "window_s", "hop_s", "block_s", "sample_rate", "embedder_identity", "reference", "signal_stats",
    "n_streams", "prompts",
)  # seeds may differ: the interval-aware comparison is meant to absorb seed-to-seed variation

# (abs_tol, rel_tol) per metric for window-by-window comparison; exact name, then longest prefix.
DEFAULT_TOLERANCES: dict[str, tuple[float, float]] = {
    "loudness_lufs": (1.0, 0.0),  # LU
    "rms_dbfs": (1.0, 0.0),  # dB
    "spectral_centroid_hz": (20.0, 0.05),  # Hz, or 5 % of the baseline
    "spectral_flatness": (0.02, 0.0),
    "silence_ratio": (0.05, 0.0),
    "clipping_ratio": (0.005, 0.0),
    "nonfinite_ratio": (0.0, 0.0),  # any NaN/inf sample where the baseline had none
    "kad_": (0.5, 0.10),  # KAD x100: 0.5, or 10 % of the baseline
    "fad_": (0.0, 0.10),  # FAD: 10 % of the baseline (squared embedding units)
    "self_kad_": (0.5, 0.10),
    "clap_score": (0.02, 0.0),  # cosine
    "pitched_fraction": (0.10, 0.0),  # music descriptors (metrics.drift.descriptor_windows)
    "pitch_range_semitones": (3.0, 0.0),
    "pitch_class_entropy_bits": (0.3, 0.0),
    "key_strength": (0.10, 0.0),
    "onset_rate_hz": (0.5, 0.20),
    "tempo_bpm": (5.0, 0.05),
    "key_same_as_first": (0.25, 0.0),
    "chroma_corr_first": (0.2, 0.0),
}


@dataclass(frozen=True)
class Tolerance:
    """Per-metric tolerances for :func:`compare_to_baseline` (defaults in :data:`DEFAULT_TOLERANCES`)."""

    per_metric: Mapping[str, tuple[float, float]] = field(default_factory=lambda: dict(DEFAULT_TOLERANCES))
    fallback: tuple[float, float] = (0.0, 0.25)
    check_time_to_degrade: bool = True

    def for_metric(self, metric: str) -> tuple[float, float]:
        if metric in self.per_metric:
            return self.per_metric[metric]
        prefixes = [p for p in self.per_metric if p.endswith("_") and metric.startswith(p)]
        return self.per_metric[max(prefixes, key=len)] if prefixes else self.fallback

    def with_overrides(self, **overrides: float | tuple[float, float]) -> "Tolerance":
        """A copy with some metrics' tolerances replaced (a float sets ``abs_tol`` with ``rel_tol`` 0)."""
        table = dict(self.per_metric)
        for metric, tol in overrides.items():
            table[metric] = (float(tol), 0.0) if isinstance(tol, (int, float)) else (float(tol[0]), float(tol[1]))
        return Tolerance(table, self.fallback, self.check_time_to_degrade)

    def describe(self, metric: str) -> str:
        abs_tol, rel_tol = self.for_metric(metric)
        if rel_tol and abs_tol:
            return f"max({abs_tol:g}, {rel_tol:.0%} of the baseline)"
        return f"{rel_tol:.0%} of the baseline" if rel_tol else f"{abs_tol:g}"


@dataclass
class DriftResult:
    """One generator's drift result: per-window table, summary table, provenance."""

    generator: str
    windows: pd.DataFrame  # one row per window: window_index, start_s, end_s, mid_s, metric columns
    summary: pd.DataFrame  # one row per metric (metrics.drift.summary.SUMMARY_COLUMNS)
    config: dict[str, Any]
    stream_windows: pd.DataFrame | None = None  # one row per (stream, window), if kept
    stream_stability: pd.DataFrame | None = None  # one row per stream (key, tempo stability), with descriptors

    @property
    def metrics(self) -> list[str]:
        return list(self.summary["metric"])

    def summary_row(self, metric: str) -> Mapping[str, Any]:
        rows = self.summary[self.summary["metric"] == metric]
        if rows.empty:
            raise KeyError(f"metric {metric!r} not in the drift summary (has {self.metrics})")
        return rows.iloc[0].to_dict()


def _clean(value: Any) -> Any:
    """JSON-safe: NaN -> None, numpy scalars -> Python."""
    if isinstance(value, (np.floating, float)):
        return None if not math.isfinite(float(value)) else float(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def _unclean(value: Any) -> Any:
    return math.nan if value is None else value


def result_to_dict(result: DriftResult) -> dict[str, Any]:
    """The baseline file's content for ``result``."""
    metrics = {}
    for metric in result.metrics:
        metrics[metric] = {
            "values": _clean(result.windows[metric].to_list()),
            "summary": _clean({k: v for k, v in result.summary_row(metric).items() if k != "metric"}),
        }
        for bound in ("ci_low", "ci_high"):
            if f"{metric}_{bound}" in result.windows.columns:
                metrics[metric][bound] = _clean(result.windows[f"{metric}_{bound}"].to_list())
    return {
        "schema": BASELINE_SCHEMA,
        "generator": result.generator,
        "config": _clean(result.config),
        "windows": {
            col: _clean(result.windows[col].to_list()) for col in ("window_index", "start_s", "end_s", "mid_s")
        },
        "metrics": metrics,
    }


def result_from_dict(data: Mapping[str, Any], source: str = "<dict>") -> DriftResult:
    """Inverse of :func:`result_to_dict` (per-stream rows are not stored in baselines)."""
    if data.get("schema") != BASELINE_SCHEMA:
        raise ValueError(
            f"{source} is not a drift baseline of schema {BASELINE_SCHEMA!r} (found {data.get('schema')!r}); "
            "regenerate it with --drift-update-baselines"
        )
    windows = pd.DataFrame({k: [_unclean(v) for v in vals] for k, vals in data["windows"].items()})
    summary_rows = []
    for metric, entry in data["metrics"].items():
        windows[metric] = [_unclean(v) for v in entry["values"]]
        for bound in ("ci_low", "ci_high"):
            if bound in entry:
                windows[f"{metric}_{bound}"] = [_unclean(v) for v in entry[bound]]
        row = {"metric": metric}
        row.update({k: _unclean(v) for k, v in entry["summary"].items()})
        summary_rows.append(row)
    windows["window_index"] = windows["window_index"].astype(int)
    return DriftResult(str(data["generator"]), windows, pd.DataFrame(summary_rows), dict(data["config"]))


def save_baseline(result: DriftResult, path: str | os.PathLike) -> str:
    """Write ``result`` as a baseline JSON file (atomic: temp file + rename). Returns the path."""
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    text = json.dumps(result_to_dict(result), indent=1, sort_keys=True, allow_nan=False)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=os.path.dirname(os.path.abspath(path)))
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text + "\n")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def load_baseline(path: str | os.PathLike) -> DriftResult:
    """Read a baseline JSON file written by :func:`save_baseline`."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"drift baseline {path!r} does not exist; create it by running the test once with "
            "--drift-update-baselines (or metrics.drift.regression.save_baseline)"
        )
    with open(path) as handle:
        try:
            data = json.load(handle)
        except json.JSONDecodeError as exc:
            raise ValueError(f"drift baseline {path!r} is not valid JSON ({exc}); regenerate it") from exc
    return result_from_dict(data, source=repr(path))


class BaselineMismatch(ValueError):
    """The baseline was made under a different configuration: the comparison would be meaningless."""


@dataclass(frozen=True)
class Violation:
    metric: str
    kind: str  # "value" or "time_to_degrade" or "missing"
    window_index: int
    start_s: float
    end_s: float
    observed: float
    baseline: float
    tolerance: str
    detail: str

    def describe(self) -> str:
        return f"{self.metric}: {self.detail}"


@dataclass
class DriftComparison:
    generator: str
    baseline_source: str
    violations: list[Violation]
    compared_metrics: list[str]
    n_windows: int

    @property
    def ok(self) -> bool:
        return not self.violations

    def message(self) -> str:
        if self.ok:
            return (
                f"drift of {self.generator!r} matches baseline {self.baseline_source} "
                f"({len(self.compared_metrics)} metrics x {self.n_windows} windows)"
            )
        lines = [
            f"drift regression: generator {self.generator!r} vs baseline {self.baseline_source}: "
            f"{len({v.metric for v in self.violations})} metric(s) moved beyond tolerance"
        ]
        lines += [f"  - {v.describe()}" for v in self.violations]
        lines.append(
            "  If the change is intended, refresh the baseline (pytest --drift-update-baselines, or "
            "metrics.drift.regression.save_baseline)."
        )
        return "\n".join(lines)


def _fmt(x: float) -> str:
    if not math.isfinite(x):
        return "nan"
    return f"{x:.4g}"


def _bounds(frame: pd.DataFrame, metric: str, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per window, the hull of the CI and the value (a percentile CI need not contain the value);
    the value itself where a bound is NaN."""
    lo = frame[f"{metric}_ci_low"].to_numpy(dtype=np.float64)
    hi = frame[f"{metric}_ci_high"].to_numpy(dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return (np.where(np.isfinite(lo), np.fmin(lo, values), values),
                np.where(np.isfinite(hi), np.fmax(hi, values), values))


def check_comparable(result: DriftResult, baseline: DriftResult, keys: Sequence[str] = COMPARABLE_KEYS,
                     same_generator: bool = True) -> None:
    """Raise :class:`BaselineMismatch` naming every provenance key that differs (and the generator,
    unless ``same_generator`` is False: comparing another model with a recorded one)."""
    diffs = []
    for key in keys:
        a, b = _clean(result.config.get(key)), _clean(baseline.config.get(key))
        if a != b:
            diffs.append(f"{key}: result {a!r} vs baseline {b!r}")
    if same_generator and result.generator != baseline.generator:
        diffs.append(f"generator: result {result.generator!r} vs baseline {baseline.generator!r}")
    if len(result.windows) < len(baseline.windows):
        diffs.append(f"windows: result has {len(result.windows)}, baseline {len(baseline.windows)} (horizon shorter)")
    if diffs:
        raise BaselineMismatch(
            "drift result is not comparable with its baseline: " + "; ".join(diffs)
            + ". Run with the baseline's settings, or refresh the baseline (--drift-update-baselines)."
        )


def compare_to_baseline(
    result: DriftResult, baseline: DriftResult, tolerance: Tolerance | None = None,
    metrics: Sequence[str] | None = None, baseline_source: str = "<baseline>", same_generator: bool = True,
) -> DriftComparison:
    """Compare ``result`` with ``baseline`` window by window and by time to degrade. With
    ``same_generator=False`` the baseline may come from another generator (a model before and
    after post-training); every other provenance key must still match."""
    tolerance = tolerance or Tolerance()
    check_comparable(result, baseline, same_generator=same_generator)
    names = list(metrics) if metrics is not None else baseline.metrics
    n = len(baseline.windows)
    res_w = result.windows.sort_values("window_index").iloc[:n].reset_index(drop=True)
    base_w = baseline.windows.sort_values("window_index").reset_index(drop=True)
    hop_s = float(result.config.get("hop_s") or 0.0)
    violations: list[Violation] = []
    for metric in names:
        if metric not in result.windows.columns:
            violations.append(Violation(metric, "missing", -1, math.nan, math.nan, math.nan, math.nan, "",
                                        "metric is in the baseline but missing from the result"))
            continue
        r_sum = result.summary_row(metric) if metric in result.metrics else {}
        b_sum = baseline.summary_row(metric)
        slopes = _slopes(r_sum, b_sum)
        found = [_value_violation(metric, res_w, base_w, tolerance, slopes)]
        if tolerance.check_time_to_degrade and r_sum:
            found.append(_time_to_degrade_violation(metric, r_sum, b_sum, base_w, hop_s, slopes))
        violations.extend(v for v in found if v is not None)
    return DriftComparison(result.generator, baseline_source, violations, names, n)


def _slopes(r_sum: Mapping[str, Any], b_sum: Mapping[str, Any]) -> str:
    """The result's slope with its CI and the baseline's slope, for a violation's message."""
    return (
        f"slope {_fmt(float(r_sum.get('slope_per_min', math.nan)))}/min "
        f"[{_fmt(float(r_sum.get('slope_ci_low', math.nan)))}, "
        f"{_fmt(float(r_sum.get('slope_ci_high', math.nan)))}] "
        f"vs baseline {_fmt(float(b_sum.get('slope_per_min', math.nan)))}/min"
    )


def _signed(x: float) -> str:
    return f"{'+' if x >= 0 else ''}{_fmt(x)}"


def _value_violation(
    metric: str, res_w: pd.DataFrame, base_w: pd.DataFrame, tolerance: Tolerance, slopes: str,
) -> Violation | None:
    """The first window where ``metric`` moved beyond tolerance (interval gap when both tables have
    CIs, else the difference; a value NaN on one side only always counts), or None."""
    n = len(base_w)
    obs = res_w[metric].to_numpy(dtype=np.float64)
    base = base_w[metric].to_numpy(dtype=np.float64)
    abs_tol, rel_tol = tolerance.for_metric(metric)
    allowed = np.maximum(abs_tol, rel_tol * np.abs(base))
    both_nan = np.isnan(obs) & np.isnan(base)
    one_nan = np.isnan(obs) ^ np.isnan(base)
    diff = np.where(both_nan | one_nan, 0.0, obs - base)
    lo, hi = f"{metric}_ci_low", f"{metric}_ci_high"
    has_ci = all(c in frame.columns for frame in (res_w, base_w) for c in (lo, hi))
    if has_ci:
        o_lo, o_hi = _bounds(res_w, metric, obs)
        b_lo, b_hi = _bounds(base_w, metric, base)
        gap = np.maximum(0.0, np.maximum(o_lo - b_hi, b_lo - o_hi))  # 0 when the intervals overlap
        gap = np.where(both_nan | one_nan, 0.0, gap)
    else:
        gap = np.abs(diff)
    bad = (gap > allowed) | one_nan
    if not bad.any():
        return None
    i = int(np.argmax(bad))
    worst = int(np.argmax(np.where(one_nan, np.inf, np.abs(diff))))
    if has_ci:
        values = (
            f"{_fmt(obs[i])} [{_fmt(o_lo[i])}, {_fmt(o_hi[i])}] vs {_fmt(base[i])} "
            f"[{_fmt(b_lo[i])}, {_fmt(b_hi[i])}] ({_signed(diff[i])}; intervals {_fmt(gap[i])} apart)"
        )
    else:
        values = f"{_fmt(obs[i])} vs {_fmt(base[i])} ({_signed(diff[i])})"
    detail = (
        f"from window {int(res_w['window_index'][i])} ({res_w['start_s'][i]:.1f}-{res_w['end_s'][i]:.1f} s) "
        f"it differs from the baseline by more than {tolerance.describe(metric)}"
        f"{' beyond the confidence intervals' if has_ci else ''}: {values}; "
        f"{int(bad.sum())} of {n} windows out of tolerance; largest deviation "
        f"{_signed(diff[worst])} at {res_w['start_s'][worst]:.1f} s; {slopes}"
    )
    return Violation(
        metric, "value", int(res_w["window_index"][i]), float(res_w["start_s"][i]), float(res_w["end_s"][i]),
        float(obs[i]), float(base[i]), tolerance.describe(metric), detail,
    )


def _time_to_degrade_violation(
    metric: str, r_sum: Mapping[str, Any], b_sum: Mapping[str, Any], base_w: pd.DataFrame, hop_s: float,
    slopes: str,
) -> Violation | None:
    """A violation when the band rule finds a time to degrade within the horizon that the baseline
    did not have, or more than one hop earlier than the baseline's; None otherwise."""
    t_obs = float(r_sum.get("time_to_degrade_s", math.nan))
    t_base = float(b_sum.get("time_to_degrade_s", math.nan))
    horizon = float(base_w["end_s"].iloc[-1]) if len(base_w) else math.nan
    earlier = math.isfinite(t_obs) and (not math.isfinite(t_base) or t_obs < t_base - hop_s - 1e-9)
    if not (earlier and t_obs < horizon):
        return None
    base_text = f"at {t_base:.1f} s" if math.isfinite(t_base) else f"none within {horizon:.1f} s"
    detail = (
        f"degrades at {t_obs:.1f} s ({r_sum.get('degrade_direction', '')}, value "
        f"{_fmt(float(r_sum.get('degrade_value', math.nan)))} outside the early band "
        f"[{_fmt(float(r_sum.get('band_low', math.nan)))}, "
        f"{_fmt(float(r_sum.get('band_high', math.nan)))}] "
        f"by more than {_fmt(float(r_sum.get('threshold', math.nan)))}); baseline: {base_text}; {slopes}"
    )
    return Violation(
        metric, "time_to_degrade", int(r_sum.get("degrade_window", -1)), t_obs, math.nan,
        float(r_sum.get("degrade_value", math.nan)), t_base, "earlier than baseline by > one hop", detail,
    )


def assert_matches_baseline(
    result: DriftResult, baseline_path: str | os.PathLike, tolerance: Tolerance | None = None,
    metrics: Sequence[str] | None = None,
) -> DriftComparison:
    """Compare ``result`` with the baseline file; raise ``AssertionError`` with the readable message."""
    baseline = load_baseline(baseline_path)
    comparison = compare_to_baseline(result, baseline, tolerance, metrics, baseline_source=os.fspath(baseline_path))
    if not comparison.ok:
        raise AssertionError(comparison.message())
    return comparison
