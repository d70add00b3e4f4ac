"""Kernel Audio Distance (KAD): unbiased MMD^2 with a Gaussian RBF kernel, x100.

    k(a, b) = exp(-|a - b|^2 / (2 sigma^2))
    MMD^2_u = mean_{i != j} k(x_i, x_j) + mean_{i != j} k(y_i, y_j) - 2 mean_{i, j} k(x_i, y_j)
    KAD     = 100 * MMD^2_u            (the scaling of the KAD paper and kadtk)

``sigma`` is the median pairwise Euclidean distance of the REFERENCE set (exact over all pairs
up to ``max_frames`` = 4096 frames, else over all pairs of a seeded random subset of 4096 frames).
kadtk's code takes it from the evaluated set while its README says reference; here it is the
reference, so the kernel does not change with the system being scored. It is held fixed in the
bootstrap.

Properties: no Gaussian assumption; unbiased (its expectation is 0 when both sets come from
one distribution, whatever their sizes), so it can be slightly negative. Lower is better.
Units: dimensionless (kernel values), x100.

Bootstrap: one blockwise pass over each kernel matrix computes the statistic and every
replicate's quadratic forms ``c^T K c``: with few resampling units (clips) the kernel is summed
per pair of units once and each replicate is a small quadratic form in unit counts; with many
(frames) each block is multiplied by the (N, B) frame-count matrix. A within-set kernel matrix
is symmetric: only its blocks on and right of the diagonal are computed, the others counted by
transposition.
Within-set means of a replicate exclude pairs of the SAME original frame (a frame drawn twice
is not a pair of independent draws), so each replicate is itself an unbiased U-statistic of the
resampled distribution: ``(c^T K c - sum c_i^2) / ((sum c)^2 - sum c_i^2)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from metrics.quality.bootstrap import (
    STREAM_EVALUATED,
    STREAM_REFERENCE,
    ConfidenceInterval,
    Units,
    bootstrap_counts,
    bootstrap_interval,
    units_of,
)
from metrics.quality.frechet import InsufficientDataError, check_embeddings

SCALE = 100.0
MAX_FRAMES = 4096


@dataclass(frozen=True)
class KadResult:
    value: float  # 100 * MMD^2_u (lower is better; ~0 for matching distributions)
    mmd2: float  # unscaled unbiased MMD^2
    bandwidth: float  # sigma of the RBF kernel
    bandwidth_source: str  # "reference median (exact)", "... (all pairs of K of N frames, seed S)", "given"
    n_reference: int
    n_evaluated: int
    scale: float = SCALE
    ci: ConfidenceInterval | None = None
    replicates: np.ndarray | None = field(default=None, repr=False)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "value": self.value, "mmd2": self.mmd2, "bandwidth": self.bandwidth,
            "bandwidth_source": self.bandwidth_source, "n_reference": self.n_reference,
            "n_evaluated": self.n_evaluated, "scale": self.scale,
        }
        if self.ci is not None:
            out["ci"] = self.ci.as_dict()
        return out


def median_pairwise_distance(x: np.ndarray, *, max_frames: int = MAX_FRAMES, seed: int = 0) -> tuple[float, str]:
    """Median Euclidean distance over distinct pairs of rows of (N, D) ``x`` -> (median, how).

    Exact over all N(N-1)/2 pairs when N <= ``max_frames``; otherwise over all pairs within a
    seeded random subset of ``max_frames`` rows (every pair equally likely to be included).
    """
    arr = np.asarray(x, dtype=np.float64)
    n = arr.shape[0]
    if n < 2:
        raise InsufficientDataError(f"the kernel bandwidth needs at least 2 reference frames, got {n}")
    if n > max_frames:
        rows = np.sort(np.random.default_rng([int(seed), 7]).choice(n, size=max_frames, replace=False))
        arr = arr[rows]
        how = f"reference median (all pairs of {max_frames} of {n} frames, seed {seed})"
    else:
        how = "reference median (exact)"
    m = arr.shape[0]
    sq = np.einsum("ij,ij->i", arr, arr)
    parts = []
    for a in range(0, m - 1, 1024):
        d2 = sq[a:a + 1024, None] + sq[None, :] - 2.0 * arr[a:a + 1024] @ arr.T  # (r, m)
        upper = np.arange(m)[None, :] > np.arange(a, a + d2.shape[0])[:, None]  # each distinct pair once
        parts.append(d2[upper])
    median = float(np.median(np.sqrt(np.maximum(np.concatenate(parts), 0.0))))
    if not median > 0:
        raise ValueError("the reference frames are all identical (median pairwise distance 0); KAD is undefined")
    return median, how


def _unit_sums(k: np.ndarray, row_units: np.ndarray, col_units: np.ndarray, agg: np.ndarray) -> None:
    """Add the block ``k`` (r, c), summed per (row unit, column unit), into ``agg``; both unit
    index arrays are sorted (frames grouped by unit)."""
    row_seg = np.flatnonzero(np.r_[True, row_units[1:] != row_units[:-1]])
    col_seg = np.flatnonzero(np.r_[True, col_units[1:] != col_units[:-1]])
    sums = np.add.reduceat(np.add.reduceat(k, col_seg, axis=1), row_seg, axis=0)
    agg[np.ix_(row_units[row_seg], col_units[col_seg])] += sums  # units are distinct within a block


def _kernel_pass(
    a: np.ndarray,
    b: np.ndarray,
    gamma: float,
    same: bool,
    block_rows: int,
    *,
    ca: np.ndarray | None = None,
    cb: np.ndarray | None = None,
    row_units: np.ndarray | None = None,
    col_units: np.ndarray | None = None,
    n_row_units: int = 0,
    n_col_units: int = 0,
) -> tuple[float, np.ndarray | None, np.ndarray | None]:
    """One blockwise pass over K = k(a_i, b_j).

    Returns (sum of K, per-replicate ``ca[:, r]^T K cb[:, r]`` when frame counts are given,
    unit-aggregated sums ``K_units[u, v] = sum over frames of unit u x unit v`` when
    ``row_units``/``col_units`` are given; the frames must then be sorted by unit).
    With ``same`` (``b is a``, ``cb`` equal to ``ca``) K is symmetric: only the blocks on and
    right of the diagonal are computed, the off-diagonal ones counted twice.
    """
    sq_a = np.einsum("ij,ij->i", a, a)
    sq_b = sq_a if same else np.einsum("ij,ij->i", b, b)
    total = 0.0
    quad = None if ca is None else np.zeros(ca.shape[1])
    agg = None if row_units is None else np.zeros((n_row_units, n_col_units))
    agg_off = None if (agg is None or not same) else np.zeros_like(agg)  # strictly right of the diagonal
    for r0 in range(0, a.shape[0], block_rows):
        r1 = min(r0 + block_rows, a.shape[0])
        c0 = r0 if same else 0  # same: columns left of the block are the transpose of earlier blocks
        k = a[r0:r1] @ b[c0:].T  # (r, Nb - c0)
        k *= -2.0
        k += sq_a[r0:r1, None]
        k += sq_b[None, c0:]
        np.maximum(k, 0.0, out=k)
        if same:
            k[np.arange(r1 - r0), np.arange(r1 - r0)] = 0.0  # exact zero self-distance
        k *= -gamma
        np.exp(k, out=k)
        if not same:
            total += float(k.sum())
            if quad is not None:
                quad += np.einsum("rb,rb->b", ca[r0:r1], k @ cb)
            if agg is not None:
                _unit_sums(k, row_units[r0:r1], col_units, agg)
            continue
        diag, off = k[:, :r1 - r0], k[:, r1 - r0:]  # (r, r) and (r, Nb - r1)
        total += float(diag.sum()) + 2.0 * float(off.sum())
        if quad is not None:
            quad += np.einsum("rb,rb->b", ca[r0:r1], diag @ ca[r0:r1] + 2.0 * (off @ ca[r1:]))
        if agg is not None and agg_off is not None:
            _unit_sums(diag, row_units[r0:r1], row_units[r0:r1], agg)
            if off.shape[1]:
                _unit_sums(off, row_units[r0:r1], row_units[r1:], agg_off)
    if agg_off is not None and agg is not None:
        agg += agg_off + agg_off.T
    return total, quad, agg


def _sorted_by_unit(data: np.ndarray, units: Units) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows sorted by unit, their unit index, frames per unit)."""
    order = np.argsort(units.index, kind="stable")
    sizes = np.bincount(units.index, minlength=units.n_units)
    return data[order], units.index[order], sizes.astype(np.float64)


