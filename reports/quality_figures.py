"""Drift and quality figures: drift metrics and music descriptors over stream time with their bands
and onsets, and quality against the real-time factor (see :mod:`reports.figures` for the list and
captions)."""

from __future__ import annotations

import math
import textwrap
from typing import Any

import numpy as np
import pandas as pd

from bench.core.run_folder import RunData, RunSet, read_run_table
from bench.core.storage import DRIFT_DIR
from metrics.drift.descriptor_columns import WINDOW_MEAN_COLUMNS
from reports.descriptor_stats import reference_descriptors
from reports.figure_parts import Missing, legend, run_style, series_label
from reports.metric_names import metric_direction, metric_label
from reports.quality_tables import quality_long
from reports.style import new_figure, regime_colour, sort_regimes
from reports.systems_tables import latency_table

DRIFT_PANEL_METRICS = ("kad_", "self_kad_", "fad_", "clap_score", "loudness_lufs", "spectral_centroid_hz",
                       "spectral_flatness", "silence_ratio")


def _drift_metrics(windows: pd.DataFrame) -> list[str]:
    """Up to six window-table metrics with finite values, in :data:`DRIFT_PANEL_METRICS` order."""
    out = []
    for prefix in DRIFT_PANEL_METRICS:
        for col in windows.columns:
            if col.endswith(("_ci_low", "_ci_high")) or col in out:
                continue
            if (col == prefix or (prefix.endswith("_") and col.startswith(prefix) and "clipped" not in col)) \
                    and np.isfinite(pd.to_numeric(windows[col], errors="coerce")).any():
                out.append(col)
    return out[:6]


def _stream_windows(run: RunData) -> pd.DataFrame | None:
    """The drift stage's per-stream window table (None when the run has none)."""
    return read_run_table(run.root / DRIFT_DIR, "stream_windows")


def _metric_panel(ax: Any, metric: str, runs: RunSet, with_drift: list[RunData]) -> None:
    """One panel: ``metric`` over stream time per regime and run, with its CI band (or the range
    over streams) and the detected time to degrade dotted."""
    for run in with_drift:
        w = run.drift_windows
        sw = _stream_windows(run)
        onsets = run.drift_summary[run.drift_summary.metric == metric] if run.drift_summary is not None else None
        for gen in sort_regimes(w.generator.unique()):
            g = w[w.generator == gen].sort_values("window_index")
            t, v = g.mid_s.to_numpy(dtype=float), pd.to_numeric(g[metric], errors="coerce").to_numpy(dtype=float)
            colour = regime_colour(gen)
            ax.plot(t, v, run_style(runs, run), color=colour, label=series_label(run, runs, gen))
            if f"{metric}_ci_low" in g:
                lo, hi = g[f"{metric}_ci_low"].to_numpy(dtype=float), g[f"{metric}_ci_high"].to_numpy(dtype=float)
            elif sw is not None and metric in sw:
                s = sw[sw.generator == gen].groupby("window_index")[metric]
                lo = s.min().reindex(g.window_index).to_numpy(dtype=float)
                hi = s.max().reindex(g.window_index).to_numpy(dtype=float)
            else:
                lo = hi = None
            if lo is not None:
                ax.fill_between(t, lo, hi, color=colour, alpha=0.2, linewidth=0)
            if onsets is not None:
                o = onsets[(onsets.generator == gen) & onsets.drifted.astype(bool)]
                if not o.empty:
                    ax.axvline(float(o.time_to_degrade_s.iloc[0]), color=colour, linestyle=":", linewidth=1.0)
    ax.set_title(textwrap.fill(metric_label(metric), 34), fontsize=6.5)
    ax.set_xlabel("stream time (s)")


def _panel_grid(metrics: list[str], ncols: int) -> tuple[Any, list[Any]]:
    """A double-column figure with one panel per metric (unused panels hidden)."""
    ncols = min(ncols, len(metrics))
    nrows = math.ceil(len(metrics) / ncols)
    fig = new_figure(columns=2, aspect=0.3 * nrows)
    axes = list(fig.subplots(nrows, ncols, squeeze=False).ravel())
    for ax in axes[len(metrics):]:
        ax.set_visible(False)
    return fig, axes


def drift_curves(runs: RunSet) -> tuple[Any, str]:
    """Drift metrics over stream time with CI bands (or the range over streams), onsets dotted."""
    with_drift = [run for run in runs if run.drift_windows is not None and not run.drift_windows.empty]
    if not with_drift:
        raise Missing("not in this run: no drift stage tables (drift/windows.parquet)")
    metrics = _drift_metrics(pd.concat([r.drift_windows for r in with_drift], ignore_index=True))
    if not metrics:
        raise Missing("not in this run: the drift tables hold no finite metric values")
    fig, axes = _panel_grid(metrics, 3)
    for ax, metric in zip(axes, metrics):
        _metric_panel(ax, metric, runs, with_drift)
    legend(axes[0], loc="best")
    return fig, ("Drift over stream time: window values (pooled over the drift streams) with bands: the bootstrap "
                 "95% CI where the metric has one, else the range over streams. Dotted: detected time to degrade. "
                 "Log-mel metrics come from the weight-free log-mel embedder, not a pretrained model.")


