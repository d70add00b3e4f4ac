"""Systems metrics: pure functions over per-block records (no timing, no I/O, no torch).

Definitions (units in the names; see docs/harness.md for the full text):

- Block latency: wall time of one ``step`` call (ms). Percentiles are nearest-rank (the reported
  value is an observed sample: the smallest latency with at least q% of samples at or below it),
  with a validity flag: MLPerf's minimum sample counts, 64 for p90 and 662 for p99.
- TTFA (time to first audio): ``start()`` plus the first step, from the call to ``start`` until
  the first block's audio is on the host (ms, lower is better).
- RTF: ``compute_s / audio_s`` (lower is better; < 1 is faster than real time); "x real time" is
  its inverse ``audio_s / compute_s`` (higher is better).
- Playback models, underruns, stalls, min pre-buffer and control latency: :mod:`metrics.playback`.
  The summary's headline (``verdict``, ``underruns``, ``stall_s``, ``min_prebuffer_s``,
  ``control_latency_*``) is the ``live`` model at the recorded look-ahead; the ``offline`` model
  (unbounded lead, a throughput view) is in the ``offline_*`` columns.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from bench.core.registry import NULL_GENERATOR, PHASED_NULL_GENERATOR, REFERENCE_GENERATOR
from metrics.playback import first_prompt_blocks, playback_columns, simulate_playback

# MLPerf Inference minimum sample counts for a percentile claim.
MIN_SAMPLES: dict[float, int] = {90.0: 64, 99.0: 662}


# --------------------------------------------------------------------------------------------
# Percentiles


def min_samples(q: float) -> int:
    """Samples needed for a valid q-th percentile (MLPerf: 64 for p90, 662 for p99; 1 otherwise)."""
    return MIN_SAMPLES.get(float(q), 1)


def percentile(values: Sequence[float] | np.ndarray, q: float) -> float:
    """Nearest-rank q-th percentile: the smallest sample with at least q% of samples <= it.

    NaN for no samples. ``q`` in (0, 100].
    """
    if not (0 < q <= 100):
        raise ValueError(f"percentile q must be in (0, 100], got {q}")
    x = np.sort(np.asarray(values, dtype=np.float64))
    if x.size == 0:
        return float("nan")
    rank = max(1, math.ceil(q / 100.0 * x.size - 1e-9))
    return float(x[rank - 1])


@dataclass(frozen=True)
class PercentileEstimate:
    q: float
    value: float
    n: int
    min_samples: int
    valid: bool


def latency_percentiles(values: Sequence[float] | np.ndarray, qs: Iterable[float] = (50, 90, 99)) -> dict[float, PercentileEstimate]:
    """Nearest-rank percentiles with validity flags (valid iff n >= :func:`min_samples`)."""
    n = int(np.asarray(values).size)
    out = {}
    for q in qs:
        need = min_samples(q)
        out[float(q)] = PercentileEstimate(float(q), percentile(values, q), n, need, n >= need and n > 0)
    return out


# --------------------------------------------------------------------------------------------
# Ratios


def rtf(compute_s: float, audio_s: float) -> float:
    """Real-time factor ``compute_s / audio_s`` (lower is better; < 1 faster than real time)."""
    if audio_s <= 0:
        raise ValueError(f"audio_s must be > 0 to form a real-time factor, got {audio_s}")
    return float(compute_s) / float(audio_s)


def x_realtime(compute_s: float, audio_s: float) -> float:
    """"x real time" ``audio_s / compute_s`` (higher is better; the inverse of :func:`rtf`)."""
    if compute_s <= 0:
        return float("inf")
    return float(audio_s) / float(compute_s)


# --------------------------------------------------------------------------------------------
# Tables


def playback_table(blocks: pd.DataFrame, streams: pd.DataFrame) -> pd.DataFrame:
    """Per-block playback timeline of every stream (columns gen_start_s, gen_end_s, play_start_s,
    stall_s, first_under_new_prompt) from the record tables, under each stream's scenario model."""
    rows = []
    for key, stream in streams.groupby(["generator", "workload", "repeat"], sort=False):
        recs = blocks[(blocks.generator == key[0]) & (blocks.workload == key[1]) & (blocks["repeat"] == key[2])]
        recs = recs.sort_values("block_index")
        row = stream.iloc[0]
        pb = simulate_playback(recs.latency_ns.to_numpy() / 1e9, recs.audio_s.to_numpy(), float(row.prebuffer_s),
                               str(row.scenario), float(row.start_ns) / 1e9)
        changes = set(first_prompt_blocks(recs.prompt_index.to_numpy()))
        for i, k in enumerate(recs.block_index.to_numpy()):
            rows.append({
                "generator": key[0], "workload": key[1], "repeat": key[2], "block_index": int(k),
                "gen_start_s": pb.gen_start_s[i], "gen_end_s": pb.gen_end_s[i],
                "play_start_s": pb.play_start_s[i], "stall_s": pb.stall_s[i],
                "first_under_new_prompt": i in changes,
            })
    return pd.DataFrame(rows)


