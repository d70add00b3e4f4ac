"""The systems tables of the report: latency and real time, latency per phase, compute and memory.

Per (regime, workload) cell, from the run's saved records through :mod:`metrics.systems` (the
values of :func:`reports.systems_rows.systems_record`), with medians over blocks and their
distribution-free 95 % CIs (:mod:`reports.order_statistics`) where a column is "per block".
The latency table's playback columns show the live model (the headline) beside the unbounded
offline model (a throughput view, ``offline_*``); see :mod:`metrics.playback`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from bench.core.phases import PHASE_ORDER
from bench.core.run_folder import RunData, RunSet
from reports.formatting import format_fixed, is_finite, node_peaks_text
from reports.order_statistics import median_ci
from reports.systems_rows import NOT_RECORDED, systems_record, systems_summary, what_ran
from reports.table_model import Column, Table, prefix_run, run_columns, sort_rows

# Data columns of the latency and compute tables (their CSV columns, in this order).
LATENCY_KEYS = (
    "generator", "workload", "blocks", "block_s", "ttfa_ms", "first_block_ms", "steady_median_ms",
    "steady_median_ms_ci_low", "steady_median_ms_ci_high", "p90_ms", "p90_valid", "p99_ms", "p99_valid", "rtf",
    "rtf_ci_low", "rtf_ci_high", "x_realtime", "lookahead_s", "underruns", "stall_s", "prebuffer_s", "min_prebuffer_s",
    "control_latency_worst_ms", "verdict", "offline_underruns", "offline_stall_s", "offline_min_prebuffer_s",
    "offline_control_latency_worst_ms", "offline_verdict",
)
COMPUTE_KEYS = (
    "generator", "workload", "params_m", "analytic_gflop_per_block", "measured_gflop_per_block",
    "measured_over_analytic", "measured_gflop_per_audio_s", "achieved_gflop_per_s", "achieved_gflop_per_s_ci_low",
    "achieved_gflop_per_s_ci_high", "peak_fraction", "peak_fraction_ci_low", "peak_fraction_ci_high", "peak_mem_mib",
    "peak_mem_kind", "kv_cache_mib", "execution", "attention_kernels",
)


def _cell_blocks(run: RunData, s: pd.Series) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(all blocks, steady blocks) of summary row ``s``'s cell; steady = after the first (all when only one)."""
    b = run.blocks[(run.blocks.generator == s.generator) & (run.blocks.workload == s.workload)]
    steady = b[b.block_index > 0] if (b.block_index > 0).any() else b
    return b, steady


def _latency_row(run: RunData, s: pd.Series) -> dict[str, Any]:
    b, steady = _cell_blocks(run, s)
    record = systems_record(s)
    med, lo, hi = median_ci(steady.latency_ns.to_numpy() / 1e6)
    rtf_med, rtf_lo, rtf_hi = median_ci((b.latency_ns.to_numpy() / 1e9) / b.audio_s.to_numpy())  # per block
    record.update({
        "block_s": float(np.median(b.audio_s)),
        "steady_median_ms": med, "steady_median_ms_ci_low": lo, "steady_median_ms_ci_high": hi,
        "rtf": rtf_med, "rtf_ci_low": rtf_lo, "rtf_ci_high": rtf_hi,
    })
    return {key: record[key] for key in LATENCY_KEYS}


def latency_table(runs: RunSet) -> Table:
    """Latency and real time per (regime, workload)."""
    frames = []
    for run in runs:
        summary = systems_summary(run)
        if summary.empty:
            continue
        rows = [_latency_row(run, s) for _, s in summary.iterrows()]
        frames.append(prefix_run(run, runs, pd.DataFrame(rows)))
    data = sort_rows(pd.concat(frames, ignore_index=True), []) if frames else pd.DataFrame()
    columns = run_columns(runs) + [
        Column("generator", "regime", kind="text"), Column("workload", "workload", kind="text"),
        Column("blocks", "blocks", kind="int"),
        Column("ttfa_ms", "TTFA (ms)", "lower"),
        Column("first_block_ms", "first block (ms)", "lower"),
        Column("steady_median_ms", "steady block, median (ms)", "lower", ci=True),
        Column("p90_ms", "p90 (ms)", "lower", valid_key="p90_valid"),
        Column("p99_ms", "p99 (ms)", "lower", valid_key="p99_valid"),
        Column("rtf", "RTF, median per block", "lower", ci=True),
        Column("x_realtime", "x real time", "higher"),
        Column("lookahead_s", "look-ahead (s)"),
        Column("underruns", "underruns, live", "lower", kind="int"),
        Column("stall_s", "stall, live (s)", "lower"),
        Column("min_prebuffer_s", "min pre-buffer, live (s)", "lower"),
        Column("control_latency_worst_ms", "control latency, worst, live (ms)", "lower"),
        Column("verdict", "verdict, live", kind="text"),
        Column("offline_underruns", "offline underruns", kind="int"),
        Column("offline_control_latency_worst_ms", "offline control latency, worst (ms)"),
        Column("offline_verdict", "offline verdict (throughput)", kind="text"),
    ]
    notes = [
        "TTFA: from the call to start() until the first block's audio is on the host. Steady blocks: every block "
        "after the first. RTF = compute s / audio s per block (< 1 is faster than real time); x real time = total "
        "audio s / total compute s of the stream(s).",
        "† too few samples for a valid percentile (MLPerf's minimum: 64 for p90, 662 for p99); never ranked.",
        "Live (the headline): underruns, stall, min pre-buffer, control latency and verdict simulate live playback "
        "from the measured block times: the generator starts a block only when at most the look-ahead of audio is "
        "still unplayed (docs/harness.md); min pre-buffer is the smallest whole-block pre-buffer (and look-ahead) "
        "that plays without an underrun. Control latency: worst case over prompt changes (– when the workload has "
        "none).",
        "Offline (a throughput view, not a live verdict): the same blocks back to back with no bound on the lead, "
        "so a stall can hide in the lead and control latency grows with it.",
    ]
    if not data.empty and not np.isfinite(pd.to_numeric(data.lookahead_s, errors="coerce")).all():
        notes.append("Live columns –, verdict \"not measured\": a run recorded before the live model (its streams "
                     "hold no look-ahead); only the offline view is shown for it.")
    if data.empty:
        notes = ["not in this run: no completed cell (see the failures list)"]
    return Table("latency", "Latency and real time", data, columns, ["workload"], notes)


