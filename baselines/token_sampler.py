"""Token sampling of the discrete autoregressive regimes (the LMM, MusicGen): temperature, top-k,
classifier-free guidance over a doubled batch, and a draw that never reads a device value on the
host (the exponential race, which is what ``torch.multinomial`` does for one sample, minus its
host-side validity checks)."""

from __future__ import annotations

import torch


def sample_tokens(logits: torch.Tensor, temperature: float, top_k: int, generator: torch.Generator) -> torch.Tensor:
    """Sample one token per row of ``logits`` (R, V) -> (R,) int64, without a host sync.

    ``top_k == 0`` (or >= V) keeps every token. Equivalent to
    ``torch.multinomial(softmax(top_k(logits / temperature)), 1, generator=generator)`` (the same
    random draws give the same tokens), but with no ``.item()`` validity checks.
    """
    return race_sample(token_probs(logits, temperature, top_k), generator)


def token_probs(logits: torch.Tensor, temperature: float, top_k: int) -> torch.Tensor:
    """The sampled-from distribution of each row of ``logits`` (R, V) -> (R, V) float32:
    softmax of the temperature-scaled logits, restricted to the top ``k`` (0: every token)."""
    scaled = logits.float() / temperature  # (R, V)
    vocab = scaled.shape[-1]
    if 0 < top_k < vocab:
        kth = torch.topk(scaled, top_k, dim=-1).values[..., -1:]  # (R, 1)
        scaled = scaled.masked_fill(scaled < kth, float("-inf"))
    return torch.softmax(scaled, dim=-1)  # (R, V)


def race_sample(probs: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One draw per row of ``probs`` (R, V) -> (R,) int64 by the exponential race
    ``argmax(p / e)``, ``e ~ Exp(1)`` from ``generator`` (on the device: no host sync)."""
    return race_argmax(probs, race_noise(probs.shape[0], probs.shape[-1], generator, probs.device))


def race_noise(rows: int, vocab: int, generator: torch.Generator, device: torch.device | str) -> torch.Tensor:
    """The race's random numbers for ``rows`` draws over ``vocab`` tokens: (rows, V) float32
    ``Exp(1)`` from ``generator``, clamped away from 0. Drawn in one call for several draws (the
    LMM's ``Q`` levels of a frame); on the CPU that equals ``rows`` calls of one row each."""
    race = torch.empty(rows, vocab, device=device, dtype=torch.float32).exponential_(1.0, generator=generator)
    return race.clamp_min(torch.finfo(race.dtype).tiny)


def race_argmax(probs: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """The race's winners (R,) int64: ``argmax(p / e)`` per row of ``probs`` and ``noise`` (R, V)
    from :func:`race_noise` (no random state: a compiled graph may run it)."""
    return (probs / noise).argmax(dim=-1)


def guide(logits: torch.Tensor, scale: float) -> torch.Tensor:
    """Classifier-free guidance over a doubled batch: rows [cond | uncond] (2R, V) -> (R, V),
    ``u + scale * (c - u)``."""
    cond, uncond = logits.chunk(2, dim=0)
    return uncond + scale * (cond - uncond)