def _nan_if_empty(values: Sequence[float], fn) -> float:  # noqa: ANN001
    return float(fn(values)) if len(values) else float("nan")


def summarize_cell(
    blocks: pd.DataFrame, streams: pd.DataFrame, flops: pd.DataFrame | None = None,
    peak_flops_per_s: float | None = None,
) -> dict:
    """One summary row for one (generator, workload) cell from its records (all repeats)."""
    gen, work = str(streams.generator.iloc[0]), str(streams.workload.iloc[0])
    lat_ms = blocks.latency_ns.to_numpy() / 1e6
    steady = blocks[blocks.block_index > 0]
    pct = latency_percentiles(lat_ms)
    compute_s = float(blocks.latency_ns.sum()) / 1e9
    audio_s = float(blocks.audio_s.sum())
    first = blocks[blocks.block_index == 0]
    first_ns = first.set_index("repeat").latency_ns
    ttfa = [(float(stream.start_ns) + float(first_ns[stream["repeat"]])) / 1e9 for _, stream in streams.iterrows()]
    row = {
        "generator": gen, "workload": work,
        "repeats": int(streams.shape[0]), "blocks": int(blocks.shape[0]), "audio_s": audio_s,
        "ttfa_ms": 1e3 * float(np.median(ttfa)),
        "first_block_ms": float(np.median(first.latency_ns / 1e6)) if len(first) else float("nan"),
        "steady_median_ms": _nan_if_empty(steady.latency_ns.to_numpy() / 1e6, np.median),
        "mean_ms": float(lat_ms.mean()),
    }
    for q, est in pct.items():
        row[f"p{q:g}_ms"] = est.value
        row[f"p{q:g}_valid"] = est.valid
    row.update({
        "compute_s": compute_s, "rtf": rtf(compute_s, audio_s), "x_realtime": x_realtime(compute_s, audio_s),
        "scenario": str(streams.scenario.iloc[0]), "prebuffer_s": float(streams.prebuffer_s.iloc[0]),
    })
    row.update(playback_columns(blocks, streams))  # live (headline) and offline_* (throughput) views
    row.update({
        "peak_mem_bytes": int(streams.peak_mem_bytes.max()), "peak_mem_kind": str(streams.peak_mem_kind.iloc[0]),
        "kv_cache_bytes": int(blocks.kv_cache_bytes.max()),
        "transient_kv_bytes": int(blocks.transient_kv_bytes.max()) if "transient_kv_bytes" in blocks else 0,
        "params": int(streams.params.iloc[0]),
        "steady_analytic_flops": _nan_if_empty(steady.analytic_flops.to_numpy(), np.median),
    })
    achieved = float(blocks.analytic_flops.sum()) / compute_s if compute_s > 0 else float("nan")
    row["achieved_flops_per_s"] = achieved
    row["peak_flops_per_s"] = float(peak_flops_per_s) if peak_flops_per_s else float("nan")
    row["peak_fraction"] = achieved / peak_flops_per_s if peak_flops_per_s else float("nan")
    row.update(_flops_columns(flops))
    row.update(_attainable_columns(flops, row["steady_median_ms"]))
    return row


