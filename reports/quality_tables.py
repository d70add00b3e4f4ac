"""The quality and drift tables of the report, from the drift stage's saved tables (or a run's own
``quality`` table).

- ``quality``: distances to the reference set per regime, one column per metric, with CIs (the
  run's ``quality.parquet`` when it has one, else the median over the drift stage's windows; the
  embedder is named in every header); when the drift stage computed music descriptors, also each
  regime's mean descriptors over its drift windows and a row for the reference set's clips, with
  seeded cluster-bootstrap CIs (:mod:`reports.descriptor_stats`);
- ``drift``: per regime and metric, the drift summary (first/last window, last/first, slope per
  minute with its CI, time to degrade).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from bench.core.run_folder import RunData, RunSet
from reports.descriptor_stats import REFERENCE_ROW, TABLE_DESCRIPTORS, descriptor_rows
from reports.formatting import format_fixed, format_significant, is_finite
from reports.metric_names import metric_direction, metric_label, metric_rank
from reports.order_statistics import median_ci
from reports.table_model import Column, Table, prefix_run, run_columns, sort_rows

QUALITY_COLUMNS = ["generator", "workload", "metric", "value", "ci_low", "ci_high"]


def drift_workload_name(run: RunData) -> str:
    """The harness workload whose stream the drift stage used (from drift/config.json)."""
    stream = ((run.drift_config.get("drift") or {}).get("stream") or {})
    return str(stream.get("name") or (run.drift_config.get("drift") or {}).get("name") or "drift")


def _quality_metric_columns(windows: pd.DataFrame, summarised: set[str] | None) -> list[str]:
    """Quality metrics of a drift window table: metrics the drift stage summarised (not CI bounds or
    bookkeeping such as ``fad_logmel_clipped_eigenvalues``) that have a direction, self-distances excluded."""
    return [c for c in windows.columns if metric_direction(c) and not c.endswith(("_ci_low", "_ci_high"))
            and not c.startswith("self_") and (summarised is None or c in summarised)]


def quality_long(run: RunData) -> tuple[pd.DataFrame, str]:
    """Tidy quality rows (generator, workload, metric, value, ci_low, ci_high) and a sentence naming the source."""
    if run.quality is not None and not run.quality.empty:
        q = run.quality.copy()
        for col in ("ci_low", "ci_high"):
            if col not in q:
                q[col] = math.nan
        return q[QUALITY_COLUMNS], "the run's quality table"
    if run.drift_windows is None or run.drift_windows.empty:
        return pd.DataFrame(columns=QUALITY_COLUMNS), ""
    work = drift_workload_name(run)
    summarised = set(run.drift_summary.metric) if run.drift_summary is not None else None
    rows = []
    for gen, part in run.drift_windows.groupby("generator", sort=False):
        for metric in _quality_metric_columns(part, summarised):
            med, lo, hi = median_ci(part[metric].to_numpy())
            rows.append({"generator": gen, "workload": work, "metric": metric, "value": med, "ci_low": lo, "ci_high": hi})
    scoring = run.drift_config.get("scoring") or {}
    window = scoring.get("window_s")
    source = (
        f"median over the drift stage's windows ({format_significant(window, 6)} s each, pooled over streams)"
        if is_finite(window)
        else "median over the drift stage's windows"
    )
    ref = scoring.get("reference")
    if ref:
        source += f"; reference set: {ref}"
    return pd.DataFrame(rows, columns=QUALITY_COLUMNS), source


def _with_descriptors(run: RunData, rows: pd.DataFrame) -> tuple[pd.DataFrame, bool]:
    """``rows`` (one per regime and workload) joined with the run's descriptor rows (and the
    reference's row); unchanged, with False, when the run has no descriptors."""
    described = descriptor_rows(run, drift_workload_name(run))
    if described.empty:
        return rows, False
    described = described.drop(columns=["n"])
    if rows.empty:
        return described, True
    return rows.merge(described, on=["generator", "workload"], how="outer", sort=False), True


def _reference_last(data: pd.DataFrame) -> pd.DataFrame:
    """The reference set's rows after the regimes of their run and workload (order otherwise kept)."""
    keys = [k for k in ("run", "workload") if k in data]
    order = data.assign(_reference=data["generator"] == REFERENCE_ROW)
    return order.sort_values(keys + ["_reference"], kind="stable").drop(columns=["_reference"]).reset_index(drop=True)


def _descriptor_notes() -> list[str]:
    return [
        f"Music descriptors (pitched fraction ... tempo): mean over the drift stage's windows of every stream, and "
        f"for '{REFERENCE_ROW}' over its clips (one window long each); [a, b]: seeded bootstrap 95% CI resampling "
        "whole streams (clips for the reference), so with 2-3 streams it is little more than their spread. No "
        "direction: compare each regime with the reference row (docs/descriptors.md).",
    ]