def _attainable_ms(run: RunData, column: str = "attainable_ms") -> dict[tuple[str, str, str, str], float]:
    """Attainable ms (``column``: warm, or ``attainable_cold_ms``) per (generator, workload, phase,
    block kind) from the FLOPs pass (empty when it did not run or modelled nothing, e.g. under a
    fake clock, or for a run recorded before the column existed)."""
    flops = run.flops
    if flops.empty or column not in flops:
        return {}
    keys = ["generator", "workload", "phase", "block_kind"]
    return {k: float(v) for k, v in flops.groupby(keys)[column].median().items() if np.isfinite(v)}


def _phase_rows(run: RunData) -> pd.DataFrame:
    """One row per (generator, workload, phase, block kind): median latency per block with its CI,
    the attainable time on the machine that ran it and the share of it the median reaches."""
    df = run.phases.assign(block_kind=np.where(run.phases.block_index == 0, "first", "steady"))
    attainable, cold = _attainable_ms(run), _attainable_ms(run, "attainable_cold_ms")
    rows = []
    for (gen, work, phase, kind), part in df.groupby(["generator", "workload", "phase", "block_kind"], sort=False):
        med, lo, hi = median_ci(part.latency_ms.to_numpy())
        att = attainable.get((gen, work, phase, kind), math.nan)
        rows.append({
            "attainable_ms": att, "attainable_pct": 100.0 * att / med if med > 0 and is_finite(att) else math.nan,
            "attainable_cold_ms": cold.get((gen, work, phase, kind), math.nan),
            "generator": gen, "workload": work, "phase": phase, "block_kind": kind,
            "phase_rank": PHASE_ORDER.index(phase) if phase in PHASE_ORDER else len(PHASE_ORDER),
            "calls_per_block": float(np.median(part.calls)), "blocks": int(part.shape[0]),
            "median_ms": med, "median_ms_ci_low": lo, "median_ms_ci_high": hi,
            "analytic_gflop": float(np.median(part.analytic_flops)) / 1e9,
        })
    return pd.DataFrame(rows)


def phase_table(runs: RunSet) -> Table:
    """Median latency per phase and block kind (first block vs steady blocks)."""
    frames = [prefix_run(run, runs, _phase_rows(run)) for run in runs if not run.phases.empty]
    data = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if not data.empty:
        data = sort_rows(data, ["block_kind", "phase_rank", "phase"]).drop(columns=["phase_rank"])
    columns = run_columns(runs) + [
        Column("generator", "regime", kind="text"), Column("workload", "workload", kind="text"),
        Column("block_kind", "block", kind="text"), Column("phase", "phase", kind="text"),
        Column("calls_per_block", "calls per block"), Column("blocks", "blocks", kind="int"),
        Column("median_ms", "median per block (ms)", ci=True),
        Column("analytic_gflop", "analytic GFLOP per block"),
        Column("attainable_ms", "attainable (ms)"), Column("attainable_pct", "% of attainable"),
        Column("attainable_cold_ms", "attainable, cold operands (ms)"),
    ]
    notes = ["Per phase: time summed over the phase's calls within one block, median over blocks.",
             "Attainable: the phase's matmuls and attention replayed alone at their shapes plus its other "
             "operations' bytes at the measured bandwidth, on the machine that ran it (docs/harness.md); "
             "% of attainable = attainable / median (100% = the code adds nothing to the hardware's cost).",
             "Cold operands: the same replays with every call's operands taken from memory, as a layer's weights "
             "are inside a pass; a real pass lies between the two (few-row matmuls slow down most)."]
    return Table("phases", "Latency per phase", data, columns, [], notes if not data.empty else
                 ["not in this run: no completed cell"])


