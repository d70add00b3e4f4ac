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

Bootstrap: one tiled pass over each kernel matrix computes the statistic and every
replicate's quadratic forms ``c^T K c``: with few resampling units (clips) the kernel is summed
per pair of units once and each replicate is a small quadratic form in unit counts; with many
(frames) each tile is multiplied by the (N, B) frame-count matrix. A within-set kernel matrix
is symmetric: only its tiles on and right of the diagonal are computed, the others counted by
transposition. Tiles (``tile_frames`` x ``tile_frames``, small enough to stay in a core's cache) run one
per core and are reduced in a fixed order.
Within-set means of a replicate exclude pairs of the SAME original frame (a frame drawn twice
is not a pair of independent draws), so each replicate is itself an unbiased U-statistic of the
resampled distribution: ``(c^T K c - sum c_i^2) / ((sum c)^2 - sum c_i^2)``.
"""

from __future__ import annotations

import threading
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
from metrics.quality.parallel import map_on_cores

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
    sq = np.einsum("ij,ij->i", arr, arr)  # (m,)
    d2 = np.empty(m * (m - 1) // 2)  # squared distance of each distinct pair, filled block by block
    filled = 0
    for a in range(0, m - 1, 512):
        b = min(a + 512, m)
        block = sq[a:b, None] + sq[None, a:] - 2.0 * (arr[a:b] @ arr[a:].T)  # (r, m - a): columns from a
        upper = np.arange(a, m)[None, :] > np.arange(a, b)[:, None]  # each distinct pair once
        count = int(upper.sum())
        d2[filled:filled + count] = block[upper]
        filled += count
    # sqrt(max(., 0)) is monotone, so the median distance comes from the middle squared distances
    middle = [(d2.shape[0] - 1) // 2, d2.shape[0] // 2]
    d2.partition(middle)  # in place
    median = float(np.mean(np.sqrt(np.maximum(d2[middle], 0.0))))
    if not median > 0:
        raise ValueError("the reference frames are all identical (median pairwise distance 0); KAD is undefined")
    return median, how


def _unit_sums(k: np.ndarray, row_units: np.ndarray, col_units: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The tile ``k`` (r, c) summed per (row unit, column unit) -> (row unit ids, column unit ids,
    sums); both unit index arrays are sorted (frames grouped by unit)."""
    row_seg = np.flatnonzero(np.r_[True, row_units[1:] != row_units[:-1]])
    col_seg = np.flatnonzero(np.r_[True, col_units[1:] != col_units[:-1]])
    sums = np.add.reduceat(np.add.reduceat(k, col_seg, axis=1), row_seg, axis=0)
    return row_units[row_seg], col_units[col_seg], sums


_TILE = threading.local()


def _tile_buffer(edge: int) -> np.ndarray:
    """This thread's (edge, edge) kernel tile, reused (a fresh one per tile would page-fault)."""
    buffer = getattr(_TILE, "buffer", None)
    if buffer is None or buffer.shape[0] < edge:
        buffer = _TILE.buffer = np.empty((edge, edge))
    return buffer


def _kernel_pass(
    a: np.ndarray,
    b: np.ndarray,
    gamma: float,
    same: bool,
    tile: int,
    *,
    ca: np.ndarray | None = None,
    cb: np.ndarray | None = None,
    row_units: np.ndarray | None = None,
    col_units: np.ndarray | None = None,
    n_row_units: int = 0,
    n_col_units: int = 0,
    workers: int | None = None,
) -> tuple[float, np.ndarray | None, np.ndarray | None]:
    """One pass over K = k(a_i, b_j) in (tile x tile) tiles, run one tile per core.

    Returns (sum of K, per-replicate ``ca[:, r]^T K cb[:, r]`` when frame counts are given,
    unit-aggregated sums ``K_units[u, v] = sum over frames of unit u x unit v`` when
    ``row_units``/``col_units`` are given; the frames must then be sorted by unit).
    With ``same`` (``b is a``, ``cb`` equal to ``ca``) K is symmetric: only the tiles on and
    right of the diagonal are computed, the off-diagonal ones counted twice. A tile's kernel is
    ``exp(min(2 gamma a.b - gamma |a|^2 - gamma |b|^2, 0))`` (the squared distance clamped at 0,
    exactly 0 between a frame and itself). Tiles are reduced in a fixed order, so the result does
    not depend on the worker count.
    """
    scaled_a = a * (2.0 * gamma)  # (Na, D): scaled_a @ b.T = 2 gamma a.b
    half_a = -gamma * np.einsum("ij,ij->i", a, a)  # (Na,)
    half_b = half_a if same else -gamma * np.einsum("ij,ij->i", b, b)  # (Nb,)
    tiles = [(r0, c0) for r0 in range(0, a.shape[0], tile)
             for c0 in (range(r0, b.shape[0], tile) if same else range(0, b.shape[0], tile))]

    def run(corner: tuple[int, int]) -> tuple[float, Any, Any]:
        r0, c0 = corner
        r1, c1 = min(r0 + tile, a.shape[0]), min(c0 + tile, b.shape[0])
        k = _tile_buffer(tile)[:r1 - r0, :c1 - c0]  # (r, c)
        np.matmul(scaled_a[r0:r1], b[c0:c1].T, out=k)
        k += half_a[r0:r1, None]
        k += half_b[None, c0:c1]
        np.minimum(k, 0.0, out=k)
        on_diagonal = same and r0 == c0
        if on_diagonal:
            k[np.arange(r1 - r0), np.arange(r1 - r0)] = 0.0  # exact zero self-distance
        np.exp(k, out=k)
        quad = units = None
        if ca is not None and cb is not None:
            quad = np.einsum("rb,rb->b", ca[r0:r1], k @ cb[c0:c1])  # (B,)
        if row_units is not None and col_units is not None:
            units = _unit_sums(k, row_units[r0:r1], col_units[c0:c1])
        return float(k.sum()), quad, units

    total = 0.0
    quad_all = None if ca is None else np.zeros(ca.shape[1])
    agg = None if row_units is None else np.zeros((n_row_units, n_col_units))
    agg_off = None if (agg is None or not same) else np.zeros_like(agg)  # strictly right of the diagonal
    for (r0, c0), (tile_sum, quad, units) in zip(tiles, map_on_cores(run, tiles, workers)):
        weight = 1.0 if (not same or r0 == c0) else 2.0
        total += weight * tile_sum
        if quad_all is not None:
            quad_all += weight * quad
        if agg is not None:
            rows, cols, sums = units
            target = agg_off if (same and r0 != c0) else agg
            target[np.ix_(rows, cols)] += sums  # units are distinct within a tile
    if agg_off is not None and agg is not None:
        agg += agg_off + agg_off.T
    return total, quad_all, agg


def _sorted_by_unit(data: np.ndarray, units: Units) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows sorted by unit, their unit index, frames per unit)."""
    order = np.argsort(units.index, kind="stable")
    sizes = np.bincount(units.index, minlength=units.n_units)
    return data[order], units.index[order], sizes.astype(np.float64)


def _bootstrap_pass(
    a: np.ndarray, b: np.ndarray, ua: Units, ub: Units, counts_a: np.ndarray, counts_b: np.ndarray,
    gamma: float, same: bool, tile_frames: int, aggregate_bytes: int,
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
            a_s, b_s, gamma, same, tile_frames, row_units=a_units, col_units=b_units, n_row_units=ua.n_units,
            n_col_units=ub.n_units,
        )
        quad = np.einsum("bu,bu->b", wa @ agg, wb)
    else:
        fa = wa[:, a_units].T  # (Na, B) frame counts, sorted order
        fb = fa if same else wb[:, np.sort(ub.index)].T
        total, quad, _ = _kernel_pass(a_s, b_s, gamma, same, tile_frames, ca=fa, cb=fb)
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
    tile_frames: int = 512,
    aggregate_bytes: int = 256 * 2**20,
) -> KadResult:
    """KAD of evaluated (M, D) frames against reference (N, D) frames (see module docstring).

    ``bandwidth=None`` uses the reference median pairwise distance. ``n_boot > 0`` adds a seeded
    percentile CI (clips resampled when ``groups_*`` are given, else frames). ``tile_frames`` is
    the edge of a (square) kernel tile.
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
        sxx, qxx, nx, sq_x = _bootstrap_pass(x, x, ux, ux, cx, cx, gamma, True, tile_frames, aggregate_bytes)
        syy, qyy, ny, sq_y = _bootstrap_pass(y, y, uy, uy, cy, cy, gamma, True, tile_frames, aggregate_bytes)
        sxy, qxy, _, _ = _bootstrap_pass(x, y, ux, uy, cx, cy, gamma, False, tile_frames, aggregate_bytes)
        reps = SCALE * ((qxx - sq_x) / (nx * nx - sq_x) + (qyy - sq_y) / (ny * ny - sq_y) - 2.0 * qxy / (nx * ny))
    else:
        sxx, _, _ = _kernel_pass(x, x, gamma, True, tile_frames)
        syy, _, _ = _kernel_pass(y, y, gamma, True, tile_frames)
        sxy, _, _ = _kernel_pass(x, y, gamma, False, tile_frames)
    mmd2 = (sxx - m) / (m * (m - 1)) + (syy - n) / (n * (n - 1)) - 2.0 * sxy / (m * n)
    if reps is not None:
        unit = ux.kind if ux.kind == uy.kind else f"{ux.kind}(reference)/{uy.kind}(evaluated)"
        ci = bootstrap_interval(reps, level=level, seed=seed, unit=unit, estimate=SCALE * mmd2, method=ci_method)
    return KadResult(
        value=SCALE * mmd2, mmd2=mmd2, bandwidth=sigma, bandwidth_source=how, n_reference=m, n_evaluated=n,
        ci=ci, replicates=reps,
    )