def _attainable_columns(flops: pd.DataFrame | None, steady_median_ms: float) -> dict:
    """The steady block's attainable time on this machine (bench/app/attainable.py: its matmul-like
    operations replayed at their shapes, the rest at the measured bandwidth) and the share of it
    the measured median reaches: 1.0 means the code adds nothing to the hardware's own cost.
    NaN when the FLOPs pass (which also models the attainable time) did not run."""
    part = flops[flops.block_kind == "steady"] if flops is not None and len(flops) else None
    if part is None or part.empty or "attainable_ms" not in part:
        return {"steady_attainable_ms": float("nan"), "steady_attainable_cold_ms": float("nan"),
                "steady_bytes_moved": float("nan"), "attainable_fraction": float("nan")}
    attainable = float(part.attainable_ms.sum())
    # runs recorded before the cold replays have no cold column
    cold = float(part.attainable_cold_ms.sum()) if "attainable_cold_ms" in part else float("nan")
    return {"steady_attainable_ms": attainable, "steady_attainable_cold_ms": cold,
            "steady_bytes_moved": float(part.bytes_moved.sum()),
            "attainable_fraction": attainable / steady_median_ms if steady_median_ms > 0 else float("nan")}


def _flops_columns(flops: pd.DataFrame | None) -> dict:
    out = {}
    for kind in ("first", "steady"):
        part = flops[flops.block_kind == kind] if flops is not None and len(flops) else None
        if part is None or part.empty:
            out.update({f"{kind}_measured_flops": float("nan"), f"{kind}_analytic_flops": float("nan"),
                        f"{kind}_flop_ratio": float("nan")})
            if kind == "steady":
                out["measured_flops_per_audio_s"] = float("nan")
                out["analytic_flops_per_audio_s"] = float("nan")
            continue
        measured, analytic = float(part.measured_flops.sum()), float(part.analytic_flops.sum())
        out[f"{kind}_measured_flops"] = measured
        out[f"{kind}_analytic_flops"] = analytic
        out[f"{kind}_flop_ratio"] = measured / analytic if analytic > 0 else float("nan")
        if kind == "steady":
            out["measured_flops_per_audio_s"] = measured / float(part.audio_s.iloc[0])
            out["analytic_flops_per_audio_s"] = analytic / float(part.audio_s.iloc[0])
    return out


def summarize(
    blocks: pd.DataFrame, streams: pd.DataFrame, flops: pd.DataFrame | None = None,
    peak_flops_per_s: float | None = None, cell_peaks: Mapping[tuple[str, str], float] | None = None,
) -> pd.DataFrame:
    """The per-cell summary table (one row per (generator, workload)). A cell's fraction of peak uses
    its own entry of ``cell_peaks`` ((generator, workload) -> FLOP/s: the node it ran on) where there
    is one, else the run's ``peak_flops_per_s``."""
    rows = []
    for (gen, work), cell_streams in streams.groupby(["generator", "workload"], sort=False):
        cell_blocks = blocks[(blocks.generator == gen) & (blocks.workload == work)]
        cell_flops = None
        if flops is not None and len(flops):
            cell_flops = flops[(flops.generator == gen) & (flops.workload == work)]
        peak = (cell_peaks or {}).get((str(gen), str(work))) or peak_flops_per_s
        rows.append(summarize_cell(cell_blocks, cell_streams, cell_flops, peak))
    return pd.DataFrame(rows)


PHASE_ATTAINABLE_COLUMNS = ["attainable_ms", "attainable_cold_ms", "bytes_moved", "measured_flops",
                            "attainable_fraction", "attainable_cold_fraction", "intensity_flops_per_byte",
                            "achieved_flops_per_s"]