def _reference_level(run: RunData, metric: str) -> float:
    """Mean of ``metric`` over the run's reference clips (NaN when not described)."""
    ref = reference_descriptors(run)
    if ref is None or metric not in ref:
        return math.nan
    values = pd.to_numeric(ref[metric], errors="coerce").to_numpy(dtype=float)
    return float(np.nanmean(values)) if np.isfinite(values).any() else math.nan


def descriptor_curves(runs: RunSet) -> tuple[Any, str]:
    """The music descriptors over stream time (mean over streams with the bootstrap CI band), the
    reference clips' mean dashed, onsets dotted."""
    with_drift = [run for run in runs if run.drift_windows is not None and not run.drift_windows.empty]
    windows = pd.concat([r.drift_windows for r in with_drift], ignore_index=True) if with_drift else pd.DataFrame()
    metrics = [m for m in WINDOW_MEAN_COLUMNS if m in windows
               and np.isfinite(pd.to_numeric(windows[m], errors="coerce")).any()]
    if not metrics:
        raise Missing("not in this run: no music descriptors in the drift tables (run the drift stage with "
                      "drift.descriptors=true; docs/drift.md)")
    fig, axes = _panel_grid(metrics, 4)
    for ax, metric in zip(axes, metrics):
        _metric_panel(ax, metric, runs, with_drift)
        for run in with_drift:
            level = _reference_level(run, metric)
            if math.isfinite(level):
                ax.axhline(level, color="0.35", linestyle="--", linewidth=0.8,
                           label="reference clips (mean)" if ax is axes[0] else None)
    legend(axes[0], loc="best")
    return fig, ("Music descriptors over stream time: mean over the drift streams per window with the bootstrap 95% "
                 "CI band; dashed: the mean over the reference set's clips; dotted: detected time to degrade. "
                 "'In the first window's key' and 'chroma r' compare each window with its stream's first window "
                 "(key drift). PESTO pitch, Krumhansl-Schmuckler key, librosa onsets and tempo (docs/descriptors.md).")


def quality_vs_rtf(runs: RunSet) -> tuple[Any, str]:
    """A quality metric against the real-time factor, one point per regime (both with CIs)."""
    lat = latency_table(runs).data
    points = []
    for run in runs:
        long, _ = quality_long(run)
        if long.empty:
            continue
        for metric in sorted(long.metric.unique(), key=lambda m: (not m.startswith("kad"), m)):
            if metric_direction(metric):
                break
        else:
            continue
        for _, q in long[long.metric == metric].iterrows():
            sel = (lat.generator == q.generator) & (lat.workload == q.workload)
            if "run" in lat:
                sel &= lat.run == run.label
            if not sel.any():
                continue
            r = lat[sel].iloc[0]
            points.append({"run": run, "generator": q.generator, "metric": metric, "q": q.value, "q_lo": q.ci_low,
                           "q_hi": q.ci_high, "rtf": r.rtf, "rtf_lo": r.rtf_ci_low, "rtf_hi": r.rtf_ci_high})
    if not points:
        raise Missing("not in this run: needs quality (drift stage) and timing of the same regimes and workload")
    fig = new_figure(columns=1, aspect=0.8)
    ax = fig.subplots()
    for p in points:
        xerr = [[np.nan_to_num(p["rtf"] - p["rtf_lo"])], [np.nan_to_num(p["rtf_hi"] - p["rtf"])]]
        yerr = [[np.nan_to_num(p["q"] - p["q_lo"])], [np.nan_to_num(p["q_hi"] - p["q"])]]
        ax.errorbar([p["rtf"]], [p["q"]], xerr=xerr, yerr=yerr, fmt="o", color=regime_colour(p["generator"]),
                    capsize=2, label=series_label(p["run"], runs, p["generator"]))
    ax.axvline(1.0, color="black", linestyle="--", linewidth=0.8, label="real time")
    ax.set_xlabel("RTF, median per block")
    ax.set_ylabel(textwrap.fill(metric_label(points[0]["metric"]), 30), fontsize=6.5)
    legend(ax, loc="best")
    return fig, ("Quality against speed, one point per regime (95% CIs). Quality: median over the drift stage's "
                 "windows against its reference set; "
                 + ("lower is better." if metric_direction(points[0]["metric"]) == "lower" else "higher is better."))


__all__ = ["descriptor_curves", "drift_curves", "quality_vs_rtf"]
