"""Uncached reference streams for the diffusion regimes, written from the regime definitions.

Each reference recomputes every denoising step from scratch with the backbone's plain
``DiT.forward`` over a whole sequence and a mask built here from its definition (not from
``baselines.attention``), with the same per-block random generators as the regimes. Tests
compare them with the cached generators' per-step velocities and audio.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from baselines.attention import rope_cos_sin
from baselines.conditioning import prompt_tokens
from baselines.samplers import cfg_combine, get_sampler
from bench.core.contract import block_generator


def record_velocities(gen) -> list[torch.Tensor]:  # noqa: ANN001
    """Every guided velocity ``gen``'s sampler computes, appended to the list (through the
    generator's public ``on_sampler_step`` hook)."""
    calls: list[torch.Tensor] = []
    gen.on_sampler_step = lambda i, t, x, v: calls.append(v.clone())
    return calls


def _cond(gen, prompt: str) -> torch.Tensor:  # noqa: ANN001
    cfg, dim = gen.config, gen.dit.cond_dim
    rows = [prompt_tokens(prompt, cfg.cond_tokens, dim)]
    if gen.settings.cfg:
        rows.append(prompt_tokens("", cfg.cond_tokens, dim))
    return torch.stack(rows)  # (N, Nc, cond_dim)


def _guide(gen, v: torch.Tensor) -> torch.Tensor:  # noqa: ANN001
    return cfg_combine(v[0], v[1], gen.config.cfg_scale) if gen.settings.cfg else v[0]


def chunk_mask(query_chunks: Sequence[int], key_chunks: Sequence[int], window: int) -> torch.Tensor:
    """Chunk q sees chunk k iff q - window + 1 <= k <= q (written out, element by element)."""
    return torch.tensor([[q - window + 1 <= k <= q for k in key_chunks] for q in query_chunks])


def reference_stream(
    gen,  # noqa: ANN001 - a DiffusionGenerator (its dit, codec and settings are reused)
    regime: str,
    prompts: Sequence[str],
    seed: int,
    context: torch.Tensor | None = None,
) -> tuple[list[torch.Tensor], list[np.ndarray]]:
    """Generate ``len(prompts)`` blocks from scratch. Returns (velocities of every step, audio)."""
    c, b, w = gen.context_frames, gen.block_frames, gen.windows
    dim, dh, n = gen.latent_dim, gen.head_dim, (2 if gen.settings.cfg else 1)
    sampler, ts, dit = get_sampler(gen.settings.sampler), gen.ts, gen.dit
    history = [(context if context is not None else torch.zeros(c, dim))[i * b:(i + 1) * b] for i in range(w)]
    velocities: list[torch.Tensor] = []
    audio: list[np.ndarray] = []
    for block, prompt in enumerate(prompts):
        if regime == "causal" and block > 0 and prompt != prompts[block - 1]:
            history = history[-w:]  # a prompt change restarts the stream from the current window
        clean = torch.cat(history if regime == "causal" else history[-w:])  # (H, D)
        rows = clean.shape[0]
        cond = _cond(gen, prompt)
        if getattr(dit, "token_first", False):
            # stable-audio-tools: the token is prepended at position 0 of the window, whose rows
            # follow at 1, 2, ...; here the window is the last W chunks (+ target) of the history
            positions = torch.cat([torch.arange(1, rows + b + 1), torch.tensor([rows - w * b])]).double()
            cos, sin = dit.rope(positions, torch.float32)
        else:
            positions = torch.arange(rows + b + 1, dtype=torch.float64)
            cos, sin = rope_cos_sin(positions, dh)
        ids = [i // b for i in range(rows)] + [rows // b] * (b + 1)
        if regime == "outpaint":
            mask = None
        elif regime == "encdec":
            mask = torch.tensor([[q >= rows or k < rows for k in range(rows + b + 1)] for q in range(rows + b + 1)])
        else:
            mask = chunk_mask(ids, ids, w)
        renoise = block_generator(seed, block, "renoise", "cpu")
        in_mask = torch.cat([torch.ones(rows, 1), torch.zeros(b, 1)]).expand(n, -1, -1)
        masked = torch.cat([clean, torch.zeros(b, dim)]).expand(n, -1, -1)

        def velocity(x, t, i):  # noqa: ANN001
            if regime == "outpaint":
                eps = torch.randn(clean.shape, generator=renoise)
                ctx_in = (1 - t) * clean + t * eps
            else:
                ctx_in = torch.zeros_like(clean)
            noisy = torch.cat([ctx_in, x]).expand(n, -1, -1)
            v = dit(noisy, in_mask, masked, torch.full((n,), t), cond, cos, sin, mask)[:, rows:]
            v = _guide(gen, v)
            velocities.append(v)
            return v

        noise = torch.randn(b, dim, generator=block_generator(seed, block, "noise", "cpu"))
        with torch.no_grad():
            x0 = sampler(velocity, noise, ts, block_generator(seed, block, "sampler", "cpu"))
        audio.append(gen.codec.decode(x0, previous=clean[-1]).numpy())
        history.append(x0)
    return velocities, audio


def max_abs_diff(a: Sequence, b: Sequence) -> float:
    assert len(a) == len(b), (len(a), len(b))
    return max(float(np.max(np.abs(np.asarray(x) - np.asarray(y)))) for x, y in zip(a, b))
