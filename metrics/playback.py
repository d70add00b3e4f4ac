"""Playback models: pure functions of the measured block times (no timing, no I/O, no torch).

Time 0 is the call to ``start``; ``d_k`` is block k's compute time (its measured latency), ``a_k``
its audio seconds, ``A_k = a_0 + ... + a_k`` (``A_{-1} = 0``). Block k starts generating at ``s_k``
and is on the host at ``f_k = s_k + d_k``; block 0 starts at ``start_s``. Three models
(docs/harness.md, "The playback model"):

- ``offline`` (the throughput view): blocks back to back, ``s_k = f_{k-1}``; the generator may run
  arbitrarily far ahead of the listener.
- ``live`` (the headline view): the generator holds at most a look-ahead ``H`` of unplayed audio
  when it starts a block: ``s_k = max(f_{k-1}, t_k)``, ``t_k`` = the time the playhead reaches stream
  position ``A_{k-1} - H`` (no constraint when that position is <= 0), with
  ``H = max(lookahead_s, prebuffer_s)`` (the player already holds the pre-buffer unplayed, so the
  look-ahead is never smaller). ``offline`` is the limit ``H -> infinity``.
- ``realtime``: the pacing the runner's ``realtime`` scenario sleeps for: ``live`` with
  ``H = prebuffer_s``.

In every model playback starts at ``P = f_m``, m the first block with ``A_m >= prebuffer_s`` (at
least one block); ``p_0 = P``, ``p_k = max(p_{k-1} + a_{k-1}, f_k)``; block k underruns when
``f_k > p_{k-1} + a_{k-1}`` (by more than 1 ns), its stall is the difference and the player resumes
as soon as the block is ready.

Control latency of a prompt change first heard in block k: best ``p_k - s_k`` (the change arrives
just as block k starts), worst ``p_k - s_{k-1}`` (just after block k-1 started).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

MODELS = ("offline", "realtime", "live")
EPS_S = 1e-9  # stalls shorter than 1 ns are float rounding, not underruns
NOT_MEASURED = "not measured"
LIVE_NOT_MEASURED = "not measured (no look-ahead recorded)"  # runs made before the live model


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
    scenario: str  # the playback model: offline, realtime or live
    horizon_s: float = math.inf  # H: unplayed audio the generator may hold when it starts a block

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
    if scenario not in MODELS:
        raise ValueError(f"scenario (playback model) must be one of {MODELS}, got {scenario!r}")
    return d, a


def pacing_horizon_s(scenario: str, prebuffer_s: float, lookahead_s: float | None, first_block_s: float) -> float:
    """``H`` of a model: inf (offline), ``prebuffer_s`` (realtime), ``max(lookahead_s, prebuffer_s)`` (live;
    ``lookahead_s=None`` means one block, ``first_block_s``)."""
    if scenario == "offline":
        return math.inf
    if scenario == "realtime":
        return float(prebuffer_s)
    look = first_block_s if lookahead_s is None else float(lookahead_s)
    if not (math.isfinite(look) and look > 0):
        raise ValueError(f"lookahead_s must be finite and > 0 for the live model, got {lookahead_s}")
    return max(look, float(prebuffer_s))


def simulate_playback(
    latency_s: Sequence[float],
    audio_s: Sequence[float],
    prebuffer_s: float,
    scenario: str = "offline",
    start_s: float = 0.0,
    lookahead_s: float | None = None,
) -> Playback:
    """Play a stream whose block k took ``latency_s[k]`` and holds ``audio_s[k]`` seconds, under the
    playback model ``scenario`` (module docstring). ``lookahead_s`` is used by ``live`` only."""
    d, a = _check_inputs(latency_s, audio_s, scenario)
    if prebuffer_s < 0:
        raise ValueError(f"prebuffer_s must be >= 0, got {prebuffer_s}")
    horizon = pacing_horizon_s(scenario, prebuffer_s, lookahead_s, float(a[0]))
    n = d.size
    cum = np.cumsum(a)  # A_k
    reached = np.nonzero(cum >= prebuffer_s - EPS_S)[0]
    m = int(reached[0]) if reached.size else n - 1
    s, f, p, stall = np.zeros(n), np.zeros(n), np.full(n, np.nan), np.zeros(n)
    for k in range(n):
        s_k = start_s if k == 0 else f[k - 1]
        if k > 0 and math.isfinite(horizon):
            must_have_played = cum[k - 1] - horizon
            if must_have_played > EPS_S:  # then A_{k-1} > H >= prebuffer_s, so playback has started
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
        horizon_s=horizon,
    )


def min_start_delay_s(latency_s: Sequence[float], audio_s: Sequence[float], start_s: float = 0.0) -> float:
    """Earliest playback start (s after ``start``) that plays the whole stream without an underrun,
    when blocks are generated back to back: ``max_k (f_k - A_{k-1})`` (closed form)."""
    d, a = _check_inputs(latency_s, audio_s, "offline")
    f = start_s + np.cumsum(d)
    before = np.concatenate([[0.0], np.cumsum(a)[:-1]])
    return float(np.max(f - before))


def min_prebuffer_s(
    latency_s: Sequence[float], audio_s: Sequence[float], scenario: str = "offline", start_s: float = 0.0,
    lookahead_s: float | None = None,
) -> float:
    """Smallest whole-block pre-buffer ``A_m`` (audio seconds) that plays without an underrun.

    ``offline``: closed form, the first m with ``f_m >= min_start_delay_s``. ``realtime`` and ``live``:
    the pre-buffer also paces generation (``live``: it raises the look-ahead to itself when longer),
    so candidates ``A_0, A_1, ...`` are simulated in order; the whole stream as pre-buffer always works
    (nothing is paced then).
    """
    d, a = _check_inputs(latency_s, audio_s, scenario)
    cum = np.cumsum(a)
    if scenario == "offline":
        f = start_s + np.cumsum(d)
        delay = min_start_delay_s(d, a, start_s)
        m = int(np.nonzero(f >= delay - EPS_S)[0][0])
        return float(cum[m])
    for m in range(d.size):
        if simulate_playback(d, a, float(cum[m]), scenario, start_s, lookahead_s).underruns == 0:
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


def first_prompt_blocks(prompt_index: np.ndarray) -> list[int]:
    """Blocks whose prompt differs from the previous block's (the first block under each new prompt)."""
    return [k for k in range(1, prompt_index.size) if prompt_index[k] != prompt_index[k - 1]]


