"""Exact, fast bootstrap of the Frechet distance (FAD's confidence interval).

Sufficient statistics. A resample of units (clips or frames, see
:mod:`metrics.quality.bootstrap`) is a vector of unit counts ``w``, and its moments are
weighted sums of per-unit statistics tabulated once: frame count ``n = w . n_u``, sum
``s = w . s_u`` and sum of outer products ``Q = sum_u w_u X_u^T X_u``, so a batch of replicates
costs one matrix product instead of a pass over all frames. ``Q`` is symmetric, so the table
and the batch hold only its upper triangle, packed (half the memory and memory traffic).
With too many units for the table (``units x D(D+1)/2`` values above ``table_bytes``),
``Q`` is computed from frame weights instead; both routes give the same numbers (tested).

Trace term. With the scatter matrices ``C = Q - s s^T / n = (n - 1) S`` (unpacked into a
thread's scratch matrix and centred by a rank-1 update),
``tr sqrt(S_1 S_2) = tr sqrt(C_1 C_2) / sqrt((n_1 - 1)(n_2 - 1))``, computed by LAPACK's
minimal-work route (Cholesky of ``C_1``, the congruence ``L^T C_2 L``, its eigenvalues; see
:mod:`metrics.quality.lapack`), which reads exactly the packed upper triangle. When ``C_1`` is
not positive definite the replicate takes :func:`frechet_distance`'s eigh route instead.

Replicates run one per core on one :class:`metrics.quality.parallel.CorePool` for all batches,
each thread with its own LAPACK workspace and scratch matrices (allocated once per thread);
the values do not depend on the thread count. Batches are pipelined: a batch's sums are pool
jobs queued two batches ahead, into one of three buffers, so no core waits at a batch boundary
(with a barrier per batch, the last replicates of each batch left a core idle: 0.3-0.6 s of
9.3-9.9 s on 2 cores, 10,000 x 512, 100 clips).
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Sequence

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
from metrics.quality.frechet import frechet_distance, psd_factor
from metrics.quality.lapack import square_matrix, thread_solver
from metrics.quality.parallel import CorePool


@dataclass(frozen=True)
class _Packing:
    """The packed upper triangle (row-major, diagonal included) of D x D: the layout of
    :meth:`SymmetricSolver.pack <metrics.quality.lapack.SymmetricSolver.pack>`."""

    d: int
    flat_upper: np.ndarray  # (P,) row * D + col of each packed entry, P = D(D+1)/2
    flat_lower: np.ndarray  # (P,) col * D + row (the mirrored position)

    @property
    def size(self) -> int:
        return int(self.flat_upper.shape[0])

    def full(self, packed: np.ndarray) -> np.ndarray:
        """(P,) -> a new symmetric (D, D)."""
        out = np.empty((self.d, self.d))
        flat = out.reshape(-1)
        flat[self.flat_lower] = packed
        flat[self.flat_upper] = packed
        return out


@lru_cache(maxsize=8)
def _packing(d: int) -> _Packing:
    rows, cols = np.triu_indices(d)
    return _Packing(d=d, flat_upper=rows * d + cols, flat_lower=cols * d + rows)


_SCRATCH = threading.local()


def _scratch(d: int) -> tuple[np.ndarray, np.ndarray]:
    """Two (D, D) matrices owned by this thread, reused by every replicate it runs."""
    pair = getattr(_SCRATCH, "pair", None)
    if pair is None or pair[0].shape[0] != d:
        pair = _SCRATCH.pair = (square_matrix(d), square_matrix(d))  # rows padded: faster LAPACK
    return pair


class _MomentTable:
    """Per-unit sufficient statistics of one (centred) embedding set, for weighted resamples.

    The packed sums of outer products of a batch of replicates go into one of ``slots`` buffers
    (``batch`` replicates each), reused batch after batch (fresh memory per batch would cost page
    faults every time)."""

    def __init__(self, x: np.ndarray, units: Units, table_bytes: int, pool: CorePool, batch: int,
                 slots: int) -> None:
        self.x = x  # (N, D) float64, centred by a shared shift
        self.units = units
        n, d = x.shape
        self.packing = _packing(d)
        sizes = np.bincount(units.index, minlength=units.n_units)  # (U,) every unit has a frame
        self.n_u = sizes.astype(np.float64)  # (U,)
        order = np.argsort(units.index, kind="stable")
        xs = x if np.array_equal(order, np.arange(n)) else x[order]  # frames grouped by unit
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        self.s_u = np.add.reduceat(xs, starts, axis=0)  # (U, D)
        self.use_table = units.n_units * self.packing.size * 8 <= table_bytes
        self._slots: list[np.ndarray] = []  # (batch, P) each, table route only
        self._per_thread = threading.local()  # frame route: each thread's packed (P,) buffer
        if self.use_table:
            self.t_u = np.empty((units.n_units, self.packing.size))  # (U, P)
            self._slots = [np.empty((batch, self.packing.size)) for _ in range(slots)]
            xs = np.ascontiguousarray(xs)

            def tabulate(u: int) -> None:
                outer, solver = _scratch(d)[0], thread_solver(d)
                solver.gram(xs[starts[u]:starts[u] + sizes[u]], outer)  # X_u^T X_u, upper triangle
                solver.pack(outer, self.t_u[u])

            pool.map(tabulate, range(units.n_units))

    def totals(self, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(B, U) counts -> frames (B,) and sums (B, D) of every replicate."""
        w = counts.astype(np.float64)
        return w @ self.n_u, w @ self.s_u

    def fill(self, counts: np.ndarray, slot: int) -> None:
        """Table route: the packed sums of outer products of a batch's (b, U) counts into buffer
        ``slot`` (one matrix product, on the calling thread). The frame route has nothing to do
        here: each replicate computes its own (:meth:`outer_sums`)."""
        if self.use_table:
            np.matmul(counts.astype(np.float64), self.t_u, out=self._slots[slot][:counts.shape[0]])

    def outer_sums(self, slot: int, i: int, counts: np.ndarray) -> np.ndarray:
        """The packed sum of outer products (P,) of replicate ``i`` of the batch in ``slot``, whose
        unit counts are ``counts`` (U,). Table route: a row of the buffer :meth:`fill` wrote. Frame
        route (too many units for a table): computed here from the frames, into this thread's
        buffer (valid until the thread's next call)."""
        if self.use_table:
            return self._slots[slot][i]
        d = self.x.shape[1]
        packed = getattr(self._per_thread, "packed", None)
        if packed is None:
            packed = self._per_thread.packed = np.empty(self.packing.size)
        frame_w = counts.astype(np.float64)[self.units.index]  # (N,) weight of each frame
        outer = _scratch(d)[0]
        np.matmul((self.x * frame_w[:, None]).T, self.x, out=outer)
        thread_solver(d).pack(outer, packed)
        return packed


