"""The systems rows of a run: one record per (regime, workload) cell, from the per-cell summary of
:func:`metrics.systems.summarize`, in the units the reports show.

:func:`systems_record` is the one definition of those rows: the report's latency and compute
tables (:mod:`reports.systems_tables`) and the run summary's systems table
(:mod:`reports.summary`) both take their values from it.

Playback values come in two views (:mod:`metrics.playback`): the live model at the recorded
look-ahead (the headline: ``underruns``, ``stall_s``, ``min_prebuffer_s``, ``control_latency_*``,
``verdict``) and the unbounded offline model (a throughput view: ``offline_*``). Rows of runs made
before the live model read live as not measured (NaN and :data:`metrics.playback.LIVE_NOT_MEASURED`),
never assumed; a saved ``summary`` table of such a run holds the offline view under the old names.
"""

from __future__ import annotations

import math
import weakref
from typing import Any, Mapping

import pandas as pd

from bench.core.run_folder import RunData
from metrics import systems
from metrics.playback import LIVE_KEYS, LIVE_NOT_MEASURED, NOT_MEASURED

BYTES_PER_MIB = 2**20

# metrics.systems.summarize of each loaded run's ok cells, computed once per run (weak: freed with the run)
_SUMMARIES: weakref.WeakKeyDictionary[RunData, pd.DataFrame] = weakref.WeakKeyDictionary()


def systems_summary(run: RunData) -> pd.DataFrame:
    """The per-cell systems summary of ``run``'s ok cells (one row per (generator, workload)); empty
    when the run has no completed cell. Computed from the cell tables once per loaded run."""
    if run not in _SUMMARIES:
        summary = pd.DataFrame()
        if not run.streams.empty:
            summary = systems.summarize(run.blocks, run.streams, run.flops, run.peak_flops_per_s, run.cell_peaks)
        _SUMMARIES[run] = summary
    return _SUMMARIES[run]


def _count(value: Any) -> float | int:
    """An underrun count as an int, NaN when not measured."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        return math.nan
    return int(x) if math.isfinite(x) else math.nan


def _not_measured(verdict: str) -> dict[str, Any]:
    return {**{key: math.nan for key in LIVE_KEYS}, "verdict": verdict}


def playback_views(s: Mapping[str, Any]) -> dict[str, Any]:
    """The live (headline) and offline (``offline_*``) playback values of a summary row, and ``lookahead_s``.

    A row without ``offline_verdict`` is a summary saved before the live model: its playback columns are
    the offline view when its scenario was ``offline`` (else not measured), and the live view is not measured.
    """
    if "offline_verdict" in s:
        live = {key: s[key] for key in LIVE_KEYS}
        offline = {key: s[f"offline_{key}"] for key in LIVE_KEYS}
        lookahead = s["lookahead_s"]
    else:
        old = {key: s.get(key, math.nan) for key in LIVE_KEYS}
        offline = old if s.get("scenario", "offline") == "offline" else _not_measured(NOT_MEASURED)
        live, lookahead = _not_measured(LIVE_NOT_MEASURED), math.nan
    out = {"lookahead_s": lookahead, **live, **{f"offline_{key}": value for key, value in offline.items()}}
    out["underruns"], out["offline_underruns"] = _count(out["underruns"]), _count(out["offline_underruns"])
    return out


def systems_record(s: Mapping[str, Any]) -> dict[str, Any]:
    """One cell's systems values in display units, from a row of :func:`metrics.systems.summarize`.

    Times in ms or s, FLOPs in GFLOP, memory in MiB, parameters in millions (the key says which).
    ``rtf``, ``achieved_gflop_per_s`` and ``peak_fraction`` are over the whole stream(s) (total
    compute / total audio); the report tables replace them by medians over blocks with CIs. Playback
    values: :func:`playback_views`.
    """
    record = {
        "generator": s["generator"], "workload": s["workload"], "blocks": int(s["blocks"]),
        "ttfa_ms": s["ttfa_ms"], "first_block_ms": s["first_block_ms"], "p50_ms": s["p50_ms"],
        "p90_ms": s["p90_ms"], "p90_valid": bool(s["p90_valid"]), "p99_ms": s["p99_ms"], "p99_valid": bool(s["p99_valid"]),
        "rtf": s["rtf"], "x_realtime": s["x_realtime"], "prebuffer_s": s["prebuffer_s"],
        "params_m": s["params"] / 1e6,
        "analytic_gflop_per_block": s["steady_analytic_flops"] / 1e9,
        "measured_gflop_per_block": s["steady_measured_flops"] / 1e9,
        "measured_over_analytic": s["steady_flop_ratio"],
        "measured_gflop_per_audio_s": s["measured_flops_per_audio_s"] / 1e9,
        "achieved_gflop_per_s": s["achieved_flops_per_s"] / 1e9, "peak_fraction": s["peak_fraction"],
        "peak_mem_mib": s["peak_mem_bytes"] / BYTES_PER_MIB, "peak_mem_kind": s["peak_mem_kind"],
        "kv_cache_mib": s["kv_cache_bytes"] / BYTES_PER_MIB,
        "transient_kv_mib": s.get("transient_kv_bytes", 0) / BYTES_PER_MIB,  # absent in older runs' summaries
    }
    record.update(playback_views(s))
    return record


NOT_RECORDED = "not recorded"


def what_ran(streams: pd.DataFrame) -> dict[tuple[str, str], dict[str, str]]:
    """(generator, workload) -> {"execution", "attention_kernels"}: what each cell ran, from its
    streams (``eager`` or ``compiled:<mode>``; the aten attention kernels of its first warm-up
    block), "not recorded" in runs made before the streams held them. Repeats of one cell agree
    (one build); differing values are joined with " / "."""
    out: dict[tuple[str, str], dict[str, str]] = {}
    if streams is None or streams.empty:
        return out
    for (generator, workload), rows in streams.groupby(["generator", "workload"], sort=False):
        record = {}
        for key in ("execution", "attention_kernels"):
            values = [str(v) for v in rows[key].dropna().unique()] if key in rows else []
            record[key] = " / ".join(values) if values else NOT_RECORDED
        out[(str(generator), str(workload))] = record
    return out


__all__ = ["systems_summary", "systems_record", "playback_views", "what_ran", "NOT_RECORDED"]