def _bootstrap_pass(
    a: np.ndarray, b: np.ndarray, ua: Units, ub: Units, counts_a: np.ndarray, counts_b: np.ndarray,
    gamma: float, same: bool, block_rows: int, aggregate_bytes: int,
) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """Sum of K and, per replicate, (c_a^T K c_b, frames in a, sum of c_a^2 over frames).

    With few units the kernel is summed per unit pair once and every replicate is a small
    quadratic form in unit counts; otherwise frame counts multiply each kernel block.
    """
    a_s, a_units, a_sizes = _sorted_by_unit(a, ua)
    b_s, b_units, _ = (a_s, a_units, a_sizes) if same else _sorted_by_unit(b, ub)
    wa, wb = counts_a.astype(np.float64), counts_b.astype(np.float64)  # (B, Ua), (B, Ub)
    if ua.n_units * ub.n_units * 8 <= aggregate_bytes:
        total, _, agg = _kernel_pass(
            a_s, b_s, gamma, same, block_rows, row_units=a_units, col_units=b_units, n_row_units=ua.n_units,
            n_col_units=ub.n_units,
        )
        quad = np.einsum("bu,bu->b", wa @ agg, wb)
    else:
        fa = wa[:, a_units].T  # (Na, B) frame counts, sorted order
        fb = fa if same else wb[:, np.sort(ub.index)].T
        total, quad, _ = _kernel_pass(a_s, b_s, gamma, same, block_rows, ca=fa, cb=fb)
    frames = wa @ a_sizes  # (B,)
    sq = (wa * wa) @ a_sizes  # (B,) sum over frames of their count squared
    return total, quad, frames, sq


