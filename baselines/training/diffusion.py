"""Rectified-flow training of the DiT: the bidirectional base and the two LMDM fine-tunes.

Every task trains on windows ``[C context | B target]`` of clean latents ``x0`` with the timestep
token appended (RoPE positions ``0 .. C+B``, as every regime's streaming pass uses them). With
``x_t = (1 - t) x0 + t eps`` the model predicts the velocity ``v = eps - x0`` (see
``baselines.samplers``); the loss is the mean squared error over the rows the regime generates.
``t = sigmoid(-logsnr)`` with logsnr uniform in [-7, 3], which covers the ping-pong sampler's
schedule (logsnr in [-6, 2]).

Loss weighting. Since ``v - v_hat = (x0_hat - x0) / t``, the plain velocity MSE weights errors of
the implied clean estimate by ``1 / t^2``: low-noise examples dominate and the high-noise ones,
where the continuation must come from the CONTEXT (the first sampler steps), barely train (a
400-step plain-MSE base predicted the target worse than zero at t = 0.9). Each example is
weighted by ``t^2 / (t^2 + T_CAP^2)``, i.e. a clean-estimate weight ``1 / (t^2 + T_CAP^2)``:
unchanged for large t, capped at ``1 / T_CAP^2`` for small t (the "min-SNR" idea).

Tasks (how the window enters the model; method.md):

- ``base`` (the bidirectional model the ``outpaint`` regime runs): the noisy input covers every
  row (known rows carry a noised copy of the clean latents, as outpainting re-noises its
  context), the known rows also enter through ``mask_embed([1, x0])``; full attention. Known rows
  are drawn per example: the streaming context prefix (55 %), a random-length prefix (15 %),
  nothing (10 %) or everything but a random span (20 %). The loss covers the unknown rows.
- ``encdec`` (LMDM enc-dec): the context router: the noisy input of context rows is zeroed, the
  clean context enters only through the mask embedding, and the attention mask is
  :func:`baselines.attention.encdec_mask` (context sees context; target and token see all).
- ``causal`` (LMDM block-causal): the same router inputs with the bootstrap block-causal mask
  (:func:`baselines.attention.block_causal_mask` over :func:`window_chunk_ids`).

The fine-tunes start from the base's weights. Their windows are the streaming geometry only (C
context frames, B target frames), with silence augmentation of the context (data.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from baselines.attention import block_causal_mask, encdec_mask, rope_cos_sin, window_chunk_ids
from baselines.dit import DiT
from baselines.training.data import LatentBank

TASKS = ("base", "encdec", "causal")
TASK_REGIME = {"base": "outpaint", "encdec": "lmdm-encdec", "causal": "lmdm-causal"}
LOGSNR_RANGE = (-7.0, 3.0)
BASE_MASKS = (("prefix", 0.55), ("random_prefix", 0.15), ("none", 0.10), ("span", 0.20))
T_CAP = 0.2  # loss weight t^2 / (t^2 + T_CAP^2) (module docstring)


@dataclass(frozen=True)
class Geometry:
    """Window sizes in latent frames: C context + B target (and W = C / B chunks)."""

    context: int
    block: int

    @property
    def window(self) -> int:
        return self.context + self.block

    @property
    def chunks(self) -> int:
        return self.context // self.block


def sample_t(batch: int, gen: torch.Generator) -> torch.Tensor:
    """(N,) t = sigmoid(-logsnr), logsnr ~ U[LOGSNR_RANGE]."""
    lo, hi = LOGSNR_RANGE
    logsnr = lo + (hi - lo) * torch.rand(batch, generator=gen)
    return torch.sigmoid(-logsnr)


def base_known_rows(batch: int, geometry: Geometry, gen: torch.Generator) -> torch.Tensor:
    """(N, S) bool: rows the base model is given clean (see module docstring)."""
    s, c = geometry.window, geometry.context
    rows = torch.arange(s)[None, :]
    u = torch.rand(batch, generator=gen)
    edges = torch.cumsum(torch.tensor([p for _, p in BASE_MASKS]), 0)
    kind = torch.bucketize(u, edges, right=True).clamp_max(len(BASE_MASKS) - 1)  # (N,)
    prefix_len = torch.randint(1, s, (batch,), generator=gen)  # random prefix: 1 .. S-1 rows
    span_len = torch.randint(geometry.block // 2, 2 * geometry.block + 1, (batch,), generator=gen)
    span_start = (torch.rand(batch, generator=gen) * (s - span_len + 1).float()).long()
    known = torch.where((kind == 0)[:, None], rows < c, torch.zeros(batch, s, dtype=torch.bool))
    known = torch.where((kind == 1)[:, None], rows < prefix_len[:, None], known)
    in_span = (rows >= span_start[:, None]) & (rows < (span_start + span_len)[:, None])
    known = torch.where((kind == 3)[:, None], ~in_span, known)
    return known


def attention_mask(task: str, geometry: Geometry) -> torch.Tensor | None:
    """(S+1, S+1) bool mask of the task over [context | target | token], or None (full)."""
    c, b = geometry.context, geometry.block
    if task == "base":
        return None
    if task == "encdec":
        return encdec_mask(c, b + 1)
    if task == "causal":
        ids = window_chunk_ids(c, b)
        return block_causal_mask(ids, ids, geometry.chunks)
    raise ValueError(f"task must be one of {TASKS}, got {task!r}")


def window_velocity(task: str, model: DiT, noisy: torch.Tensor, known: torch.Tensor, clean: torch.Tensor,
                    t: torch.Tensor, cond: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                    attn_mask: torch.Tensor | None) -> torch.Tensor:
    """The model's velocity over a window, with the task's input routing.

    noisy (N, S, D) noisy latents of every row, known (N, S) bool rows given clean, clean
    (N, S, D) clean latents (read at known rows only), t (N,), cond (N, Nc, cond_dim), RoPE tables
    (S+1, Dh), attn_mask (S+1, S+1) or None -> (N, S, D). The fine-tunes (``encdec``,
    ``causal``) zero the noisy input of known rows (the context router); ``base`` keeps it.
    """
    mask = known[..., None].to(clean.dtype)  # (N, S, 1)
    if task != "base":
        noisy = noisy * (1.0 - mask)
    return model(noisy, mask, mask * clean, t, cond, cos, sin, attn_mask)


class DiffusionTask:
    """Loss of one task on batches drawn from a :class:`LatentBank`."""

    def __init__(self, task: str, model: DiT, bank: LatentBank, geometry: Geometry, batch: int,
                 p_silence: float = 0.15) -> None:
        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {task!r}")
        if geometry.context % geometry.block:
            raise ValueError(f"context ({geometry.context}) must be a whole number of blocks ({geometry.block})")
        self.task, self.model, self.bank, self.geometry, self.batch = task, model, bank, geometry, batch
        self.p_silence = p_silence
        positions = torch.arange(geometry.window + 1, dtype=torch.float64)
        self.cos, self.sin = rope_cos_sin(positions, model.head_dim)  # (S+1, Dh)
        self.mask = attention_mask(task, geometry)

    def loss(self, gen: torch.Generator) -> torch.Tensor:
        g, n = self.geometry, self.batch
        data = self.bank.sample(n, g.window, g.context, g.block, self.p_silence, gen)
        x0 = data.x0  # (N, S, D)
        t = sample_t(n, gen)  # (N,)
        eps = torch.randn(x0.shape, generator=gen)
        if self.task == "base":
            known = base_known_rows(n, g, gen)  # (N, S)
        else:
            known = (torch.arange(g.window) < g.context)[None, :].expand(n, -1)
        noisy = (1.0 - t)[:, None, None] * x0 + t[:, None, None] * eps
        v = window_velocity(self.task, self.model, noisy, known, x0, t, data.cond, self.cos, self.sin, self.mask)
        err = (v - (eps - x0)).pow(2).mean(dim=-1)  # (N, S)
        rows = (~known).to(err.dtype)  # the rows the regime generates
        weight = (t * t / (t * t + T_CAP * T_CAP))[:, None] * rows
        return (err * weight).sum() / rows.sum().clamp_min(1.0)


__all__ = [
    "T_CAP", "TASKS", "TASK_REGIME", "Geometry", "DiffusionTask", "sample_t", "base_known_rows", "attention_mask",
    "window_velocity",
]