def _compute_row(run: RunData, s: pd.Series, ran: dict[tuple[str, str], dict[str, str]]) -> dict[str, Any]:
    _, steady = _cell_blocks(run, s)
    peak = run.cell_peak(s.generator, s.workload)
    achieved = steady.analytic_flops.to_numpy() / (steady.latency_ns.to_numpy() / 1e9)  # FLOP/s per steady block
    achieved = np.where(steady.analytic_flops.to_numpy() > 0, achieved, np.nan)
    med, lo, hi = median_ci(achieved / 1e9)
    frac = [v / (peak / 1e9) if peak and is_finite(v) else math.nan for v in (med, lo, hi)]
    record = systems_record(s)
    record.update({
        "achieved_gflop_per_s": med, "achieved_gflop_per_s_ci_low": lo, "achieved_gflop_per_s_ci_high": hi,
        "peak_fraction": frac[0], "peak_fraction_ci_low": frac[1], "peak_fraction_ci_high": frac[2],
        **ran.get((str(s.generator), str(s.workload)), {"execution": NOT_RECORDED, "attention_kernels": NOT_RECORDED}),
    })
    return {key: record[key] for key in COMPUTE_KEYS}


def _peak_text(run: RunData, runs: RunSet) -> str:
    """The run's measured machine peak for the notes (or each cell's node's, or why there is none)."""
    peak, node_peaks = run.peak_flops_per_s, list(run.cell_peaks.values())
    if peak:
        text = (f"{format_fixed(peak / 1e9, 1, thousands=False)} GFLOP/s ({run.peak.get('dtype', '?')}, "
                f"{run.peak.get('device', '?')})")
    elif node_peaks:
        text = node_peaks_text(node_peaks, run.peak.get("dtype", "?"))
    else:
        text = str(run.peak.get("note") or "not measured: no peak.json")
    return (f"{run.label}: " if runs.multi else "") + text


def compute_table(runs: RunSet) -> Table:
    """Compute per (regime, workload): parameters, FLOPs, achieved FLOP/s, fraction of peak, memory."""
    frames = []
    kinds: set[str] = set()
    peaks: list[str] = []
    for run in runs:
        summary = systems_summary(run)
        if summary.empty:
            continue
        peaks.append(_peak_text(run, runs))
        kinds.update(str(kind) for kind in summary.peak_mem_kind)
        ran = what_ran(run.streams)
        rows = [_compute_row(run, s, ran) for _, s in summary.iterrows()]
        frames.append(prefix_run(run, runs, pd.DataFrame(rows)))
    data = sort_rows(pd.concat(frames, ignore_index=True), []) if frames else pd.DataFrame()
    columns = run_columns(runs) + [
        Column("generator", "regime", kind="text"), Column("workload", "workload", kind="text"),
        Column("execution", "execution", kind="text"),
        Column("attention_kernels", "attention kernels (first warm-up block)", kind="text"),
        Column("params_m", "params (M)"),
        Column("analytic_gflop_per_block", "analytic GFLOP per block"),
        Column("measured_over_analytic", "measured / analytic"),
        Column("measured_gflop_per_audio_s", "measured GFLOP per audio s", "lower"),
        Column("achieved_gflop_per_s", "achieved GFLOP/s, median", "higher", ci=True),
        Column("peak_fraction", "fraction of peak", "higher", kind="pct", ci=True),
        Column("peak_mem_mib", "peak memory (MiB)", "lower" if kinds == {"cuda_allocator"} else None),
        Column("kv_cache_mib", "KV cache (MiB)", "lower"),
    ]
    notes = [
        "FLOPs of a steady block: analytic (matmul-level formula) and measured (FlopCounterMode, separate untimed "
        "pass); achieved GFLOP/s = analytic FLOPs of a steady block / its latency (median over steady blocks).",
        "Machine peak (square-matmul micro-benchmark): " + "; ".join(peaks) + ".",
        "Execution: eager, or compiled:<mode> (torch.compile; reduce-overhead on a GPU adds CUDA graphs); the "
        "attention kernels are the aten scaled-dot-product ops the cell's first warm-up block dispatched, read "
        "from the profiler (none: no such op, e.g. attention lowered into a compiled graph's own kernels).",
        "Peak memory: " + ", ".join(sorted(kinds)) + (
            "" if kinds == {"cuda_allocator"} else
            " (on the CPU the whole process's peak RSS: Python, libraries and earlier cells included, so it is "
            "shown but not ranked)") + ".",
    ]
    if data.empty:
        notes = ["not in this run: no completed cell"]
    return Table("compute", "Compute and memory", data, columns, ["workload"], notes)


__all__ = ["latency_table", "phase_table", "compute_table"]