_SLOTS = 3  # sums buffers per set: batch k + 2's sums are computed while batch k's replicates run


def _pipelined_replicates(pool: CorePool, tables: list[_MomentTable], counts: list[np.ndarray], n_boot: int,
                          batch: int, replicate: Callable[[int, int, int], float]) -> np.ndarray:
    """Every replicate's value (n_boot,), computed batch by batch without a barrier between batches.

    Each table's sums of batch ``k`` are one pool job writing slot ``k % 3``, queued two batches
    ahead of the replicates that read them, and waiting only for the replicates of batch ``k - 3``
    (the previous readers of that slot): the pool starts jobs in order, so every wait is on an
    earlier job and a core moves straight from one batch's replicates to the next's.
    ``replicate(slot, i, r)`` is replicate ``r``, the ``i``-th of the batch in ``slot``.
    """
    values = np.empty(n_boot)
    starts = list(range(0, n_boot, batch))
    fills: list[list[Future]] = []
    runs: list[list[Future]] = []

    def fill(k: int, j: int) -> None:
        if k >= _SLOTS:
            for job in runs[k - _SLOTS]:
                job.result()
        a = starts[k]
        tables[j].fill(counts[j][a:a + batch], k % _SLOTS)

    def run(k: int, i: int) -> None:
        for job in fills[k]:
            job.result()
        values[starts[k] + i] = replicate(k % _SLOTS, i, starts[k] + i)

    def queue_fill(k: int) -> None:
        if k < len(starts):
            fills.append([pool.submit(fill, k, j) for j in range(len(tables))])

    try:
        for k in range(_SLOTS - 1):
            queue_fill(k)
        for k, a in enumerate(starts):
            runs.append([pool.submit(run, k, i) for i in range(min(batch, n_boot - a))])
            queue_fill(k + _SLOTS - 1)
        for jobs in runs:
            for job in jobs:
                job.result()
    except BaseException:
        for job in (job for jobs in fills + runs for job in jobs):
            job.cancel()  # the jobs not started yet; the pool waits for the running ones
        raise
    return values