def kad(
    reference: np.ndarray,
    evaluated: np.ndarray,
    *,
    bandwidth: float | None = None,
    groups_reference: Sequence | np.ndarray | None = None,
    groups_evaluated: Sequence | np.ndarray | None = None,
    n_boot: int = 0,
    seed: int = 0,
    level: float = 0.95,
    ci_method: str = "percentile",
    max_frames: int = MAX_FRAMES,
    block_rows: int = 1024,
    aggregate_bytes: int = 256 * 2**20,
) -> KadResult:
    """KAD of evaluated (M, D) frames against reference (N, D) frames (see module docstring).

    ``bandwidth=None`` uses the reference median pairwise distance. ``n_boot > 0`` adds a seeded
    percentile CI (clips resampled when ``groups_*`` are given, else frames).
    """
    x = check_embeddings(reference, "reference embeddings")
    y = check_embeddings(evaluated, "evaluated embeddings")
    if x.shape[1] != y.shape[1]:
        raise ValueError(
            f"embedding dimensions differ (reference {x.shape[1]}, evaluated {y.shape[1]}): "
            f"embed both sets with the same embedder"
        )
    for arr, what in ((x, "reference"), (y, "evaluated")):
        if arr.shape[0] < 2:
            raise InsufficientDataError(f"KAD needs at least 2 {what} frames, got {arr.shape[0]}")
    shift = x.mean(axis=0)  # distances are translation invariant; centring limits round-off
    x, y = x - shift, y - shift
    if bandwidth is None:
        sigma, how = median_pairwise_distance(x, max_frames=max_frames, seed=seed)
    else:
        if not bandwidth > 0:
            raise ValueError(f"bandwidth must be > 0, got {bandwidth}")
        sigma, how = float(bandwidth), "given"
    gamma = 1.0 / (2.0 * sigma * sigma)
    m, n = x.shape[0], y.shape[0]

    ci = reps = None
    if n_boot > 0:
        ux = units_of(m, groups_reference, "reference")
        uy = units_of(n, groups_evaluated, "evaluated")
        cx = bootstrap_counts(ux.n_units, n_boot, seed, STREAM_REFERENCE)  # (B, Ux)
        cy = bootstrap_counts(uy.n_units, n_boot, seed, STREAM_EVALUATED)  # (B, Uy)
        sxx, qxx, nx, sq_x = _bootstrap_pass(x, x, ux, ux, cx, cx, gamma, True, block_rows, aggregate_bytes)
        syy, qyy, ny, sq_y = _bootstrap_pass(y, y, uy, uy, cy, cy, gamma, True, block_rows, aggregate_bytes)
        sxy, qxy, _, _ = _bootstrap_pass(x, y, ux, uy, cx, cy, gamma, False, block_rows, aggregate_bytes)
        reps = SCALE * ((qxx - sq_x) / (nx * nx - sq_x) + (qyy - sq_y) / (ny * ny - sq_y) - 2.0 * qxy / (nx * ny))
    else:
        sxx, _, _ = _kernel_pass(x, x, gamma, True, block_rows)
        syy, _, _ = _kernel_pass(y, y, gamma, True, block_rows)
        sxy, _, _ = _kernel_pass(x, y, gamma, False, block_rows)
    mmd2 = (sxx - m) / (m * (m - 1)) + (syy - n) / (n * (n - 1)) - 2.0 * sxy / (m * n)
    if reps is not None:
        unit = ux.kind if ux.kind == uy.kind else f"{ux.kind}(reference)/{uy.kind}(evaluated)"
        ci = bootstrap_interval(reps, level=level, seed=seed, unit=unit, estimate=SCALE * mmd2, method=ci_method)
    return KadResult(
        value=SCALE * mmd2, mmd2=mmd2, bandwidth=sigma, bandwidth_source=how, n_reference=m, n_evaluated=n,
        ci=ci, replicates=reps,
    )
