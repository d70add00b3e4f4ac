"""Scores of a set of continuations of real contexts: is it music, does it follow its context,
and how far is it from the real continuations?

Given N held-out clips cut into (context, true continuation) and a system's continuations of
the same contexts (one per clip, same length as the true ones), one row per system:

- ``pitched_fraction``: PESTO frames with confidence > 0.5 over all frames
  (:func:`metrics.descriptors.pitched_fraction`), mean over clips with a seeded bootstrap 95 % CI
  over clips;
- continuation fidelity (:func:`metrics.descriptors.fidelity_from_chroma`): each continuation's
  chroma correlation with its OWN context minus that with the other contexts, with a bootstrap CI
  over pairs; ``follows_context`` is ``difference >= FOLLOWS_MIN_DIFFERENCE`` with the CI's low
  end above 0;
- ``kad_logmel``: KAD of the continuations against the TRUE continuations, both embedded by the
  weight-free log-mel embedder (never comparable with pretrained-model KADs), clips resampled for
  the CI;
- ``level_dbfs``: RMS level of all the continuations (a silent or exploding system shows here).

The class embeds the contexts and the true continuations once; each :meth:`score` call embeds one
system's continuations.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Sequence

import numpy as np

from metrics.descriptors import DEFAULT_CONFIG, PitchTracker, fidelity_from_chroma, pitched_fraction
from metrics.descriptors.continuation import mean_chroma
from metrics.embedders import create_embedder
from metrics.quality.bootstrap import STREAM_EVALUATED, ConfidenceInterval, bootstrap_counts, bootstrap_interval
from metrics.quality.kad import kad

log = logging.getLogger(__name__)

FOLLOWS_MIN_DIFFERENCE = 0.1  # paired - shuffled chroma r a continuation must reach (with CI above 0)
SCORE_COLUMNS = (
    "pitched_fraction", "pitched_fraction_low", "pitched_fraction_high",
    "chroma_fidelity_paired", "chroma_fidelity_shuffled", "chroma_fidelity_difference",
    "chroma_fidelity_difference_low", "chroma_fidelity_difference_high", "follows_context",
    "kad_logmel", "kad_logmel_low", "kad_logmel_high", "level_dbfs", "n_clips",
)


def bootstrap_mean(values: np.ndarray, n_boot: int, seed: int, level: float = 0.95,
                   unit: str = "clip") -> tuple[float, ConfidenceInterval | None]:
    """Mean of finite ``values`` (NaN skipped) and a seeded percentile bootstrap CI over them
    (None with fewer than 2 finite values)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size < 2:
        return (float(v.mean()) if v.size else float("nan")), None
    counts = bootstrap_counts(v.size, n_boot, seed, STREAM_EVALUATED).astype(np.float64)  # (B, n)
    mean = float(v.mean())
    return mean, bootstrap_interval(counts @ v / v.size, level=level, seed=seed, unit=unit, estimate=mean)


def _level_dbfs(clips: Sequence[np.ndarray]) -> float:
    power = float(np.mean(np.concatenate([np.asarray(c, dtype=np.float64).ravel() for c in clips]) ** 2))
    return 10.0 * math.log10(power) if power > 0 else float("-inf")


class ContinuationScorer:
    """Scores continuation sets of the same N contexts (module docstring)."""

    def __init__(self, contexts: Sequence[np.ndarray], true_continuations: Sequence[np.ndarray], sample_rate: int,
                 *, n_boot: int = 500, seed: int = 0, pitch_step_ms: float = 40.0, embedder: str = "logmel") -> None:
        if len(contexts) != len(true_continuations) or len(contexts) < 2:
            raise ValueError(f"need at least 2 clips and one true continuation per context, got {len(contexts)} "
                             f"contexts and {len(true_continuations)} continuations")
        self.sample_rate, self.n_boot, self.seed = int(sample_rate), int(n_boot), int(seed)
        self.n_clips = len(contexts)
        self.clip_samples = int(np.asarray(true_continuations[0]).shape[-1])
        self.tracker = PitchTracker(step_ms=pitch_step_ms)
        self.embedder = create_embedder(embedder).load()
        self.context_chroma = np.stack([mean_chroma(c, self.sample_rate, DEFAULT_CONFIG, f"context {i}")
                                        for i, c in enumerate(contexts)])  # (N, 12)
        self.reference, self.reference_groups = self._embed(true_continuations, "true continuation")

    @property
    def identity(self) -> dict[str, Any]:
        """What the scores depend on, for the run's records."""
        return {"embedder": self.embedder.identity, "pitch_tracker": self.tracker.identity, "n_boot": self.n_boot,
                "seed": self.seed, "clips": self.n_clips, "follows_min_difference": FOLLOWS_MIN_DIFFERENCE}

    def _embed(self, clips: Sequence[np.ndarray], what: str) -> tuple[np.ndarray, np.ndarray]:
        frames, groups = [], []
        for i, clip in enumerate(clips):
            emb = self.embedder.embed(np.asarray(clip, dtype=np.float32), self.sample_rate, source=f"{what} {i}")
            frames.append(emb)
            groups.extend([i] * emb.shape[0])
        return np.concatenate(frames), np.asarray(groups)

    def score(self, continuations: Sequence[np.ndarray]) -> dict[str, Any]:
        """One row (:data:`SCORE_COLUMNS`) for continuations of the N contexts, in clip order."""
        if len(continuations) != self.n_clips:
            raise ValueError(f"expected {self.n_clips} continuations (one per context), got {len(continuations)}")
        clips = [np.asarray(c, dtype=np.float32)[..., : self.clip_samples] for c in continuations]
        chroma = np.stack([mean_chroma(c, self.sample_rate, DEFAULT_CONFIG, f"continuation {i}")
                           for i, c in enumerate(clips)])  # (N, 12)
        fidelity = fidelity_from_chroma(self.context_chroma, chroma, n_boot=self.n_boot, seed=self.seed)
        pitched = np.array([pitched_fraction(self.tracker.track(c, self.sample_rate)) for c in clips])  # (N,)
        pitched_mean, pitched_ci = bootstrap_mean(pitched, self.n_boot, self.seed)
        frames, groups = self._embed(clips, "continuation")
        distance = kad(self.reference, frames, groups_reference=self.reference_groups, groups_evaluated=groups,
                       n_boot=self.n_boot, seed=self.seed)
        return {
            "pitched_fraction": pitched_mean,
            "pitched_fraction_low": pitched_ci.low if pitched_ci else float("nan"),
            "pitched_fraction_high": pitched_ci.high if pitched_ci else float("nan"),
            "chroma_fidelity_paired": fidelity.paired, "chroma_fidelity_shuffled": fidelity.shuffled,
            "chroma_fidelity_difference": fidelity.difference,
            "chroma_fidelity_difference_low": fidelity.interval.low,
            "chroma_fidelity_difference_high": fidelity.interval.high,
            "follows_context": bool(fidelity.difference >= FOLLOWS_MIN_DIFFERENCE and fidelity.interval.low > 0),
            "kad_logmel": distance.value,
            "kad_logmel_low": distance.ci.low if distance.ci else float("nan"),
            "kad_logmel_high": distance.ci.high if distance.ci else float("nan"),
            "level_dbfs": _level_dbfs(clips), "n_clips": self.n_clips,
        }


__all__ = ["FOLLOWS_MIN_DIFFERENCE", "SCORE_COLUMNS", "ContinuationScorer", "bootstrap_mean"]
