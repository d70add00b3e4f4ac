"""Seeded bootstrap confidence intervals for the quality metrics.

Resampling unit. Frames cut from one clip are not independent, so the bootstrap resamples
CLIPS when the caller passes ``groups`` (one clip id per frame) and frames only when it does
not; the unit is recorded in every :class:`ConfidenceInterval`. The reference and the evaluated
set are resampled independently (two-sample bootstrap), each with its own seeded stream:
``numpy.random.default_rng([seed, stream])`` with stream 0 for the reference and 1 for the
evaluated set, so FAD and KAD computed with the same seed see the same resamples.

Interval: percentile (default) or basic interval of the replicates at ``level`` (default 0.95),
with the bootstrap standard deviation and bias estimate. Replicates are kept for plots.

The Frechet-distance bootstrap here is exact and fast: per-unit sufficient statistics (frame
count, sum, sum of outer products) are tabulated once, so a replicate costs one weighted sum
and one factorisation instead of a pass over all frames. With too many units for the table
(``units x D x D`` above ``table_bytes``), replicates are computed directly from frame weights;
both paths give the same numbers (tested).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from metrics.quality.frechet import frechet_distance, psd_factor, trace_sqrt_product
from metrics.quality.parallel import map_on_cores

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


# ----------------------------------------------------------------------------- Frechet bootstrap
class _MomentTable:
    """Per-unit sufficient statistics of one (centred) embedding set, for weighted resamples."""

    def __init__(self, x: np.ndarray, units: Units, table_bytes: int) -> None:
        self.x = x  # (N, D) float64, centred by a shared shift
        self.units = units
        n, d = x.shape
        self.n_u = np.bincount(units.index, minlength=units.n_units).astype(np.float64)  # (U,)
        self.s_u = np.zeros((units.n_units, d))
        np.add.at(self.s_u, units.index, x)  # (U, D)
        self.use_table = units.n_units * d * d * 8 <= table_bytes
        if self.use_table:
            order = np.argsort(units.index, kind="stable")
            xs = x[order]
            starts = np.concatenate([[0], np.cumsum(np.bincount(units.index, minlength=units.n_units))[:-1]])
            outer = np.empty((units.n_units, d, d))
            for u, (a, c) in enumerate(zip(starts, self.n_u.astype(np.int64))):
                block = xs[a:a + c]
                outer[u] = block.T @ block
            self.t_u = outer.reshape(units.n_units, d * d)  # (U, D*D)

    def sums(self, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(b, U) counts -> frames (b,), sums (b, D), sums of outer products (b, D, D)."""
        d = self.x.shape[1]
        w = counts.astype(np.float64)
        n = w @ self.n_u  # (b,)
        s = w @ self.s_u  # (b, D)
        if self.use_table:
            q = (w @ self.t_u).reshape(-1, d, d)
        else:
            frame_w = w[:, self.units.index]  # (b, N)
            q = np.stack([(self.x * fw[:, None]).T @ self.x for fw in frame_w])
        return n, s, q


