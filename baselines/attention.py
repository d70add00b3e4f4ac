"""Attention building blocks of the diffusion regimes: RoPE, dense boolean masks, KV caches.

Conventions (used by every caller):
- per-head tensors are ``(N, H, S, Dh)`` (batch, heads, tokens, head dim);
- a boolean mask is ``(Q, K)`` with True = "query may attend to key"; it broadcasts over batch and
  heads in ``torch.nn.functional.scaled_dot_product_attention``;
- a KV cache stacks all layers: ``(L, N, H, S, Dh)``, keys stored AFTER qk-norm and RoPE.

RoPE uses the rotate-half layout: dims ``[0, Dh/2)`` pair with ``[Dh/2, Dh)``. Rotations compose
(``R(a) R(b) = R(a + b)``), which is what makes re-rotating cached keys by ``-B`` exact up to
rounding: :func:`rerotate`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch

ROPE_BASE = 10000.0


# ----------------------------------------------------------------------------------------- RoPE
def rope_cos_sin(
    positions: torch.Tensor, head_dim: int, dtype: torch.dtype = torch.float32, base: float = ROPE_BASE
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin tables for ``positions`` (S,), each ``(S, head_dim)``.

    Angles are computed in float64 so large stream positions (offset mode) keep their precision;
    only the final tables are cast to ``dtype``. Positions may be negative.
    """
    if head_dim % 2:
        raise ValueError(f"RoPE needs an even head dim, got {head_dim}")
    half = head_dim // 2
    exponents = torch.arange(half, device=positions.device, dtype=torch.float64) / half
    return rope_tables(positions, torch.exp(-math.log(base) * exponents), dtype)  # inv_freq (Dh/2,)


def rope_tables(positions: torch.Tensor, inv_freq: torch.Tensor, dtype: torch.dtype = torch.float32
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin tables ``(S, 2 len(inv_freq))`` for ``positions`` (S,) and given frequencies (a
    checkpoint's own, or :func:`rope_cos_sin`'s); angles in float64, tables cast to ``dtype``."""
    angles = positions.to(torch.float64)[:, None] * inv_freq.to(positions.device, torch.float64)[None, :]
    angles = torch.cat([angles, angles], dim=-1)  # rotate-half layout
    return angles.cos().to(dtype), angles.sin().to(dtype)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    first, second = x.chunk(2, dim=-1)
    return torch.cat([-second, first], dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate ``x`` (..., S, Dh) by the angles of ``cos``/``sin`` ((S, R) or (1, R)). With ``R < Dh``
    (partial rotary, as stable-audio-tools applies it) only the first ``R`` dims of each head
    rotate, rotate-half paired within them; the rest pass unchanged."""
    rotary = cos.shape[-1]
    if rotary == x.shape[-1]:
        return x * cos + _rotate_half(x) * sin
    head, tail = x[..., :rotary], x[..., rotary:]
    return torch.cat([head * cos + _rotate_half(head) * sin, tail], dim=-1)


def rerotate(keys: torch.Tensor, delta: int) -> torch.Tensor:
    """Keys (..., S, Dh) rotated at positions ``p`` -> the same keys at positions ``p + delta``."""
    cos, sin = rope_cos_sin(
        torch.full((1,), delta, device=keys.device, dtype=torch.float64), keys.shape[-1], keys.dtype
    )  # (1, Dh)
    return apply_rope(keys, cos, sin)


# ---------------------------------------------------------------------------------------- masks
def encdec_mask(context: int, target: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """The enc-dec ("context router") mask over ``[context | target (incl. token)]`` tokens.

    Context queries see only context keys; every other query sees every key. ``(S, S)`` bool.
    """
    size = context + target
    mask = torch.ones(size, size, dtype=torch.bool, device=device)
    mask[:context, context:] = False
    return mask


def block_causal_mask(
    query_chunks: torch.Tensor | Sequence[int], key_chunks: torch.Tensor | Sequence[int], window: int,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Sliding block-causal mask from per-token chunk indices: query chunk ``q`` may attend to key
    chunk ``k`` iff ``q - window + 1 <= k <= q``. ``(Q, K)`` bool."""
    if window < 1:
        raise ValueError(f"window must be >= 1 chunk, got {window}")
    q = torch.as_tensor(query_chunks, device=device)[:, None]
    k = torch.as_tensor(key_chunks, device=device)[None, :]
    return (k <= q) & (k >= q - window + 1)


def window_chunk_ids(context: int, block: int, token: bool = True) -> list[int]:
    """Chunk index of every token of a ``[context | target | token]`` window (release formula:
    ``min(i // block, W)``, so the timestep token belongs to the target chunk ``W``)."""
    windows = context // block
    size = context + block + (1 if token else 0)
    return [min(i // block, windows) for i in range(size)]


# -------------------------------------------------------------------------------------- caches
@dataclass
class KVCache:
    """Keys and values of every layer, ``(L, N, H, S, Dh)`` each (keys after qk-norm and RoPE).

    Instances are never modified in place: every update returns a new cache, so a saved stream
    state stays valid after later steps (the contract's "save, step, restore, step").
    """

    keys: torch.Tensor
    values: torch.Tensor

    @property
    def length(self) -> int:
        """Tokens per layer."""
        return int(self.keys.shape[3])

    @property
    def nbytes(self) -> int:
        return int(self.keys.numel() * self.keys.element_size() + self.values.numel() * self.values.element_size())

    def layer(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.keys[index], self.values[index]

    def tokens(self, start: int, stop: int) -> "KVCache":
        """Tokens ``[start, stop)`` of every layer."""
        return KVCache(self.keys[:, :, :, start:stop], self.values[:, :, :, start:stop])

    def evict_append(self, fresh: "KVCache") -> "KVCache":
        """Drop the oldest ``fresh.length`` tokens and append ``fresh``: the size stays constant."""
        n = fresh.length
        return KVCache(
            torch.cat([self.keys[:, :, :, n:], fresh.keys], dim=3),
            torch.cat([self.values[:, :, :, n:], fresh.values], dim=3),
        )

    def rerotated(self, cos: torch.Tensor, sin: torch.Tensor) -> "KVCache":
        """The same cache with every key rotated by the angles of ``cos``/``sin`` ((1, Dh) tables of
        one position ``delta``, see :func:`rope_cos_sin`): keys move from ``p`` to ``p + delta``."""
        return KVCache(apply_rope(self.keys, cos, sin), self.values)

    @staticmethod
    def stack(per_layer: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> "KVCache":
        """From a list of per-layer ``(k, v)`` pairs, each ``(N, H, S, Dh)``."""
        return KVCache(torch.stack([k for k, _ in per_layer]), torch.stack([v for _, v in per_layer]))


__all__ = [
    "rope_cos_sin", "rope_tables", "apply_rope", "rerotate", "encdec_mask", "block_causal_mask", "window_chunk_ids",
    "KVCache",
]
