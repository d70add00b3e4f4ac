"""Continuation fidelity: does a continuation keep its own context's pitch content?

For N pairs (context, continuation), with ``c_i`` the mean chroma of context i and ``k_i`` that of
continuation i (:func:`metrics.descriptors.tonality.chroma_cqt`, loudness-weighted mean):

- ``R[i, j] = pearson(k_i, c_j)`` (N x N);
- ``paired`` = mean of the diagonal ``R[i, i]``: continuation vs its OWN context;
- ``shuffled`` = mean of ALL off-diagonal entries: continuation vs other pairs' contexts (every
  mismatched pairing rather than one random derangement, so the baseline has no seed and the
  least variance);
- ``difference = paired - shuffled``, equal to the mean over pairs of
  ``d_i = R[i, i] - mean_{j != i} R[i, j]``; its CI is a seeded bootstrap over PAIRS of the mean
  of ``d_i`` (``metrics.quality.bootstrap``: multinomial counts from
  ``default_rng([seed, 1])``, percentile interval).

A continuation independent of its context has ``E[difference] = 0``; one that keeps the context's
key has ``difference > 0``. A clip whose chroma is constant (silence, or below ``gate_dbfs``)
has no correlation: its entries count as 0 (no evidence of fidelity), and ``n_undefined`` says how
many clips that was. Needs at least 2 pairs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from metrics.descriptors.audio import level_dbfs, mono_audio
from metrics.descriptors.config import DEFAULT_CONFIG, DescriptorConfig
from metrics.descriptors.tonality import chroma_cqt, pearson_rows
from metrics.quality.bootstrap import STREAM_EVALUATED, ConfidenceInterval, bootstrap_counts, bootstrap_interval


@dataclass(frozen=True)
class ContinuationFidelity:
    """Paired vs shuffled chroma correlation of continuations with contexts."""

    paired: float  # mean Pearson r with the own context
    shuffled: float  # mean Pearson r with other contexts
    difference: float  # paired - shuffled
    interval: ConfidenceInterval  # bootstrap CI of the difference, over pairs
    per_pair_paired: np.ndarray  # (N,) R[i, i]
    per_pair_difference: np.ndarray  # (N,) d_i
    n_pairs: int
    n_undefined: int  # clips with constant chroma (their correlations were set to 0)

    def as_dict(self) -> dict[str, float]:
        """Flat dict with the ``CONTINUATION_COLUMNS`` keys and the interval's bounds."""
        return {
            "chroma_fidelity_paired": self.paired,
            "chroma_fidelity_shuffled": self.shuffled,
            "chroma_fidelity_difference": self.difference,
            "chroma_fidelity_difference_low": self.interval.low,
            "chroma_fidelity_difference_high": self.interval.high,
            "n_pairs": float(self.n_pairs),
            "n_undefined": float(self.n_undefined),
        }


def mean_chroma(audio: np.ndarray, sample_rate: int, config: DescriptorConfig = DEFAULT_CONFIG,
                source: str = "audio") -> np.ndarray:
    """(12,) loudness-weighted mean chroma of a mono clip; zeros below the gate."""
    x = mono_audio(audio, sample_rate, source=source)
    if level_dbfs(x) < config.gate_dbfs:
        return np.zeros(12)
    return chroma_cqt(x, int(sample_rate), config.chroma_hop_s).mean()


def fidelity_from_chroma(
    context_chroma: np.ndarray,
    continuation_chroma: np.ndarray,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> ContinuationFidelity:
    """Continuation fidelity from (N, 12) mean chroma of the contexts and continuations (row i = pair i)."""
    ctx = np.asarray(context_chroma, dtype=np.float64)
    cont = np.asarray(continuation_chroma, dtype=np.float64)
    if ctx.ndim != 2 or ctx.shape != cont.shape or ctx.shape[1] != 12:
        raise ValueError(
            f"contexts and continuations must both be (pairs, 12) chroma, got {ctx.shape} and {cont.shape}"
        )
    n = ctx.shape[0]
    if n < 2:
        raise ValueError(f"continuation fidelity needs at least 2 pairs (the shuffled baseline), got {n}")
    r = pearson_rows(cont, ctx)  # (N, N): continuation i vs context j
    undefined = int(np.isnan(pearson_rows(cont, cont).diagonal()).sum()
                    + np.isnan(pearson_rows(ctx, ctx).diagonal()).sum())  # constant-chroma clips
    r = np.nan_to_num(r, nan=0.0)
    diag = r.diagonal().copy()  # (N,)
    off_mean = (r.sum(axis=1) - diag) / (n - 1)  # (N,) mean over j != i
    d = diag - off_mean  # (N,)
    counts = bootstrap_counts(n, n_boot, seed, STREAM_EVALUATED)  # (B, N)
    replicates = counts @ d / n  # (B,)
    difference = float(d.mean())
    interval = bootstrap_interval(replicates, level=level, seed=seed, unit="pair", estimate=difference)
    return ContinuationFidelity(
        paired=float(diag.mean()), shuffled=float(off_mean.mean()), difference=difference, interval=interval,
        per_pair_paired=diag, per_pair_difference=d, n_pairs=n, n_undefined=undefined,
    )


def continuation_fidelity(
    pairs: Sequence[tuple[np.ndarray, np.ndarray]],
    sample_rate: int,
    *,
    config: DescriptorConfig = DEFAULT_CONFIG,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> ContinuationFidelity:
    """Continuation fidelity of ``[(context_audio, continuation_audio), ...]`` (mono, one sample rate)."""
    if len(pairs) < 2:
        raise ValueError(f"continuation fidelity needs at least 2 (context, continuation) pairs, got {len(pairs)}")
    ctx = np.stack([mean_chroma(c, sample_rate, config, f"pair {i} context") for i, (c, _) in enumerate(pairs)])
    cont = np.stack([mean_chroma(k, sample_rate, config, f"pair {i} continuation") for i, (_, k) in enumerate(pairs)])
    return fidelity_from_chroma(ctx, cont, n_boot=n_boot, seed=seed, level=level)
