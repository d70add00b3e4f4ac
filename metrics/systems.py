"""Systems metrics: pure functions over per-block records (no timing, no I/O, no torch).

Definitions (units in the names; see docs/harness.md for the full text):

- Block latency: wall time of one ``step`` call (ms). Percentiles are nearest-rank (the reported
  value is an observed sample: the smallest latency with at least q% of samples at or below it),
  with a validity flag: MLPerf's minimum sample counts, 64 for p90 and 662 for p99.
- TTFA (time to first audio): ``start()`` plus the first step, from the call to ``start`` until
  the first block's audio is on the host (ms, lower is better).
- RTF: ``compute_s / audio_s`` (lower is better; < 1 is faster than real time); "x real time" is
  its inverse ``audio_s / compute_s`` (higher is better).
- Playback model (:func:`simulate_playback`): blocks generated back to back (``offline``) or paced
  (``realtime``: block k may start only when at most ``prebuffer_s`` of generated audio is still
  unplayed); playback starts when ``prebuffer_s`` of audio is ready (at least one block); an
  underrun is a moment the player needs audio not yet generated; it then waits (a stall) and
  resumes as soon as the block is ready.
- Control latency: for the first block k generated under a new prompt, ``p_k - s_k`` (best case:
  the change arrives just as block k starts generating) and ``p_k - s_{k-1}`` (worst case: it
  arrives just after block k-1 started), where ``s`` is generation start and ``p`` play start.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from bench.core.registry import NULL_GENERATOR, REFERENCE_GENERATOR
from bench.core.workloads import SCENARIOS

# MLPerf Inference minimum sample counts for a percentile claim.
MIN_SAMPLES: dict[float, int] = {90.0: 64, 99.0: 662}
EPS_S = 1e-9  # stalls shorter than 1 ns are float rounding, not underruns


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
# Playback simulation


@dataclass(frozen=True)
class Playback:
    """Timeline of one stream (seconds from the ``start()`` call), per block k."""

    gen_start_s: np.ndarray  # s_k: generation of block k starts
    gen_end_s: np.ndarray  # f_k = s_k + latency_k: block k's audio is on the host
    play_start_s: np.ndarray  # p_k: block k starts playing
    stall_s: np.ndarray  # wait before block k could play (0 when it was ready in time)
    playback_start_s: float  # P: when playback began
    end_s: float  # when the last sample finished playing
    underruns: int
    total_stall_s: float
    prebuffer_s: float
    scenario: str

    @property
    def realtime(self) -> bool:
        """True iff the horizon played without a single underrun."""
        return self.underruns == 0


def _check_inputs(latency_s: Sequence[float], audio_s: Sequence[float], scenario: str) -> tuple[np.ndarray, np.ndarray]:
    d = np.asarray(latency_s, dtype=np.float64)
    a = np.asarray(audio_s, dtype=np.float64)
    if d.ndim != 1 or d.shape != a.shape or d.size == 0:
        raise ValueError(f"latency_s and audio_s must be equal-length 1-D, non-empty; got {d.shape} and {a.shape}")
    if np.any(d < 0) or not np.all(np.isfinite(d)):
        raise ValueError("latency_s must be finite and >= 0")
    if np.any(a <= 0) or not np.all(np.isfinite(a)):
        raise ValueError("audio_s must be finite and > 0 for every block")
    if scenario not in SCENARIOS:
        raise ValueError(f"scenario must be one of {SCENARIOS}, got {scenario!r}")
    return d, a


def simulate_playback(
    latency_s: Sequence[float],
    audio_s: Sequence[float],
    prebuffer_s: float,
    scenario: str = "offline",
    start_s: float = 0.0,
) -> Playback:
    """Play a stream whose block k took ``latency_s[k]`` and holds ``audio_s[k]`` seconds.

    Time 0 is the call to ``start``; the first block starts generating at ``start_s``.
    ``offline``: ``s_k = f_{k-1}``. ``realtime``: ``s_k = max(f_{k-1}, t)`` where ``t`` is when
    the playhead reaches ``A_{k-1} - prebuffer_s`` (``A`` = cumulative audio): the generator never
    holds more than ``prebuffer_s`` of unplayed audio when it starts a block. Playback starts at
    ``P = f_m`` for the first m with ``A_m >= prebuffer_s``; ``p_0 = P`` and
    ``p_k = max(p_{k-1} + a_{k-1}, f_k)``; block k underruns when ``f_k > p_{k-1} + a_{k-1}``.
    """
    d, a = _check_inputs(latency_s, audio_s, scenario)
    if prebuffer_s < 0:
        raise ValueError(f"prebuffer_s must be >= 0, got {prebuffer_s}")
    n = d.size
    cum = np.cumsum(a)  # A_k
    reached = np.nonzero(cum >= prebuffer_s - EPS_S)[0]
    m = int(reached[0]) if reached.size else n - 1
    s = np.zeros(n)
    f = np.zeros(n)
    p = np.full(n, np.nan)
    stall = np.zeros(n)
    for k in range(n):
        s_k = start_s if k == 0 else f[k - 1]
        if scenario == "realtime" and k > 0:
            must_have_played = cum[k - 1] - prebuffer_s
            if must_have_played > EPS_S:  # then A_{k-1} > prebuffer_s, so playback has started
                j = int(np.searchsorted(cum, must_have_played - EPS_S, side="left"))
                before_j = cum[j - 1] if j > 0 else 0.0
                s_k = max(s_k, p[j] + (must_have_played - before_j))
        s[k] = s_k
        f[k] = s_k + d[k]
        if k == m:
            for i in range(m + 1):  # all of them are ready at f_m: no stalls before playback
                p[i] = f[m] + (cum[i - 1] if i > 0 else 0.0)
        elif k > m:
            due = p[k - 1] + a[k - 1]
            p[k] = max(due, f[k])
            stall[k] = max(0.0, f[k] - due)
    underrun = stall > EPS_S
    return Playback(
        gen_start_s=s, gen_end_s=f, play_start_s=p, stall_s=np.where(underrun, stall, 0.0),
        playback_start_s=float(f[m]), end_s=float(p[-1] + a[-1]), underruns=int(underrun.sum()),
        total_stall_s=float(stall[underrun].sum()), prebuffer_s=float(prebuffer_s), scenario=scenario,
    )


def min_start_delay_s(latency_s: Sequence[float], audio_s: Sequence[float], start_s: float = 0.0) -> float:
    """Earliest playback start (s after ``start``) that plays the whole stream without an underrun,
    when blocks are generated back to back: ``max_k (f_k - A_{k-1})`` (closed form)."""
    d, a = _check_inputs(latency_s, audio_s, "offline")
    f = start_s + np.cumsum(d)
    before = np.concatenate([[0.0], np.cumsum(a)[:-1]])
    return float(np.max(f - before))


def min_prebuffer_s(
    latency_s: Sequence[float], audio_s: Sequence[float], scenario: str = "offline", start_s: float = 0.0
) -> float:
    """Smallest whole-block pre-buffer ``A_m`` (audio seconds) that plays without an underrun.

    ``offline``: closed form, the first m with ``f_m >= min_start_delay_s``. ``realtime``: the
    pre-buffer also paces generation, so candidates ``A_0, A_1, ...`` are simulated in order (the
    whole stream as pre-buffer always works).
    """
    d, a = _check_inputs(latency_s, audio_s, scenario)
    cum = np.cumsum(a)
    if scenario == "offline":
        f = start_s + np.cumsum(d)
        delay = min_start_delay_s(d, a, start_s)
        m = int(np.nonzero(f >= delay - EPS_S)[0][0])
        return float(cum[m])
    for m in range(d.size):
        if simulate_playback(d, a, float(cum[m]), scenario, start_s).underruns == 0:
            return float(cum[m])
    return float(cum[-1])  # unreachable: with everything buffered nothing can underrun


@dataclass(frozen=True)
class ControlLatency:
    block_index: int  # first block generated under the new prompt
    best_s: float  # p_k - s_k
    worst_s: float  # p_k - s_{k-1}


def control_latencies(playback: Playback, change_blocks: Iterable[int]) -> list[ControlLatency]:
    """Control latency of each prompt change, given the first block under each new prompt."""
    out = []
    for k in change_blocks:
        k = int(k)
        if k <= 0 or k >= playback.gen_start_s.size:
            raise ValueError(f"a prompt change must take effect at a block in 1..{playback.gen_start_s.size - 1}, got {k}")
        p_k = float(playback.play_start_s[k])
        out.append(ControlLatency(k, p_k - float(playback.gen_start_s[k]), p_k - float(playback.gen_start_s[k - 1])))
    return out


def realtime_verdict(underruns: int, min_prebuffer: float | None = None) -> str:
    """"real time" only with zero underruns at the configured pre-buffer (never from means)."""
    if underruns == 0:
        return "real time"
    hint = f"; needs a {min_prebuffer:.2f} s pre-buffer" if min_prebuffer is not None and math.isfinite(min_prebuffer) else ""
    return f"not real time ({underruns} underrun{'s' if underruns != 1 else ''}{hint})"


# --------------------------------------------------------------------------------------------
# Tables


def _first_prompt_blocks(prompt_index: np.ndarray) -> list[int]:
    return [k for k in range(1, prompt_index.size) if prompt_index[k] != prompt_index[k - 1]]


def playback_table(blocks: pd.DataFrame, streams: pd.DataFrame) -> pd.DataFrame:
    """Per-block playback timeline of every stream (columns gen_start_s, gen_end_s, play_start_s,
    stall_s, first_under_new_prompt) from the record tables."""
    rows = []
    for key, stream in streams.groupby(["generator", "workload", "repeat"], sort=False):
        recs = blocks[(blocks.generator == key[0]) & (blocks.workload == key[1]) & (blocks["repeat"] == key[2])]
        recs = recs.sort_values("block_index")
        row = stream.iloc[0]
        pb = simulate_playback(recs.latency_ns.to_numpy() / 1e9, recs.audio_s.to_numpy(), float(row.prebuffer_s),
                               str(row.scenario), float(row.start_ns) / 1e9)
        changes = set(_first_prompt_blocks(recs.prompt_index.to_numpy()))
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
    underruns, stall, min_pb, min_delay, ttfa, best, worst = 0, 0.0, [], [], [], [], []
    for _, stream in streams.iterrows():
        recs = blocks[blocks["repeat"] == stream["repeat"]].sort_values("block_index")
        d, a, t0 = recs.latency_ns.to_numpy() / 1e9, recs.audio_s.to_numpy(), float(stream.start_ns) / 1e9
        pb = simulate_playback(d, a, float(stream.prebuffer_s), str(stream.scenario), t0)
        underruns += pb.underruns
        stall += pb.total_stall_s
        min_pb.append(min_prebuffer_s(d, a, str(stream.scenario), t0))
        min_delay.append(min_start_delay_s(d, a, t0))
        ttfa.append(t0 + d[0])
        for c in control_latencies(pb, _first_prompt_blocks(recs.prompt_index.to_numpy())):
            best.append(c.best_s)
            worst.append(c.worst_s)
    first = blocks[blocks.block_index == 0]
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
        "underruns": underruns, "stall_s": stall, "min_prebuffer_s": float(max(min_pb)),
        "min_start_delay_s": float(max(min_delay)),
        "verdict": realtime_verdict(underruns, float(max(min_pb))),
        "prompt_changes": len(best),
        "control_latency_best_ms": 1e3 * _nan_if_empty(best, np.mean),
        "control_latency_worst_ms": 1e3 * _nan_if_empty(worst, np.max),
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
    return row


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
    peak_flops_per_s: float | None = None,
) -> pd.DataFrame:
    """The per-cell summary table (one row per (generator, workload))."""
    rows = []
    for (gen, work), cell_streams in streams.groupby(["generator", "workload"], sort=False):
        cell_blocks = blocks[(blocks.generator == gen) & (blocks.workload == work)]
        cell_flops = None
        if flops is not None and len(flops):
            cell_flops = flops[(flops.generator == gen) & (flops.workload == work)]
        rows.append(summarize_cell(cell_blocks, cell_streams, cell_flops, peak_flops_per_s))
    return pd.DataFrame(rows)


def phase_summary(phases: pd.DataFrame) -> pd.DataFrame:
    """Median latency and calls per block of each phase, first block vs steady blocks."""
    if phases.empty:
        return pd.DataFrame(columns=["generator", "workload", "phase", "block_kind", "calls", "median_ms", "blocks"])
    df = phases.assign(block_kind=np.where(phases.block_index == 0, "first", "steady"))
    grouped = df.groupby(["generator", "workload", "phase", "block_kind"], sort=False)
    out = grouped.agg(calls=("calls", "median"), median_ms=("latency_ms", "median"), blocks=("block_index", "size"))
    return out.reset_index()


def pairwise_ratios(summary: pd.DataFrame) -> pd.DataFrame:
    """For each pair of regimes in a workload: steady median latency ratio / analytic FLOP ratio.

    1.0 means wall time scales exactly with analytic FLOPs; > 1 means the first regime is slower
    than its FLOPs predict relative to the second. Regimes with no analytic FLOPs (the null
    generator) are left out.
    """
    rows = []
    ok = summary[(summary.steady_analytic_flops > 0) & np.isfinite(summary.steady_median_ms)]
    for work, group in ok.groupby("workload", sort=False):
        for (_, a), (_, b) in itertools.combinations(group.iterrows(), 2):
            lat = a.steady_median_ms / b.steady_median_ms
            fl = a.steady_analytic_flops / b.steady_analytic_flops
            rows.append({
                "workload": work, "a": a.generator, "b": b.generator, "latency_ratio": lat,
                "analytic_flop_ratio": fl, "latency_over_flop_ratio": lat / fl,
            })
    return pd.DataFrame(rows, columns=["workload", "a", "b", "latency_ratio", "analytic_flop_ratio", "latency_over_flop_ratio"])


def null_overhead(summary: pd.DataFrame, null: str = NULL_GENERATOR, reference: str = REFERENCE_GENERATOR) -> pd.DataFrame:
    """The null generator's median block latency per workload (the harness's own overhead per
    block plus minimal work), and its share of ``reference``'s median block latency."""
    rows = []
    for work, group in summary.groupby("workload", sort=False):
        nulls = group[group.generator == null]
        if nulls.empty:
            continue
        refs = group[group.generator == reference]
        null_ms = float(nulls.iloc[0]["p50_ms"])
        ref_ms = float(refs.iloc[0]["p50_ms"]) if not refs.empty else float("nan")
        rows.append({
            "workload": work, "null_generator": null, "null_median_ms": null_ms, "reference": reference,
            "reference_median_ms": ref_ms, "overhead_fraction": null_ms / ref_ms if ref_ms > 0 else float("nan"),
        })
    return pd.DataFrame(rows, columns=["workload", "null_generator", "null_median_ms", "reference",
                                       "reference_median_ms", "overhead_fraction"])


__all__ = [
    "MIN_SAMPLES", "min_samples", "percentile", "latency_percentiles", "PercentileEstimate", "rtf", "x_realtime",
    "Playback", "simulate_playback", "min_start_delay_s", "min_prebuffer_s", "ControlLatency", "control_latencies",
    "realtime_verdict", "playback_table", "summarize_cell", "summarize", "phase_summary", "pairwise_ratios",
    "null_overhead",
]