# --------------------------------------------------------------------------------------------
# Per-cell columns: the live view (headline) and the offline view (throughput)


def recorded_lookahead_s(streams: pd.DataFrame) -> float | None:
    """The look-ahead the streams were recorded with (their ``lookahead_s`` column), or None when a stream
    has none (runs made before the live model): the live view is then not measured, never assumed."""
    if "lookahead_s" not in streams.columns:
        return None
    values = pd.to_numeric(streams["lookahead_s"], errors="coerce").to_numpy(dtype=float)
    if values.size == 0 or not np.all(np.isfinite(values) & (values > 0)):
        return None
    return float(values.max())


def _view(blocks: pd.DataFrame, streams: pd.DataFrame, model: str, lookahead_s: float | None) -> dict:
    """Underruns, stall, min pre-buffer and control latencies of a cell's streams under one model."""
    underruns, stall, min_pb, best, worst, delay = 0, 0.0, [], [], [], []
    for _, stream in streams.iterrows():
        recs = blocks[blocks["repeat"] == stream["repeat"]].sort_values("block_index")
        d, a, t0 = recs.latency_ns.to_numpy() / 1e9, recs.audio_s.to_numpy(), float(stream.start_ns) / 1e9
        pb = simulate_playback(d, a, float(stream.prebuffer_s), model, t0, lookahead_s)
        underruns += pb.underruns
        stall += pb.total_stall_s
        min_pb.append(min_prebuffer_s(d, a, model, t0, lookahead_s))
        delay.append(min_start_delay_s(d, a, t0))
        for c in control_latencies(pb, first_prompt_blocks(recs.prompt_index.to_numpy())):
            best.append(c.best_s)
            worst.append(c.worst_s)
    return {
        "underruns": underruns, "stall_s": stall, "min_prebuffer_s": float(max(min_pb)),
        "verdict": realtime_verdict(underruns, float(max(min_pb))), "changes": len(best),
        "control_latency_best_ms": 1e3 * float(np.mean(best)) if best else float("nan"),
        "control_latency_worst_ms": 1e3 * float(np.max(worst)) if worst else float("nan"),
        "min_start_delay_s": float(max(delay)),
    }


LIVE_KEYS = (
    "underruns", "stall_s", "min_prebuffer_s", "verdict", "control_latency_best_ms", "control_latency_worst_ms",
)


def playback_columns(blocks: pd.DataFrame, streams: pd.DataFrame) -> dict:
    """Summary columns of one cell (all repeats): the live view under the recorded look-ahead (``underruns``,
    ``stall_s``, ``min_prebuffer_s``, ``verdict``, ``control_latency_{best,worst}_ms``, ``lookahead_s``: NaN and
    :data:`LIVE_NOT_MEASURED` when no look-ahead was recorded) and the offline throughput view (the same
    names prefixed ``offline_``, and ``min_start_delay_s``). Underruns and stall add up over repeats; min
    pre-buffer and worst control latency are the max, best control latency the mean over changes."""
    offline = _view(blocks, streams, "offline", None)
    lookahead = recorded_lookahead_s(streams)
    out: dict = {"lookahead_s": float("nan") if lookahead is None else lookahead}
    if lookahead is None:
        out.update({key: float("nan") for key in LIVE_KEYS})
        out["verdict"] = LIVE_NOT_MEASURED
    else:
        live = _view(blocks, streams, "live", lookahead)
        out.update({key: live[key] for key in LIVE_KEYS})
    out["prompt_changes"] = offline["changes"]
    out.update({f"offline_{key}": offline[key] for key in LIVE_KEYS})
    out["min_start_delay_s"] = offline["min_start_delay_s"]
    return out


__all__ = [
    "MODELS", "EPS_S", "NOT_MEASURED", "LIVE_NOT_MEASURED", "Playback", "pacing_horizon_s", "simulate_playback",
    "min_start_delay_s", "min_prebuffer_s", "ControlLatency", "control_latencies", "realtime_verdict",
    "first_prompt_blocks", "recorded_lookahead_s", "playback_columns", "LIVE_KEYS",
]
