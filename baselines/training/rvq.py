"""Residual k-means: fit the LMM's RVQ codebooks on codec latents of the training split.

Level ``l`` runs Lloyd's k-means on the residuals left by levels ``0..l-1`` (greedy residual
quantisation, the same nearest-neighbour rule :class:`baselines.codec.ResidualVQ` applies).
Initial centres are distinct frames drawn with a seeded generator; an emptied cluster is
re-seeded with the frame worst served by its centre (deterministic). Codebooks are rounded to
``storage_dtype`` (float16 in the committed checkpoints) BEFORE the next level's residuals are
computed, so the fitted residual chain is exactly the one the stored codebooks produce.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import torch

from bench.core.hashing import stable_hash

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RVQFit:
    codebooks: torch.Tensor  # (levels, size, dim) float32 (values representable in storage_dtype)
    residual_energy: tuple[float, ...]  # mean squared residual after each level
    data_energy: float  # mean squared latent (before level 0)
    frames: int  # frames the codebooks were fitted on

    def snr_db(self) -> tuple[float, ...]:
        """Reconstruction SNR (dB) after 1, 2, ... levels."""
        return tuple(10.0 * math.log10(self.data_energy / max(e, 1e-30)) for e in self.residual_energy)


def _assign(x: torch.Tensor, centres: torch.Tensor, chunk: int = 16384) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest centre (index, squared distance) of each row of x (N, D), in chunks."""
    idx, dist = [], []
    c2 = (centres * centres).sum(-1)  # (K,)
    for start in range(0, x.shape[0], chunk):
        rows = x[start:start + chunk]
        d = (rows * rows).sum(-1, keepdim=True) - 2.0 * rows @ centres.T + c2[None, :]  # (n, K)
        best, arg = d.min(dim=-1)
        idx.append(arg)
        dist.append(best.clamp_min(0.0))
    return torch.cat(idx), torch.cat(dist)


def kmeans(x: torch.Tensor, k: int, iters: int, generator: torch.Generator) -> torch.Tensor:
    """Lloyd's k-means on (N, D) float64 -> (k, D) centres (see module docstring)."""
    n = x.shape[0]
    if n < k:
        raise ValueError(f"k-means needs at least k={k} frames, got {n}: build more clips")
    centres = x[torch.randperm(n, generator=generator)[:k]].clone()
    for _ in range(iters):
        idx, dist = _assign(x, centres)
        sums = torch.zeros_like(centres).index_add_(0, idx, x)
        counts = torch.bincount(idx, minlength=k).to(x.dtype)
        empty = counts == 0
        centres = torch.where(empty[:, None], centres, sums / counts.clamp_min(1.0)[:, None])
        if bool(empty.any()):
            worst = torch.argsort(dist, descending=True)[: int(empty.sum())]
            centres[empty] = x[worst]
    return centres


def fit_rvq(latents: torch.Tensor, levels: int, size: int, *, iters: int = 15, seed: int = 0,
            max_frames: int = 100_000, storage_dtype: torch.dtype = torch.float16) -> RVQFit:
    """Fit ``levels`` codebooks of ``size`` codes on latent frames (N, D)."""
    gen = torch.Generator().manual_seed(stable_hash("rvq", int(seed)) % (2**63))
    x = latents.reshape(-1, latents.shape[-1]).to(torch.float64)
    if x.shape[0] > max_frames:
        x = x[torch.randperm(x.shape[0], generator=gen)[:max_frames]]
    data_energy = float((x * x).mean())
    residual = x.clone()
    books, energies = [], []
    for level in range(levels):
        centres = kmeans(residual, size, iters, gen)
        centres = centres.to(storage_dtype).to(torch.float64)  # what will be stored
        idx, _ = _assign(residual, centres)
        residual = residual - centres[idx]
        energies.append(float((residual * residual).mean()))
        books.append(centres.to(torch.float32))
        log.info("rvq level %d: residual energy %.4g (SNR %.2f dB)", level, energies[-1],
                 10 * math.log10(data_energy / max(energies[-1], 1e-30)))
    return RVQFit(torch.stack(books), tuple(energies), data_energy, int(x.shape[0]))


__all__ = ["RVQFit", "fit_rvq", "kmeans"]