def phase_summary(phases: pd.DataFrame, flops: pd.DataFrame | None = None) -> pd.DataFrame:
    """Median latency and calls per block of each phase, first block vs steady blocks; with the FLOPs
    pass's table, also each phase's attainable time, bytes, FLOPs, the share of the attainable time
    its median reaches, its arithmetic intensity and achieved FLOP/s (the roofline's points)."""
    keys = ["generator", "workload", "phase", "block_kind"]
    if phases.empty:
        return pd.DataFrame(columns=keys + ["calls", "median_ms", "blocks"] + PHASE_ATTAINABLE_COLUMNS)
    df = phases.assign(block_kind=np.where(phases.block_index == 0, "first", "steady"))
    grouped = df.groupby(keys, sort=False)
    out = grouped.agg(calls=("calls", "median"), median_ms=("latency_ms", "median"), blocks=("block_index", "size"))
    out = out.reset_index()
    if flops is None or flops.empty or "attainable_ms" not in flops:
        return out.assign(**{c: float("nan") for c in PHASE_ATTAINABLE_COLUMNS})
    if "attainable_cold_ms" not in flops:  # recorded before the cold replays
        flops = flops.assign(attainable_cold_ms=float("nan"))
    model = flops.groupby(keys, sort=False)[["attainable_ms", "attainable_cold_ms", "bytes_moved",
                                             "measured_flops"]].median().reset_index()
    out = out.merge(model, on=keys, how="left")
    out["attainable_fraction"] = out.attainable_ms / out.median_ms.where(out.median_ms > 0)
    out["attainable_cold_fraction"] = out.attainable_cold_ms / out.median_ms.where(out.median_ms > 0)
    out["intensity_flops_per_byte"] = out.measured_flops / out.bytes_moved.where(out.bytes_moved > 0)
    out["achieved_flops_per_s"] = out.measured_flops / (out.median_ms.where(out.median_ms > 0) / 1e3)
    return out


PAIR_COLUMNS = ["workload", "a", "b", "latency_ratio", "analytic_flop_ratio", "latency_over_flop_ratio",
                "attainable_ratio", "latency_over_attainable_ratio", "attainable_cold_ratio",
                "latency_over_attainable_cold_ratio"]


def _ratio(a: float, b: float) -> float:
    """a / b, NaN when either is missing or b is 0."""
    return float(a) / float(b) if b and np.isfinite(b) and np.isfinite(a) else float("nan")


def pairwise_ratios(summary: pd.DataFrame) -> pd.DataFrame:
    """For each pair of regimes in a workload: steady median latency ratio / analytic FLOP ratio.

    1.0 means wall time scales exactly with analytic FLOPs; > 1 means the first regime is slower
    than its FLOPs predict relative to the second. Regimes with no analytic FLOPs (the null
    generator) are left out. ``latency_over_attainable_ratio`` compares the same latency ratio with
    the ratio of the two regimes' attainable times on this machine instead (1.0: what separates
    them is the hardware's cost of their operations, not their code; NaN without a FLOPs pass);
    ``latency_over_attainable_cold_ratio`` does the same with operands replayed cold (from memory,
    bench/app/attainable.py). A real pass lies between warm and cold.
    """
    rows = []
    ok = summary[(summary.steady_analytic_flops > 0) & np.isfinite(summary.steady_median_ms)]
    for work, group in ok.groupby("workload", sort=False):
        for (_, a), (_, b) in itertools.combinations(group.iterrows(), 2):
            lat = a.steady_median_ms / b.steady_median_ms
            fl = a.steady_analytic_flops / b.steady_analytic_flops
            att, cold = (_ratio(a.get(column, float("nan")), b.get(column, float("nan")))
                         for column in ("steady_attainable_ms", "steady_attainable_cold_ms"))
            rows.append({
                "workload": work, "a": a.generator, "b": b.generator, "latency_ratio": lat,
                "analytic_flop_ratio": fl, "latency_over_flop_ratio": lat / fl,
                "attainable_ratio": att, "latency_over_attainable_ratio": _ratio(lat, att),
                "attainable_cold_ratio": cold, "latency_over_attainable_cold_ratio": _ratio(lat, cold),
            })
    return pd.DataFrame(rows, columns=PAIR_COLUMNS)


