"""Frechet distance between Gaussians fitted to embeddings (FAD), computed stably.

    FD = |mu_1 - mu_2|^2 + tr(S_1) + tr(S_2) - 2 tr((S_1^{1/2} S_2 S_1^{1/2})^{1/2})

Route: factor ``S_1 = F F^T`` (symmetric eigendecomposition, ``F = V diag(sqrt(max(w, 0)))``; or
Cholesky when asked and ``S_1`` is positive definite), form the symmetric PSD matrix
``M = F^T S_2 F`` (same non-zero eigenvalues as ``S_1 S_2``) and take ``sum(sqrt(eig(M)))``.
No ``scipy.linalg.sqrtm`` (complex output, singular failures, a changed return value in SciPy
1.17+). Tiny negative eigenvalues from round-off are clipped to zero; how many, and their total
magnitude, are returned in :class:`FrechetResult` and logged when not negligible.

Units: squared embedding units (for ``logmel``: dB^2). Lower is better; 0 means identical
Gaussians. Arithmetic is float64 throughout. All functions are pure.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)


class InsufficientDataError(ValueError):
    """Too few embedding frames for the statistic; the message says how many are needed."""


@dataclass(frozen=True)
class GaussianStats:
    """Mean and (unbiased, ddof=1) covariance of ``n`` embedding frames."""

    mu: np.ndarray  # (D,) float64
    cov: np.ndarray  # (D, D) float64
    n: int  # frames the statistics were computed from (0 when unknown, e.g. published stats)

    @property
    def dim(self) -> int:
        return int(self.mu.shape[0])


@dataclass(frozen=True)
class FrechetResult:
    """A Frechet distance and how it was computed."""

    value: float  # the distance (squared embedding units)
    mean_term: float  # |mu_1 - mu_2|^2
    trace_term: float  # tr(S_1) + tr(S_2) - 2 tr(sqrt(...))
    factor: str  # "eigh" or "cholesky": how S_1 was factored
    clipped_eigenvalues: int  # negative eigenvalues clipped to 0 (in S_1 and in M)
    clipped_magnitude: float  # sum of |clipped eigenvalues|


def check_embeddings(x: np.ndarray, what: str) -> np.ndarray:
    """(N, D) finite float array -> float64; a clear error otherwise."""
    arr = np.asarray(x)
    if arr.ndim != 2:
        raise ValueError(f"{what}: embeddings must be 2-D (frames, features), got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise InsufficientDataError(f"{what}: no embedding frames (shape {arr.shape})")
    arr = arr.astype(np.float64, copy=False)
    if not np.isfinite(arr).all():
        raise ValueError(f"{what}: embeddings contain NaN or inf; re-embed the audio (it may be corrupt)")
    return arr


def require_frames(n: int, dim: int, what: str, *, full_rank: bool = True, clips: int | None = None) -> None:
    """Raise :class:`InsufficientDataError` unless ``n`` frames can estimate a ``dim``-d covariance.

    A covariance needs 2 frames to exist and ``dim + 1`` to be full rank (the default
    requirement: with fewer, the Frechet distance compares rank-deficient Gaussians and is
    dominated by the missing directions).
    """
    need = dim + 1 if full_rank else 2
    if n >= need:
        return
    per_clip = ""
    if clips:
        frames_per_clip = n / clips
        more = int(np.ceil((need - n) / max(frames_per_clip, 1e-9)))
        per_clip = (
            f" from {clips} clip(s) (~{frames_per_clip:.1f} frames each): add at least {more} more clip(s) "
            f"of this length"
        )
    kind = f"a full-rank {dim}x{dim} covariance" if full_rank else "a covariance"
    raise InsufficientDataError(
        f"{what}: {n} embedding frames{per_clip}; {kind} needs at least {need} frames"
    )


def gaussian_stats(x: np.ndarray, *, what: str = "embeddings", full_rank: bool = True,
                   clips: int | None = None) -> GaussianStats:
    """Mean and unbiased covariance of (N, D) embeddings (float64)."""
    arr = check_embeddings(x, what)
    require_frames(arr.shape[0], arr.shape[1], what, full_rank=full_rank, clips=clips)
    mu = arr.mean(axis=0)
    centred = arr - mu
    cov = centred.T @ centred / (arr.shape[0] - 1)
    return GaussianStats(mu=mu, cov=(cov + cov.T) / 2.0, n=int(arr.shape[0]))


def _check_stats(mu: np.ndarray, cov: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    mu = np.atleast_1d(np.asarray(mu, dtype=np.float64))
    cov = np.atleast_2d(np.asarray(cov, dtype=np.float64))
    if mu.ndim != 1 or cov.shape != (mu.shape[0], mu.shape[0]):
        raise ValueError(f"{what}: mean shape {mu.shape} and covariance shape {cov.shape} do not match")
    if not (np.isfinite(mu).all() and np.isfinite(cov).all()):
        raise ValueError(f"{what}: statistics contain NaN or inf")
    asym = np.max(np.abs(cov - cov.T)) if cov.size else 0.0
    scale = max(np.max(np.abs(cov)), 1e-300)
    if asym > 1e-6 * scale:
        raise ValueError(f"{what}: covariance is not symmetric (max |S - S^T| = {asym:.3g})")
    return mu, (cov + cov.T) / 2.0


def psd_factor(cov: np.ndarray, method: str = "eigh") -> tuple[np.ndarray, str, int, float]:
    """``F`` with ``cov = F F^T`` -> (F, method used, clipped count, clipped magnitude).

    ``method="eigh"``: symmetric eigendecomposition, negative eigenvalues clipped to 0.
    ``method="cholesky"``: Cholesky when positive definite, else falls back to ``eigh``.
    """
    if method == "cholesky":
        try:
            return np.linalg.cholesky(cov), "cholesky", 0, 0.0
        except np.linalg.LinAlgError:
            method = "eigh"
    if method != "eigh":
        raise ValueError(f"factor method must be 'eigh' or 'cholesky', got {method!r}")
    w, v = np.linalg.eigh(cov)
    neg = w < 0
    clipped = int(neg.sum())
    magnitude = float(-w[neg].sum())
    return v * np.sqrt(np.maximum(w, 0.0))[None, :], "eigh", clipped, magnitude


def trace_sqrt_product(factor1: np.ndarray, cov2: np.ndarray) -> tuple[float, int, float]:
    """tr((S_1^{1/2} S_2 S_1^{1/2})^{1/2}) from ``S_1 = F F^T`` -> (value, clipped, magnitude)."""
    m = factor1.T @ cov2 @ factor1  # symmetric up to round-off: eigvalsh reads its lower triangle only
    w = np.linalg.eigvalsh(m)
    neg = w < 0
    return float(np.sqrt(np.maximum(w, 0.0)).sum()), int(neg.sum()), float(-w[neg].sum())


def frechet_distance(
    mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray, *, factor: str = "eigh"
) -> FrechetResult:
    """Frechet distance between N(mu1, cov1) and N(mu2, cov2) (see module docstring).

    Symmetric in its arguments up to round-off. ``factor`` picks how ``cov1`` is factored
    ("eigh", the default, or "cholesky" with an eigh fallback: faster, used by the bootstrap).
    """
    mu1, cov1 = _check_stats(mu1, cov1, "first Gaussian")
    mu2, cov2 = _check_stats(mu2, cov2, "second Gaussian")
    if mu1.shape != mu2.shape:
        raise ValueError(
            f"embedding dimensions differ ({mu1.shape[0]} vs {mu2.shape[0]}): the two sets come from "
            f"different embedders"
        )
    f1, used, c1, m1 = psd_factor(cov1, factor)
    tr_sqrt, c2, m2 = trace_sqrt_product(f1, cov2)
    diff = mu1 - mu2
    mean_term = float(diff @ diff)
    trace_term = float(np.trace(cov1) + np.trace(cov2) - 2.0 * tr_sqrt)
    clipped, magnitude = c1 + c2, m1 + m2
    scale = float(np.trace(cov1) + np.trace(cov2))
    if magnitude > 1e-9 * max(scale, 1e-300):
        log.warning(
            "Frechet distance: clipped %d negative eigenvalue(s) with total magnitude %.3g (trace scale %.3g); "
            "the covariances are (near-)singular", clipped, magnitude, scale,
        )
    return FrechetResult(
        value=mean_term + trace_term,
        mean_term=mean_term,
        trace_term=trace_term,
        factor=used,
        clipped_eigenvalues=clipped,
        clipped_magnitude=magnitude,
    )


def frechet_distance_stats(a: GaussianStats, b: GaussianStats, *, factor: str = "eigh") -> FrechetResult:
    """:func:`frechet_distance` on two :class:`GaussianStats`."""
    return frechet_distance(a.mu, a.cov, b.mu, b.cov, factor=factor)


# ----------------------------------------------------------------------------- FAD