def _mean_cov(n: float, s: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and unbiased covariance (D, D) from a resample's frame count, sum and sum of
    outer products. Only the lower triangle is read downstream (Cholesky, eigvalsh)."""
    mu = s / n
    cov = q - np.outer(mu, n * mu)
    cov /= n - 1.0
    return mu, cov


def _frechet_replicate(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray) -> float:
    """The Frechet distance of one replicate: :func:`frechet_distance` with a Cholesky factor,
    without its input checks (the moments are finite by construction); its eigh route when
    ``cov1`` is not positive definite."""
    try:
        factor = np.linalg.cholesky(cov1)  # reads the lower triangle
    except np.linalg.LinAlgError:
        sym1, sym2 = (cov1 + cov1.T) / 2.0, (cov2 + cov2.T) / 2.0
        return frechet_distance(mu1, sym1, mu2, sym2, factor="eigh").value
    tr_sqrt, _, _ = trace_sqrt_product(factor, cov2)
    diff = mu1 - mu2
    return float(diff @ diff) + float(np.trace(cov1) + np.trace(cov2)) - 2.0 * tr_sqrt


def bootstrap_frechet(
    reference: np.ndarray | None,
    evaluated: np.ndarray,
    *,
    reference_stats: tuple[np.ndarray, np.ndarray] | None = None,
    groups_reference: Sequence | np.ndarray | None = None,
    groups_evaluated: Sequence | np.ndarray | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    resample_reference: bool = True,
    table_bytes: int = 512 * 2**20,
    batch_bytes: int = 64 * 2**20,
    estimate: float | None = None,
    method: str = "percentile",
    workers: int | None = None,
) -> tuple[ConfidenceInterval, np.ndarray]:
    """Bootstrap CI of the Frechet distance between two embedding sets (N, D) and (M, D).

    Returns (interval, replicates). See the module docstring for units and seeding. With
    ``reference_stats=(mu, cov)`` instead of reference embeddings (published statistics), only
    the evaluated set is resampled. Replicates run on ``workers`` threads (default: every core),
    one BLAS thread each; the values do not depend on the count.
    """
    ev = np.asarray(evaluated, dtype=np.float64)
    if reference is None:
        if reference_stats is None:
            raise ValueError("give reference embeddings or reference_stats=(mu, cov)")
        resample_reference = False
        shift = np.asarray(reference_stats[0], dtype=np.float64)
        ref_c = None
    else:
        ref = np.asarray(reference, dtype=np.float64)
        shift = ref.mean(axis=0)  # FD is translation invariant; centring keeps the moments accurate
        ref_c = ref - shift
    ev_c = ev - shift
    u_ref = units_of(ref_c.shape[0], groups_reference, "reference") if ref_c is not None else None
    u_ev = units_of(ev.shape[0], groups_evaluated, "evaluated")
    t_ev = _MomentTable(ev_c, u_ev, table_bytes)
    c_ev = bootstrap_counts(u_ev.n_units, n_boot, seed, STREAM_EVALUATED)
    d = ev.shape[1]
    batch = max(1, batch_bytes // (8 * d * d))
    reps = np.empty(n_boot)
    if resample_reference:
        assert ref_c is not None and u_ref is not None
        t_ref = _MomentTable(ref_c, u_ref, table_bytes)
        c_ref = bootstrap_counts(u_ref.n_units, n_boot, seed, STREAM_REFERENCE)
        for a in range(0, n_boot, batch):
            n_r, s_r, q_r = t_ref.sums(c_ref[a:a + batch])
            n_e, s_e, q_e = t_ev.sums(c_ev[a:a + batch])

            def replicate(i: int) -> float:
                return _frechet_replicate(*_mean_cov(n_r[i], s_r[i], q_r[i]), *_mean_cov(n_e[i], s_e[i], q_e[i]))

            reps[a:a + n_r.shape[0]] = map_on_cores(replicate, range(n_r.shape[0]), workers)
    else:
        if ref_c is not None:
            mu_r, cov_r = ref_c.mean(axis=0), np.cov(ref_c, rowvar=False)
        else:
            mu_r, cov_r = np.zeros(d), np.asarray(reference_stats[1], dtype=np.float64)
        f_r, _, _, _ = psd_factor((cov_r + cov_r.T) / 2.0, "eigh")
        tr_r = float(np.trace(cov_r))
        for a in range(0, n_boot, batch):
            n_e, s_e, q_e = t_ev.sums(c_ev[a:a + batch])

            def replicate_fixed(i: int) -> float:
                mu_e, cov_e = _mean_cov(n_e[i], s_e[i], q_e[i])
                tr_sqrt, _, _ = trace_sqrt_product(f_r, cov_e)
                diff = mu_r - mu_e
                return float(diff @ diff) + tr_r + float(np.trace(cov_e)) - 2.0 * tr_sqrt

            reps[a:a + n_e.shape[0]] = map_on_cores(replicate_fixed, range(n_e.shape[0]), workers)
    unit = u_ev.kind if (u_ref is None or not resample_reference or u_ev.kind == u_ref.kind) else (
        f"{u_ref.kind}(reference)/{u_ev.kind}(evaluated)"
    )
    return bootstrap_interval(reps, level=level, seed=seed, unit=unit, estimate=estimate, method=method), reps