def quality_table(runs: RunSet) -> Table:
    """Quality per regime: one column per metric (direction from the metric), with CIs; the music
    descriptors beside the reference set's when the drift stage computed them."""
    frames, sources = [], []
    any_descriptors = False
    for run in runs:
        long, source = quality_long(run)
        rows = []
        for (gen, work), part in long.groupby(["generator", "workload"], sort=True):
            row: dict[str, Any] = {"generator": gen, "workload": work}
            for _, r in part.sort_values("metric").iterrows():
                row.update({r.metric: r.value, f"{r.metric}_ci_low": r.ci_low, f"{r.metric}_ci_high": r.ci_high})
            rows.append(row)
        table, described = _with_descriptors(run, pd.DataFrame(rows))
        if table.empty:
            continue
        any_descriptors |= described
        sources.append(f"{run.label}: {source}" if runs.multi else source)
        frames.append(prefix_run(run, runs, table))
    if not frames:
        return Table("quality", "Quality", pd.DataFrame(), [], [], [
            "not in this run: no quality or drift tables (run the drift stage, or add a quality stage)"])
    data = sort_rows(pd.concat(frames, ignore_index=True), [])
    if any_descriptors:
        data = _reference_last(data)
    metrics = sorted({c for c in data.columns if metric_direction(c) and not c.endswith(("_ci_low", "_ci_high"))})
    columns = run_columns(runs) + [Column("generator", "regime", kind="text"), Column("workload", "workload", kind="text")]
    columns += [Column(m, metric_label(m), metric_direction(m), ci=True) for m in metrics]
    columns += [Column(d, metric_label(d), None, ci=True) for d in TABLE_DESCRIPTORS if d in data]
    notes = ["Source: " + "; ".join(s for s in sources if s) + "."]
    notes.append("Log-mel metrics use the weight-free log-mel embedder: NOT pretrained-model FAD/KAD; never compare "
                 "them with published numbers. [a, b]: 95% CI of the median over windows.")
    for metric in metrics:
        if not np.isfinite(pd.to_numeric(data[metric], errors="coerce").astype(float)).any():
            reasons = sorted({str(n) for r in runs if r.drift_windows is not None and "notes" in r.drift_windows
                              for n in r.drift_windows["notes"].dropna() if str(n).strip()})
            why = [n for n in reasons if metric.split("_")[0].upper() in n] or reasons
            notes.append(f"{metric_label(metric)}: not measured in any window" + (f" ({why[0]})" if why else "") + ".")
    clap = [r.drift_config.get("scoring", {}).get("clap_identity") for r in runs if r.drift_config]
    if not any("clap_score" in m for m in metrics):
        reason = str(clap[0]) if clap and clap[0] else "not measured: no CLAP checkpoint given"
        notes.append("CLAP score: " + (reason if reason.startswith("not measured") else f"not measured ({reason})") + ".")
    if any_descriptors:
        notes += _descriptor_notes()
    return Table("quality", "Quality", data, columns, ["workload"], notes)


def drift_table(runs: RunSet) -> Table:
    """The drift summary per regime and metric."""
    frames, described = [], []
    for run in runs:
        if run.drift_summary is None or run.drift_summary.empty:
            continue
        d = run.drift_summary.copy()
        df = pd.DataFrame({
            "generator": d.generator, "metric": d.metric, "metric_label": [metric_label(m) for m in d.metric],
            "n_windows": d.n_windows, "first": d["first"], "last": d["last"], "last_first_ratio": d.last_first_ratio,
            "slope_per_min": d.slope_per_min, "slope_per_min_ci_low": d.slope_ci_low,
            "slope_per_min_ci_high": d.slope_ci_high, "time_to_degrade_s": d.time_to_degrade_s,
            "degrade_direction": d.degrade_direction.fillna("").astype(str), "drifted": d.drifted.astype(bool),
        })
        df.insert(1, "workload", drift_workload_name(run))
        frames.append(prefix_run(run, runs, df))
        desc = (run.drift_config.get("drift") or {})
        execution = run.drift_config.get("execution") or {}
        workers = int(execution.get("workers", 1))
        described.append(
            f"{desc.get('n_streams', '?')} streams x {desc.get('horizon_s', '?')} s, windows of "
            f"{desc.get('window_s', '?')} s every {desc.get('hop_s', '?')} s"
            + (f", generated and scored in {workers} worker processes of {execution.get('threads_per_worker', '?')} "
               "torch thread(s) each" if workers > 1 else "")
        )
    if not frames:
        return Table("drift", "Drift over stream time", pd.DataFrame(), [], [], [
            "not in this run: no drift tables (the drift stage did not run; see docs/drift.md)"])
    data = pd.concat(frames, ignore_index=True)
    data["metric_rank"] = data.metric.map(metric_rank)
    data = sort_rows(data, []).copy()
    data = data.sort_values([k for k in ("run", "workload") if k in data] + ["metric_rank", "metric"],
                            kind="stable").drop(columns=["metric_rank"]).reset_index(drop=True)
    data["time_to_degrade"] = [
        f"{format_fixed(t, 1, thousands=False)} s ({d})" if is_finite(t) else "none"
        for t, d in zip(data.time_to_degrade_s, data.degrade_direction)
    ]
    columns = run_columns(runs) + [
        Column("metric_label", "metric", kind="text"), Column("generator", "regime", kind="text"),
        Column("n_windows", "windows", kind="int"), Column("first", "first window"), Column("last", "last window"),
        Column("last_first_ratio", "last / first", "near_one"),
        Column("slope_per_min", "slope per minute", "abs_lower", ci=True),
        Column("time_to_degrade", "time to degrade", kind="text"),
    ]
    notes = [
        "Drift stage: " + "; ".join(sorted(set(described))) + ". Slope: OLS per minute with a t-based 95% CI. "
        "Time to degrade: first window outside the early-window band (docs/drift.md); none = not within the horizon.",
        "Best markers compare regimes within a metric: slope closest to 0, last/first closest to 1.",
    ]
    return Table("drift", "Drift over stream time", data, columns, ["metric"], notes)


__all__ = ["drift_workload_name", "quality_long", "quality_table", "drift_table"]
