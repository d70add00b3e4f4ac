"""Music descriptors of a saved run, summarised for the report: each regime's drift-stream windows
and the reference set's clips, as a mean with a seeded cluster-bootstrap 95 % CI.

Read from the drift stage's saved tables only (``drift/stream_windows``, one row per stream and
window; ``drift/reference_descriptors``, one row per reference clip; see
:mod:`metrics.drift.descriptor_windows`). A run without them (descriptors off, or a run made before
they existed) has no descriptor rows, and the tables that use them are unchanged.

The CI resamples whole STREAMS of a regime (all windows of a stream together: windows of one stream
are not independent) and CLIPS of the reference; 1000 resamples, seed 0, percentile interval
(:mod:`metrics.quality.bootstrap`). With 2-3 streams it is little more than their spread.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from bench.core.run_folder import RunData, read_run_table
from bench.core.storage import DRIFT_DIR
from metrics.quality.bootstrap import bootstrap_counts, bootstrap_interval

# The descriptors the quality table shows, in order (the per-window anchors are drift measures only).
TABLE_DESCRIPTORS: tuple[str, ...] = (
    "pitched_fraction", "pitch_range_semitones", "pitch_class_entropy_bits", "key_strength", "onset_rate_hz",
    "tempo_bpm",
)
REFERENCE_ROW = "reference set"  # the regime column of the reference's row
N_BOOT, SEED, LEVEL = 1000, 0, 0.95


def stream_windows(run: RunData) -> pd.DataFrame | None:
    """The drift stage's (stream, window) table when it holds descriptors, else None."""
    table = read_run_table(run.root / DRIFT_DIR, "stream_windows")
    if table is None or "pitched_fraction" not in table.columns:
        return None
    return table


def reference_descriptors(run: RunData) -> pd.DataFrame | None:
    """The reference clips' descriptors (one row per clip and reference), or None."""
    return read_run_table(run.root / DRIFT_DIR, "reference_descriptors")


def clustered_mean(values: np.ndarray, units: np.ndarray, n_boot: int = N_BOOT, seed: int = SEED,
                   level: float = LEVEL) -> tuple[float, float, float]:
    """(mean, CI low, CI high) of the finite ``values``; the bootstrap resamples whole ``units``.

    values: (N,) float; units: (N,) labels (stream or clip). NaN CI with fewer than 2 units.
    """
    v = np.asarray(values, dtype=np.float64)
    ok = np.isfinite(v)
    v, u = v[ok], np.asarray(units)[ok]
    if v.size == 0:
        return math.nan, math.nan, math.nan
    labels, index = np.unique(u, return_inverse=True)
    sums = np.bincount(index, weights=v, minlength=labels.size)  # (U,)
    counts = np.bincount(index, minlength=labels.size).astype(np.float64)  # (U,)
    mean = float(v.mean())
    if labels.size < 2:
        return mean, math.nan, math.nan
    draws = bootstrap_counts(labels.size, n_boot, seed, 0).astype(np.float64)  # (B, U)
    replicates = (draws @ sums) / (draws @ counts)  # (B,)
    ci = bootstrap_interval(replicates, level=level, seed=seed, unit="stream or clip")
    return mean, ci.low, ci.high


def _row(frame: pd.DataFrame, unit: str) -> dict[str, float]:
    """``<descriptor>``, ``_ci_low``, ``_ci_high`` of every table descriptor over ``frame``'s rows."""
    out: dict[str, float] = {}
    for name in TABLE_DESCRIPTORS:
        if name not in frame:
            continue
        out[name], out[f"{name}_ci_low"], out[f"{name}_ci_high"] = clustered_mean(
            pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=float), frame[unit].to_numpy())
    return out


def descriptor_rows(run: RunData, workload: str) -> pd.DataFrame:
    """One row per regime (streams' windows pooled) and one for the reference set (its clips).

    Columns: ``generator``, ``workload``, ``n`` (windows or clips), every descriptor with its CI.
    Empty when the run has no descriptor tables.
    """
    rows: list[dict[str, Any]] = []
    windows = stream_windows(run)
    if windows is not None:
        for gen, part in windows.groupby("generator", sort=False):
            rows.append({"generator": gen, "workload": workload, "n": len(part), **_row(part, "stream")})
    reference = reference_descriptors(run)
    if rows and reference is not None and not reference.empty:
        keys = [k for k in ("sample_rate", "duration_s") if k in reference]  # one reference set: the first prepared
        first = reference[(reference[keys] == reference[keys].iloc[0]).all(axis=1)] if keys else reference
        rows.append({"generator": REFERENCE_ROW, "workload": workload, "n": len(first), **_row(first, "clip")})
    return pd.DataFrame(rows)


__all__ = ["REFERENCE_ROW", "TABLE_DESCRIPTORS", "clustered_mean", "descriptor_rows", "reference_descriptors",
           "stream_windows"]
