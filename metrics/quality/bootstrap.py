"""Seeded bootstrap confidence intervals for the quality metrics.

Resampling unit. Frames cut from one clip are not independent, so the bootstrap resamples
CLIPS when the caller passes ``groups`` (one clip id per frame) and frames only when it does
not; the unit is recorded in every :class:`ConfidenceInterval`. The reference and the evaluated
set are resampled independently (two-sample bootstrap), each with its own seeded stream:
``numpy.random.default_rng([seed, stream])`` with stream 0 for the reference and 1 for the
evaluated set, so FAD and KAD computed with the same seed see the same resamples.

Interval: percentile (default) or basic interval of the replicates at ``level`` (default 0.95),
with the bootstrap standard deviation and bias estimate. Replicates are kept for plots.

The Frechet-distance bootstrap, which resamples sufficient statistics instead of frames, is
:mod:`metrics.quality.frechet_bootstrap`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np


STREAM_REFERENCE = 0
STREAM_EVALUATED = 1


@dataclass(frozen=True)
class ConfidenceInterval:
    low: float
    high: float
    level: float  # e.g. 0.95
    n_boot: int
    seed: int
    unit: str  # "clip" (groups given) or "frame"
    std: float  # bootstrap standard deviation
    method: str = "percentile"  # or "basic"
    bias: float = float("nan")  # mean(replicates) - point estimate (the bootstrap's bias estimate)

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high

    def as_dict(self) -> dict[str, float | int | str]:
        return {
            "low": self.low, "high": self.high, "level": self.level, "n_boot": self.n_boot,
            "seed": self.seed, "unit": self.unit, "std": self.std, "method": self.method, "bias": self.bias,
        }


@dataclass(frozen=True)
class Units:
    """How frames map to resampling units."""

    index: np.ndarray  # (N,) unit of each frame, 0..n_units-1
    n_units: int
    kind: str  # "clip" or "frame"


def units_of(n_frames: int, groups: Sequence | np.ndarray | None, what: str = "set") -> Units:
    """Resampling units: one per distinct ``groups`` label (clips), or one per frame."""
    if groups is None:
        return Units(index=np.arange(n_frames), n_units=n_frames, kind="frame")
    labels = np.asarray(groups)
    if labels.shape != (n_frames,):
        raise ValueError(f"{what}: groups must have one label per frame ({n_frames}), got shape {labels.shape}")
    _, inverse = np.unique(labels, return_inverse=True)
    return Units(index=inverse.astype(np.int64), n_units=int(inverse.max()) + 1, kind="clip")


def bootstrap_counts(n_units: int, n_boot: int, seed: int, stream: int) -> np.ndarray:
    """(n_boot, n_units) int64 multinomial resampling counts (each row sums to ``n_units``)."""
    if n_units < 2:
        raise ValueError(f"the bootstrap needs at least 2 resampling units, got {n_units}")
    rng = np.random.default_rng([int(seed), int(stream)])
    return rng.multinomial(n_units, np.full(n_units, 1.0 / n_units), size=int(n_boot)).astype(np.int64)


def bootstrap_interval(
    replicates: np.ndarray,
    *,
    level: float,
    seed: int,
    unit: str,
    estimate: float | None = None,
    method: str = "percentile",
) -> ConfidenceInterval:
    """Bootstrap interval of ``replicates`` at ``level``.

    ``method="percentile"``: the replicates' quantiles. ``method="basic"`` (needs ``estimate``):
    ``[2 est - q_high, 2 est - q_low]``, which corrects a shift of the bootstrap distribution
    (useful for biased statistics such as FAD). ``bias`` is ``mean(replicates) - estimate``.
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    reps = np.asarray(replicates, dtype=np.float64)
    alpha = (1.0 - level) / 2.0
    q_low, q_high = (float(v) for v in np.quantile(reps, [alpha, 1.0 - alpha]))
    if method == "percentile":
        low, high = q_low, q_high
    elif method == "basic":
        if estimate is None:
            raise ValueError("the basic bootstrap interval needs the point estimate")
        low, high = 2.0 * estimate - q_high, 2.0 * estimate - q_low
    else:
        raise ValueError(f"interval method must be 'percentile' or 'basic', got {method!r}")
    return ConfidenceInterval(
        low=low, high=high, level=float(level), n_boot=int(reps.shape[0]), seed=int(seed), unit=unit,
        std=float(reps.std(ddof=1)) if reps.shape[0] > 1 else 0.0, method=method,
        bias=float(reps.mean() - estimate) if estimate is not None else float("nan"),
    )


def bootstrap_generic(
    statistic: Callable[[np.ndarray, np.ndarray], float],
    n_reference: int,
    n_evaluated: int,
    *,
    groups_reference: Sequence | np.ndarray | None = None,
    groups_evaluated: Sequence | np.ndarray | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    resample_reference: bool = True,
    estimate: float | None = None,
    method: str = "percentile",
) -> tuple[ConfidenceInterval, np.ndarray]:
    """Bootstrap any two-sample statistic.

    ``statistic(ref_rows, eval_rows)`` receives integer row indices of the resampled sets
    (rows repeat when a unit is drawn more than once) and returns a float.
    """
    u_ref = units_of(n_reference, groups_reference, "reference")
    u_ev = units_of(n_evaluated, groups_evaluated, "evaluated")
    c_ev = bootstrap_counts(u_ev.n_units, n_boot, seed, STREAM_EVALUATED)
    c_ref = bootstrap_counts(u_ref.n_units, n_boot, seed, STREAM_REFERENCE) if resample_reference else None
    ref_all = np.arange(n_reference)
    reps = np.empty(n_boot)
    for b in range(n_boot):
        ev_rows = _rows_from_counts(c_ev[b], u_ev)
        ref_rows = _rows_from_counts(c_ref[b], u_ref) if c_ref is not None else ref_all
        reps[b] = statistic(ref_rows, ev_rows)
    if not resample_reference or u_ev.kind == u_ref.kind:
        unit = u_ev.kind
    else:
        unit = f"{u_ref.kind}(reference)/{u_ev.kind}(evaluated)"
    ci = bootstrap_interval(reps, level=level, seed=seed, unit=unit, estimate=estimate, method=method)
    return ci, reps


def _rows_from_counts(counts: np.ndarray, units: Units) -> np.ndarray:
    """Row indices of a resample: every frame of unit u repeated counts[u] times."""
    frame_counts = counts[units.index]  # (N,)
    return np.repeat(np.arange(units.index.shape[0]), frame_counts)