OVERHEAD_COLUMNS = ["workload", "null_generator", "null_median_ms", "reference", "reference_median_ms",
                    "overhead_fraction", "null_work_ms", "harness_ms", "harness_fraction",
                    "phased_null_median_ms", "extra_phase_entries", "per_phase_entry_us"]


def _steady_sum(phases: pd.DataFrame | None, workload: str, generator: str, column: str) -> float:
    """``column`` summed over ``generator``'s phases in a steady block (``calls``: its phase entries;
    ``median_ms``: its time inside phases), NaN if unknown."""
    if phases is None or phases.empty or column not in phases:
        return float("nan")
    rows = phases[(phases.workload == workload) & (phases.generator == generator) & (phases.block_kind == "steady")]
    return float(rows[column].sum()) if not rows.empty else float("nan")


def null_overhead(summary: pd.DataFrame, phases: pd.DataFrame | None = None, null: str = NULL_GENERATOR,
                  reference: str = REFERENCE_GENERATOR, phased: str = PHASED_NULL_GENERATOR) -> pd.DataFrame:
    """The null generator's median block latency per workload (the harness's own overhead per
    block plus minimal work), and its share of ``reference``'s median block latency. When the run
    also has ``phased`` (the null generator with the LMM's phase entries) and ``phases`` (the
    :func:`phase_summary` table): the harness's cost per phase entry, ``(p50(phased) - p50(null)) /
    (entries(phased) - entries(null))`` in microseconds.

    With ``phases`` (its ``median_ms`` column), the null block is also split into the null
    generator's own work inside its phases (``null_work_ms``: drawing its noise) and the rest,
    the harness around them (``harness_ms``, and ``harness_fraction`` of the reference's block).
    Both are differences of medians, not medians of per-block differences."""
    rows = []
    for work, group in summary.groupby("workload", sort=False):
        nulls = group[group.generator == null]
        if nulls.empty:
            continue
        refs = group[group.generator == reference]
        null_ms = float(nulls.iloc[0]["p50_ms"])
        ref_ms = float(refs.iloc[0]["p50_ms"]) if not refs.empty else float("nan")
        phased_rows = group[group.generator == phased]
        phased_ms = float(phased_rows.iloc[0]["p50_ms"]) if not phased_rows.empty else float("nan")
        extra = _steady_sum(phases, work, phased, "calls") - _steady_sum(phases, work, null, "calls")
        per_entry_us = 1000.0 * (phased_ms - null_ms) / extra if extra > 0 else float("nan")
        work_ms = _steady_sum(phases, work, null, "median_ms")
        harness_ms = null_ms - work_ms
        rows.append({
            "workload": work, "null_generator": null, "null_median_ms": null_ms, "reference": reference,
            "reference_median_ms": ref_ms, "overhead_fraction": null_ms / ref_ms if ref_ms > 0 else float("nan"),
            "null_work_ms": work_ms, "harness_ms": harness_ms,
            "harness_fraction": harness_ms / ref_ms if ref_ms > 0 else float("nan"),
            "phased_null_median_ms": phased_ms, "extra_phase_entries": extra, "per_phase_entry_us": per_entry_us,
        })
    return pd.DataFrame(rows, columns=OVERHEAD_COLUMNS)


__all__ = [
    "MIN_SAMPLES", "min_samples", "percentile", "latency_percentiles", "PercentileEstimate", "rtf", "x_realtime",
    "playback_table", "summarize_cell", "summarize", "phase_summary", "pairwise_ratios", "null_overhead",
]