def _scatter(packing: _Packing, n: float, s: np.ndarray, q: np.ndarray, out: np.ndarray) -> np.ndarray:
    """The scatter matrix ``(n - 1) S = Q - s s^T / n`` of a resample, from its packed ``Q``, in the
    C upper triangle of ``out`` (D, D) (all LAPACK reads); GIL released for the rank-1 update."""
    solver = thread_solver(packing.d)
    solver.unpack(q, out)
    solver.rank1_update(out, s, -1.0 / n)
    return out


def _full_scatter(packing: _Packing, n: float, s: np.ndarray, q: np.ndarray) -> np.ndarray:
    """The scatter matrix ``(n - 1) S`` (D, D) of a resample, both triangles (for the eigh route)."""
    return packing.full(q) - np.outer(s, s / n)


def _frechet_from_sums(packing: _Packing, n1: float, s1: np.ndarray, q1: np.ndarray, n2: float,
                       s2: np.ndarray, q2: np.ndarray) -> float:
    """The Frechet distance of one replicate from each set's frame count, sum and packed sum of
    outer products: see the module docstring."""
    diff = s1 / n1 - s2 / n2
    c1, c2 = _scratch(packing.d)
    _scatter(packing, n1, s1, q1, c1)
    _scatter(packing, n2, s2, q2, c2)
    traces = float(np.trace(c1)) / (n1 - 1.0) + float(np.trace(c2)) / (n2 - 1.0)
    solver = thread_solver(packing.d)
    try:
        solver.cholesky(c1)
    except np.linalg.LinAlgError:  # C_1 is singular: the eigh route, from the intact packed sums
        cov1 = _full_scatter(packing, n1, s1, q1) / (n1 - 1.0)
        cov2 = _full_scatter(packing, n2, s2, q2) / (n2 - 1.0)
        return frechet_distance(s1 / n1, cov1, s2 / n2, cov2, factor="eigh").value
    solver.congruence(c2, c1)
    tr_sqrt = float(np.sqrt(np.maximum(solver.eigvalsh(c2), 0.0)).sum()) / np.sqrt((n1 - 1.0) * (n2 - 1.0))
    return float(diff @ diff) + traces - 2.0 * tr_sqrt


