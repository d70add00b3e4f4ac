"""FAD-infinity: FAD extrapolated to an infinite evaluated set.

FAD is biased upward by roughly ``c / n`` at ``n`` evaluated frames. FAD-inf computes FAD on
seeded random subsets of ``n_points`` sizes between ``min_n`` and all ``N`` frames, fits
``FAD(n) = FAD_inf + slope / n`` by least squares, and reports the intercept with the slope and
the fit's R^2 (close to 1 when the 1/n model holds).

Differences from fadtk: subsets are drawn WITHOUT replacement (a draw with replacement repeats
frames, which lowers the effective n, so the fit extrapolates toward the FAD of the empirical
distribution instead of the population), and the subsampling is seeded:
``numpy.random.default_rng([seed, 11, i])`` for the i-th subset size. The reference statistics
are used as given (their own finite-n bias is not removed). Units: as FAD; lower is better.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from metrics.quality.bootstrap import ConfidenceInterval, bootstrap_generic
from metrics.quality.frechet import (
    GaussianStats,
    InsufficientDataError,
    check_embeddings,
    frechet_distance,
    gaussian_stats,
)


@dataclass(frozen=True)
class FadInfResult:
    value: float  # FAD_inf, the intercept of FAD against 1/n
    slope: float  # FAD units x frames
    r2: float  # coefficient of determination of the linear fit in 1/n
    points: list[tuple[int, float]]  # (n, FAD at n)
    n_evaluated: int
    seed: int
    sampling: str = "without replacement"
    ci: ConfidenceInterval | None = None
    replicates: np.ndarray | None = field(default=None, repr=False)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "value": self.value, "slope": self.slope, "r2": self.r2, "points": [list(p) for p in self.points],
            "n_evaluated": self.n_evaluated, "seed": self.seed, "sampling": self.sampling,
        }
        if self.ci is not None:
            out["ci"] = self.ci.as_dict()
        return out


def fit_inverse_n(ns: np.ndarray, values: np.ndarray) -> tuple[float, float, float]:
    """Least-squares fit ``values = intercept + slope / n`` -> (intercept, slope, R^2)."""
    x = 1.0 / np.asarray(ns, dtype=np.float64)
    y = np.asarray(values, dtype=np.float64)
    design = np.stack([np.ones_like(x), x], axis=1)  # (K, 2)
    (intercept, slope), *_ = np.linalg.lstsq(design, y, rcond=None)
    resid = y - (intercept + slope * x)
    total = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - float((resid**2).sum()) / total if total > 0 else 1.0
    return float(intercept), float(slope), r2


def _subset_sizes(n_total: int, dim: int, n_points: int, min_n: int | None) -> np.ndarray:
    lowest = max(dim + 1, math.ceil(n_total / 10)) if min_n is None else int(min_n)
    if lowest < dim + 1:
        raise ValueError(f"min_n ({lowest}) must be at least dim + 1 = {dim + 1} for full-rank covariances")
    if n_total < max(lowest + 1, 2 * (dim + 1)):
        raise InsufficientDataError(
            f"FAD-inf needs at least {max(lowest + 1, 2 * (dim + 1))} evaluated frames "
            f"(two subset sizes with full-rank {dim}x{dim} covariances), got {n_total}"
        )
    if n_points < 2:
        raise ValueError(f"n_points must be >= 2, got {n_points}")
    return np.unique(np.linspace(lowest, n_total, n_points).astype(np.int64))


def _fad_inf_core(
    ref: GaussianStats, ev: np.ndarray, sizes: np.ndarray, seed: int
) -> tuple[list[tuple[int, float]], float, float, float]:
    points = []
    for i, n in enumerate(sizes):
        rng = np.random.default_rng([int(seed), 11, i])
        rows = rng.choice(ev.shape[0], size=int(n), replace=False)
        sub = gaussian_stats(ev[rows], what="evaluated subset")
        points.append((int(n), frechet_distance(ref.mu, ref.cov, sub.mu, sub.cov).value))
    intercept, slope, r2 = fit_inverse_n(np.array([p[0] for p in points]), np.array([p[1] for p in points]))
    return points, intercept, slope, r2


def fad_inf(
    reference: np.ndarray | GaussianStats,
    evaluated: np.ndarray,
    *,
    n_points: int = 15,
    min_n: int | None = None,
    seed: int = 0,
    groups_evaluated: Sequence | np.ndarray | None = None,
    n_boot: int = 0,
    level: float = 0.95,
) -> FadInfResult:
    """FAD-inf of evaluated (N, D) frames against a reference (frames or :class:`GaussianStats`).

    ``min_n`` defaults to ``max(D + 1, ceil(N / 10))``. ``n_boot > 0`` adds a bootstrap CI that
    resamples evaluated clips (or frames) and refits each replicate: it costs ``n_boot *
    n_points`` Frechet distances, so keep ``n_boot`` modest (e.g. 100-200).
    """
    ev = check_embeddings(evaluated, "evaluated embeddings")
    ref = reference if isinstance(reference, GaussianStats) else gaussian_stats(reference, what="reference")
    if ref.dim != ev.shape[1]:
        raise ValueError(f"embedding dimensions differ (reference {ref.dim}, evaluated {ev.shape[1]})")
    sizes = _subset_sizes(ev.shape[0], ev.shape[1], n_points, min_n)
    points, intercept, slope, r2 = _fad_inf_core(ref, ev, sizes, seed)
    ci = reps = None
    if n_boot > 0:
        def statistic(_ref_rows: np.ndarray, ev_rows: np.ndarray) -> float:
            resampled = ev[ev_rows]
            sub_sizes = _subset_sizes(resampled.shape[0], resampled.shape[1], n_points, min_n)
            return _fad_inf_core(ref, resampled, sub_sizes, seed)[1]

        ci, reps = bootstrap_generic(
            statistic, 1, ev.shape[0], groups_evaluated=groups_evaluated, n_boot=n_boot, seed=seed,
            level=level, resample_reference=False, estimate=intercept,
        )
    return FadInfResult(
        value=intercept, slope=slope, r2=r2, points=points, n_evaluated=int(ev.shape[0]), seed=int(seed),
        ci=ci, replicates=reps,
    )
