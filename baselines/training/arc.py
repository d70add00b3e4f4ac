"""ARC-Forcing post-training of the block-causal LMDM (``python -m baselines.training arc``).

What it computes (``../shared/reference/method.md``, "ARC-Forcing"), at the embedded scale:

- **Rollout** (:func:`rollout`): from real context latents (``C`` frames, with random context
  dropout: the first ``k`` chunks silenced as at a stream's start, probability
  ``ArcSettings.context_dropout``), the generator streams ``n`` consecutive blocks
  (``n ~ U[min_blocks, max_blocks]``) with the regime's own passes and its live ring KV cache
  (:class:`baselines.lmdm_causal.BlockCausalPasses`: bootstrap, fused first step, cached steps).
  Each block runs a random number ``s ~ U[1, T-1]`` of ping-pong steps of the streaming schedule
  (``x0 = x - t v``, re-noise to the next ``t`` with fresh noise) and ends on its ``x0`` estimate
  at step ``s``. Only that last step carries gradient; the block's output enters the next block's
  context and the ring detached (no gradient through the cache).
- **Discriminator** (:class:`Discriminator`): a copy of the pretrained base DiT (the ``outpaint``
  checkpoint) cut after its first ``depth // 2`` layers, plus a small ConvNeXt-style head
  (depthwise temporal convolution, gated MLP, mean pool, linear score). It reads the re-noised
  window ``[context | rollout]`` (noise level ``t = sigmoid(-logsnr)``, logsnr uniform in
  ``disc_logsnr``) with the prompt's cross-attention, and its head pools only the rows of the
  scored rollout blocks.
- **Losses** (relativistic, paired per example): discriminator
  ``softplus(-(D(real) - D(fake))) + w softplus(-(D(real) - D(real, other prompt)))`` (the
  contrastive term: real audio under a mismatched prompt is a negative, ``w = 2``); generator
  ``softplus(D(real) - D(fake))``. No teacher, no reward model.

Adaptations to the embedded data set (its clips are 8 s, so a real ``[context | continuation]``
window holds ``C`` + 4 blocks at the ``cpu`` stream): the discriminator scores the LAST
``scored_blocks = 4`` blocks of each rollout, after the ``C`` frames before them, which are the
real context for a 4-block rollout and the model's own earlier blocks for longer ones (so late,
self-conditioned blocks are what it judges). Earlier blocks only set the model on its own output
(they run without gradient). The paper's AdamW lr 1e-6 is for a 341M model; the embedded model
trains at the rate of :data:`baselines.training.run.DEFAULT_LR` (documented in
docs/data_and_training.md).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from baselines.attention import KVCache, rope_cos_sin
from baselines.dit import DiT
from baselines.lmdm_causal import BlockCausalGenerator
from baselines.training.data import LatentBank


@dataclass(frozen=True)
class ArcSettings:
    """What a rollout and the discriminator look like (recorded in the checkpoint's config)."""

    min_blocks: int = 4
    max_blocks: int = 14
    scored_blocks: int = 4  # the last rollout blocks the discriminator scores
    context_dropout: float = 0.15  # probability that a rollout's context starts with k silent chunks
    contrastive_weight: float = 2.0
    disc_layers: int = 0  # base DiT layers kept in the discriminator (0 = depth // 2)
    disc_lr: float = 1e-4
    disc_logsnr: tuple[float, float] = (-1.0, 4.0)  # re-noising of the discriminator's input
    disc_update_probability: float = 1.0  # < 1: the discriminator skips a seeded share of the steps

    def __post_init__(self) -> None:
        if not 1 <= self.scored_blocks <= self.min_blocks <= self.max_blocks:
            raise ValueError(f"need 1 <= scored_blocks ({self.scored_blocks}) <= min_blocks ({self.min_blocks}) "
                             f"<= max_blocks ({self.max_blocks})")
        if not 0.0 <= self.context_dropout <= 1.0:
            raise ValueError(f"context_dropout must be in [0, 1], got {self.context_dropout}")
        if not 0.0 < self.disc_update_probability <= 1.0:
            raise ValueError(f"disc_update_probability must be in (0, 1], got {self.disc_update_probability}")


# ------------------------------------------------------------------------------------ rollout
@dataclass
class PassRecord:
    """One backbone pass of a rollout (for tests): block, step, its input, time and output."""

    block: int
    step: int
    x: torch.Tensor  # (N, B, D) noisy input
    t: float
    output: torch.Tensor  # (N, B, D) model output (detached copy)
    output_requires_grad: bool
    ring_requires_grad: bool


def _detached(cache: KVCache) -> KVCache:
    return KVCache(cache.keys.detach(), cache.values.detach())


def rollout(gen: BlockCausalGenerator, context: torch.Tensor, cond: torch.Tensor, exit_steps: Sequence[int],
            graded_from: int, rng: torch.Generator, record: list[PassRecord] | None = None) -> list[torch.Tensor]:
    """Stream ``len(exit_steps)`` blocks from ``context`` (N, C, D) under ``cond`` (N, Nc, cond_dim).

    Block ``k`` runs ``exit_steps[k]`` ping-pong steps of ``gen.ts`` with the live ring cache and
    returns its ``x0`` estimate at the last of them, (N, B, D); that step carries gradient when
    ``k >= graded_from`` (every other pass runs without). Noise comes from ``rng`` only.
    """
    passes, ts, b = gen.functional_passes, gen.ts, gen.block_frames  # gradients flow through the ring
    n, dim = context.shape[0], context.shape[-1]
    if any(not 1 <= s <= gen.steps for s in exit_steps):
        raise ValueError(f"exit steps must be in 1..{gen.steps}, got {list(exit_steps)}")
    cross = gen.dit.cross_cache(cond)
    ctx, ring = context, None
    chunks: list[torch.Tensor] = []
    for k, steps in enumerate(exit_steps):
        tables = gen.rope_tables(k)
        x = torch.randn(n, b, dim, generator=rng)
        x0 = x
        for i in range(steps):
            t = ts[i]
            time = torch.full((n,), t)
            with torch.set_grad_enabled(k >= graded_from and i == steps - 1 and torch.is_grad_enabled()):
                if i == 0 and ring is None:
                    out, ring = passes.bootstrap(x, time, ctx, cond, cross, tables["boot"])
                elif i == 0:
                    out, ring = passes.fused(x, time, ctx[:, -b:], cond, cross, ring, tables["fused"])
                else:
                    out = passes.step(x, time, cond, cross, ring, tables["step"])
                x0 = x - t * out
            if i == 0:
                ring = _detached(ring)
            if record is not None:
                record.append(PassRecord(k, i, x.detach().clone(), t, out.detach().clone(), out.requires_grad,
                                         ring.keys.requires_grad))
            if i < steps - 1:
                t_next = ts[i + 1]
                eps = torch.randn(x.shape, generator=rng)
                x = (1.0 - t_next) * x0.detach() + t_next * eps
        chunks.append(x0)
        ctx = torch.cat([ctx[:, b:], x0.detach()], dim=1)
    return chunks


# ------------------------------------------------------------------------------ discriminator
class ConvNeXtHead(nn.Module):
    """(N, R, d) hidden rows -> (N,) score: depthwise temporal conv, LayerNorm, MLP (residual),
    mean over the rows, LayerNorm, linear."""

    def __init__(self, width: int, kernel: int = 7) -> None:
        super().__init__()
        self.conv = nn.Conv1d(width, width, kernel, padding=kernel // 2, groups=width)
        self.norm = nn.LayerNorm(width)
        self.up = nn.Linear(width, 2 * width)
        self.down = nn.Linear(2 * width, width)
        self.out_norm = nn.LayerNorm(width)
        self.score = nn.Linear(width, 1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        y = self.conv(h.transpose(1, 2)).transpose(1, 2)  # (N, R, d)
        h = h + self.down(F.gelu(self.up(self.norm(y))))
        return self.score(self.out_norm(h.mean(dim=1)))[:, 0]


class Discriminator(nn.Module):
    """The base DiT's first ``layers`` layers (a trainable copy) + :class:`ConvNeXtHead`."""

    def __init__(self, base: DiT, layers: int) -> None:
        super().__init__()
        if not 1 <= layers <= len(base.blocks):
            raise ValueError(f"the discriminator keeps 1..{len(base.blocks)} of the base's layers, got {layers}")
        trunk = copy.deepcopy(base)
        trunk.blocks = nn.ModuleList(list(trunk.blocks)[:layers])
        del trunk.final_norm, trunk.out_proj  # the cut trunk has no output head
        self.trunk = trunk
        self.head = ConvNeXtHead(base.width)
        self.layers = layers

    def features(self, noisy: torch.Tensor, t: torch.Tensor, cond: torch.Tensor, cos: torch.Tensor,
                 sin: torch.Tensor) -> torch.Tensor:
        """noisy (N, S, D) re-noised window, t (N,), cond (N, Nc, cond_dim), RoPE (S+1, Dh) -> (N, S+1, d)."""
        trunk = self.trunk
        n, s, dim = noisy.shape
        zeros_mask = noisy.new_zeros(n, s, 1)
        h = torch.cat([trunk.embed(noisy, zeros_mask, torch.zeros_like(noisy)), trunk.time_token(t, cond[:, -1])], dim=1)
        h, _ = trunk.run(h, cos, sin, None, trunk.cross_cache(cond))
        return h

    def score(self, features: torch.Tensor, scored_from: int, scored_to: int) -> torch.Tensor:
        """(N,) scores from the feature rows ``scored_from .. scored_to - 1`` only."""
        return self.head(features[:, scored_from:scored_to])

    def forward(self, noisy: torch.Tensor, t: torch.Tensor, cond: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                scored_from: int) -> torch.Tensor:
        return self.score(self.features(noisy, t, cond, cos, sin), scored_from, noisy.shape[1])


# ------------------------------------------------------------------------------------- task
class ArcTask:
    """Generator loss for the training loop; the discriminator is updated inside :meth:`loss`."""

    def __init__(self, gen: BlockCausalGenerator, disc: Discriminator, bank: LatentBank, settings: ArcSettings,
                 batch: int) -> None:
        if batch < 2:
            raise ValueError(f"ARC-Forcing needs batch >= 2 (the contrastive term pairs clips), got {batch}")
        self.gen, self.disc, self.bank, self.settings, self.batch = gen, disc, bank, settings, batch
        c, b = gen.context_frames, gen.block_frames
        self.window = c + settings.scored_blocks * b  # frames the discriminator reads
        self.scored_from = c
        cos, sin = rope_cos_sin(torch.arange(self.window + 1, dtype=torch.float64), gen.head_dim)
        self.cos, self.sin = cos, sin  # (S+1, Dh)
        self.disc_optimizer = torch.optim.AdamW(disc.parameters(), lr=settings.disc_lr, betas=(0.0, 0.99),
                                                weight_decay=0.0)
        self.last_values = [float("nan")] * 3

    # the loop logs these beside the generator loss
    extra_columns = ("disc_loss", "real_minus_fake", "real_minus_mismatched")

    def extra_values(self) -> list[float]:
        return list(self.last_values)

    def _context(self, real: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
        """The rollouts' contexts (N, C, D): the real windows' first C frames, some silenced."""
        c, b, n = self.gen.context_frames, self.gen.block_frames, real.shape[0]
        context = real[:, :c].clone()
        drop = torch.rand(n, generator=rng) < self.settings.context_dropout
        k = torch.randint(1, c // b + 1, (n,), generator=rng)
        silent = torch.arange(c)[None, :] < torch.where(drop, k * b, torch.zeros_like(k))[:, None]  # (N, C)
        return context * (~silent)[..., None]

    def _renoise(self, x: torch.Tensor, t: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
        eps = torch.randn(x.shape, generator=rng)
        return (1.0 - t)[:, None, None] * x + t[:, None, None] * eps

    def draw(self, rng: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[int]]:
        """(real windows (N, S, D), cond, contexts (N, C, D), exit steps per block) of one step."""
        s = self.settings
        data = self.bank.sample(self.batch, self.window, self.gen.context_frames, self.gen.block_frames, 0.0, rng)
        blocks = int(torch.randint(s.min_blocks, s.max_blocks + 1, (1,), generator=rng))
        top = max(1, self.gen.steps - 1)
        exits = [int(v) for v in torch.randint(1, top + 1, (blocks,), generator=rng)]
        return data.x0, data.cond, self._context(data.x0, rng), exits

    def fake_windows(self, cond: torch.Tensor, context: torch.Tensor, exits: list[int],
                     rng: torch.Generator) -> torch.Tensor:
        """The last S frames of ``[context | rollout]`` (N, S, D); the scored blocks carry gradient."""
        chunks = rollout(self.gen, context, cond, exits, len(exits) - self.settings.scored_blocks, rng)
        return torch.cat([context, *chunks], dim=1)[:, -self.window:]

    def _scores(self, windows: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.disc(windows, t, cond, self.cos, self.sin, self.scored_from)

    def _noise_level(self, n: int, rng: torch.Generator) -> torch.Tensor:
        lo, hi = self.settings.disc_logsnr
        return torch.sigmoid(-(lo + (hi - lo) * torch.rand(n, generator=rng)))

    def disc_loss(self, real: torch.Tensor, fake: torch.Tensor, cond: torch.Tensor, rng: torch.Generator
                  ) -> tuple[torch.Tensor, float, float]:
        """Relativistic + contrastive discriminator loss, and the mean margins (real - fake,
        real - mismatched prompt)."""
        t = self._noise_level(real.shape[0], rng)
        noisy_real = self._renoise(real, t, rng)
        d_real = self._scores(noisy_real, t, cond)
        d_fake = self._scores(self._renoise(fake.detach(), t, rng), t, cond)
        d_mismatched = self._scores(noisy_real, t, cond.roll(1, dims=0))
        loss = F.softplus(-(d_real - d_fake)).mean() \
            + self.settings.contrastive_weight * F.softplus(-(d_real - d_mismatched)).mean()
        return loss, float((d_real - d_fake).mean().detach()), float((d_real - d_mismatched).mean().detach())

    def generator_loss(self, real: torch.Tensor, fake: torch.Tensor, cond: torch.Tensor,
                       rng: torch.Generator) -> torch.Tensor:
        """``softplus(D(real) - D(fake))`` with the discriminator frozen; gradient reaches the
        generator through the fake windows' scored blocks."""
        self.disc.requires_grad_(False)
        t = self._noise_level(real.shape[0], rng)
        with torch.no_grad():
            d_real = self._scores(self._renoise(real, t, rng), t, cond)
        d_fake = self._scores(self._renoise(fake, t, rng), t, cond)
        return F.softplus(d_real - d_fake).mean()

    def loss(self, rng: torch.Generator) -> torch.Tensor:
        """One ARC step: a rollout, one discriminator update, then the generator loss (returned)."""
        real, cond, context, exits = self.draw(rng)
        p_update = self.settings.disc_update_probability  # drawn only when < 1: the committed run's draws stay
        update_disc = p_update >= 1.0 or bool(torch.rand(1, generator=rng) < p_update)
        fake = self.fake_windows(cond, context, exits, rng)
        self.disc.requires_grad_(True)
        d_loss, real_fake, real_mismatched = self.disc_loss(real, fake, cond, rng)
        if update_disc:
            self.disc_optimizer.zero_grad(set_to_none=True)
            d_loss.backward()
            torch.nn.utils.clip_grad_norm_(self.disc.parameters(), 1.0)
            self.disc_optimizer.step()
            self.disc_optimizer.zero_grad(set_to_none=True)
        self.last_values = [float(d_loss.detach()), real_fake, real_mismatched]
        return self.generator_loss(real, fake, cond, rng)


__all__ = ["ArcSettings", "ArcTask", "ConvNeXtHead", "Discriminator", "PassRecord", "rollout"]
