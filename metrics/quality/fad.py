"""FAD, the metric: Frechet distance of evaluated embedding frames to a reference set (or to fixed
reference statistics), with an optional seeded bootstrap interval.

The mathematics lives in :mod:`metrics.quality.frechet` and the resampling in
:mod:`metrics.quality.frechet_bootstrap`; this module only combines them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from metrics.quality.bootstrap import ConfidenceInterval
from metrics.quality.frechet_bootstrap import bootstrap_frechet
from metrics.quality.frechet import (
    FrechetResult,
    GaussianStats,
    check_embeddings,
    frechet_distance,
    frechet_distance_stats,
    gaussian_stats,
)


@dataclass(frozen=True)
class FadResult:
    """FAD of an evaluated embedding set against a reference, with an optional bootstrap CI."""

    value: float  # Frechet distance (squared embedding units; lower is better)
    frechet: FrechetResult
    n_reference: int  # frames in the reference (0 when only published statistics are known)
    n_evaluated: int
    dim: int
    ci: ConfidenceInterval | None = None
    replicates: np.ndarray | None = field(default=None, repr=False)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "value": self.value, "n_reference": self.n_reference, "n_evaluated": self.n_evaluated,
            "dim": self.dim, "mean_term": self.frechet.mean_term, "trace_term": self.frechet.trace_term,
            "clipped_eigenvalues": self.frechet.clipped_eigenvalues,
            "clipped_magnitude": self.frechet.clipped_magnitude,
        }
        if self.ci is not None:
            out["ci"] = self.ci.as_dict()
        return out


def _n_clips(groups: Any) -> int | None:
    return None if groups is None else int(np.unique(np.asarray(groups)).shape[0])


def fad(
    reference: np.ndarray,
    evaluated: np.ndarray,
    *,
    groups_reference: Any = None,
    groups_evaluated: Any = None,
    n_boot: int = 0,
    seed: int = 0,
    level: float = 0.95,
    ci_method: str = "basic",
    full_rank: bool = True,
) -> FadResult:
    """FAD between reference (N, D) and evaluated (M, D) embedding frames.

    ``groups_*`` give each frame's clip id (the bootstrap then resamples clips); ``n_boot > 0``
    adds a seeded bootstrap CI (both sets resampled). FAD is biased upward at finite n, and its
    bootstrap replicates even more so (resampling with replacement repeats frames), so the
    replicates sit ABOVE the estimate by about the bias (reported as ``ci.bias``). The default
    ``ci_method="basic"`` interval, ``[2 FAD - q_high, 2 FAD - q_low]``, corrects that shift: it
    is an interval for the population distance and may lie below the (biased) estimate.
    ``ci_method="percentile"`` gives the raw replicate quantiles. Raises :class:`InsufficientDataError`
    when a set has fewer than D + 1 frames (``full_rank=False`` relaxes this to 2).
    """
    ref = check_embeddings(reference, "reference embeddings")
    ev = check_embeddings(evaluated, "evaluated embeddings")
    if ref.shape[1] != ev.shape[1]:
        raise ValueError(
            f"embedding dimensions differ (reference {ref.shape[1]}, evaluated {ev.shape[1]}): "
            f"embed both sets with the same embedder"
        )
    a = gaussian_stats(ref, what="reference", full_rank=full_rank, clips=_n_clips(groups_reference))
    b = gaussian_stats(ev, what="evaluated", full_rank=full_rank, clips=_n_clips(groups_evaluated))
    result = frechet_distance_stats(a, b)
    ci = reps = None
    if n_boot > 0:
        ci, reps = bootstrap_frechet(
            ref, ev, groups_reference=groups_reference, groups_evaluated=groups_evaluated,
            n_boot=n_boot, seed=seed, level=level, estimate=result.value, method=ci_method,
        )
    return FadResult(
        value=result.value, frechet=result, n_reference=a.n, n_evaluated=b.n, dim=a.dim, ci=ci, replicates=reps
    )


def fad_from_stats(
    reference: GaussianStats,
    evaluated: np.ndarray,
    *,
    groups_evaluated: Any = None,
    n_boot: int = 0,
    seed: int = 0,
    level: float = 0.95,
    ci_method: str = "basic",
    full_rank: bool = True,
) -> FadResult:
    """FAD of evaluated frames against fixed reference statistics (e.g. published ones).

    The bootstrap (``n_boot > 0``) resamples only the evaluated set.
    """
    ev = check_embeddings(evaluated, "evaluated embeddings")
    if ev.shape[1] != reference.dim:
        raise ValueError(
            f"embedding dimensions differ (reference statistics {reference.dim}, evaluated {ev.shape[1]}): "
            f"the reference statistics come from another embedder"
        )
    b = gaussian_stats(ev, what="evaluated", full_rank=full_rank, clips=_n_clips(groups_evaluated))
    result = frechet_distance(reference.mu, reference.cov, b.mu, b.cov)
    ci = reps = None
    if n_boot > 0:
        ci, reps = bootstrap_frechet(
            None, ev, reference_stats=(reference.mu, reference.cov), groups_evaluated=groups_evaluated,
            n_boot=n_boot, seed=seed, level=level, estimate=result.value, method=ci_method,
        )
    return FadResult(
        value=result.value, frechet=result, n_reference=reference.n, n_evaluated=b.n, dim=b.dim, ci=ci,
        replicates=reps,
    )