class _FixedReference:
    """The reference Gaussian of a bootstrap that resamples only the evaluated set: its mean,
    trace and, once, a factor (Cholesky when positive definite, else eigh's PSD factor)."""

    def __init__(self, mu: np.ndarray, cov: np.ndarray) -> None:
        cov = (cov + cov.T) / 2.0
        self.mu, self.trace, d = mu, float(np.trace(cov)), mu.shape[0]
        factor = square_matrix(d)  # rows padded, as the replicates' matrices
        factor[:] = cov
        self.cholesky: np.ndarray | None = factor
        self.eigh_factor: np.ndarray | None = None
        try:
            thread_solver(d).cholesky(self.cholesky)  # read concurrently by the replicates' congruences
        except np.linalg.LinAlgError:  # singular (e.g. published) statistics
            self.cholesky = None
            self.eigh_factor = psd_factor(cov, "eigh")[0]

    def distance(self, packing: _Packing, n: float, s: np.ndarray, q: np.ndarray) -> float:
        """Frechet distance to one resample of the evaluated set, from its packed sums."""
        diff = self.mu - s / n
        solver = thread_solver(packing.d)
        if self.cholesky is not None:
            m = _scatter(packing, n, s, q, _scratch(packing.d)[0])
            trace_e = float(np.trace(m)) / (n - 1.0)
            solver.congruence(m, self.cholesky)  # L_r^T C_e L_r
        else:
            assert self.eigh_factor is not None
            f, scatter = self.eigh_factor, _full_scatter(packing, n, s, q)
            trace_e = float(np.trace(scatter)) / (n - 1.0)
            m = np.ascontiguousarray(f.T @ scatter @ f)
        tr_sqrt = float(np.sqrt(np.maximum(solver.eigvalsh(m), 0.0)).sum()) / np.sqrt(n - 1.0)
        return float(diff @ diff) + self.trace + trace_e - 2.0 * tr_sqrt


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
    batch_bytes: int = 32 * 2**20,
    estimate: float | None = None,
    method: str = "percentile",
    workers: int | None = None,
) -> tuple[ConfidenceInterval, np.ndarray]:
    """Bootstrap CI of the Frechet distance between two embedding sets (N, D) and (M, D).

    Returns (interval, replicates). Units and seeding are those of
    :mod:`metrics.quality.bootstrap`. With ``reference_stats=(mu, cov)`` instead of reference
    embeddings (published statistics), only the evaluated set is resampled. Replicates run on
    ``workers`` threads (default: every core), one BLAS thread each; the values do not depend on
    the count. ``batch_bytes`` bounds each of a set's three buffers of packed outer-product sums
    (a batch of replicates each).
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
    d = ev.shape[1]
    c_ev = bootstrap_counts(u_ev.n_units, n_boot, seed, STREAM_EVALUATED)
    batch = max(1, min(n_boot, batch_bytes // (8 * _packing(d).size)))
    slots = min(_SLOTS, -(-n_boot // batch))  # no more buffers than batches
    thread_solver(d)  # loads scipy's LAPACK now, so that the pool's one-BLAS-thread limit covers it
    fixed: _FixedReference | None = None
    if not resample_reference:
        if ref_c is not None:
            fixed = _FixedReference(ref_c.mean(axis=0), np.cov(ref_c, rowvar=False))
        else:
            assert reference_stats is not None
            fixed = _FixedReference(np.zeros(d), np.asarray(reference_stats[1], dtype=np.float64))
    with CorePool(workers) as pool:  # one pool: thread-local workspaces live across all batches
        t_ev = _MomentTable(ev_c, u_ev, table_bytes, pool, batch, slots)
        n_e, s_e = t_ev.totals(c_ev)
        packing = t_ev.packing
        if fixed is None:
            assert ref_c is not None and u_ref is not None
            t_ref = _MomentTable(ref_c, u_ref, table_bytes, pool, batch, slots)
            c_ref = bootstrap_counts(u_ref.n_units, n_boot, seed, STREAM_REFERENCE)
            n_r, s_r = t_ref.totals(c_ref)

            def replicate(slot: int, i: int, r: int) -> float:
                q_r, q_e = t_ref.outer_sums(slot, i, c_ref[r]), t_ev.outer_sums(slot, i, c_ev[r])
                return _frechet_from_sums(packing, n_r[r], s_r[r], q_r, n_e[r], s_e[r], q_e)

            reps = _pipelined_replicates(pool, [t_ref, t_ev], [c_ref, c_ev], n_boot, batch, replicate)
        else:
            reference_fixed = fixed

            def replicate_fixed(slot: int, i: int, r: int) -> float:
                return reference_fixed.distance(packing, n_e[r], s_e[r], t_ev.outer_sums(slot, i, c_ev[r]))

            reps = _pipelined_replicates(pool, [t_ev], [c_ev], n_boot, batch, replicate_fixed)
    unit = u_ev.kind if (u_ref is None or not resample_reference or u_ev.kind == u_ref.kind) else (
        f"{u_ref.kind}(reference)/{u_ev.kind}(evaluated)"
    )
    return bootstrap_interval(reps, level=level, seed=seed, unit=unit, estimate=estimate, method=method), reps


__all__ = ["bootstrap_frechet"]
