"""Attention building blocks of the diffusion regimes: RoPE, dense boolean masks, KV caches.

Conventions (used by every caller):
- per-head tensors are ``(N, H, S, Dh)`` (batch, heads, tokens, head dim);
- a boolean mask is ``(Q, K)`` with True = "query may attend to key"; it broadcasts over batch and
  heads in ``torch.nn.functional.scaled_dot_product_attention``;
- a KV cache stacks all layers: ``(L, N, H, S, Dh)``, keys stored AFTER qk-norm and RoPE.

Two kinds of self-attention cache feed a pass's layers (``past_layer(index)``, whose ``extend(k, v)``
gives the keys and values a layer attends to):
- :class:`KVCache`, immutable: ``extend`` concatenates ``[cached | fresh]`` (a new tensor per layer
  and pass). Training (gradients through the cache) and tests use it.
- :class:`KVBuffer` / :class:`KVRing`, preallocated and written in place: the cached tokens sit at
  the front of a buffer with room behind them for one pass's own rows; ``extend`` writes the fresh
  rows there and returns views, so no layer copies the cache. The streaming regimes use them; a
  saved stream state must then be copied (``StreamingGenerator.copy_state``) before it is stepped.

RoPE uses the rotate-half layout: dims ``[0, Dh/2)`` pair with ``[Dh/2, Dh)``. Rotations compose
(``R(a) R(b) = R(a + b)``), which is what makes re-rotating cached keys by ``-B`` exact up to
rounding: :func:`rerotate`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol, Sequence

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
def _nbytes(*tensors: torch.Tensor) -> int:
    return int(sum(t.numel() * t.element_size() for t in tensors))


class PastLayer(Protocol):
    """One layer's cached tokens as a pass sees them (``past_layer(index)`` of a cache)."""

    def extend(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The pass's own (N, H, S, Dh) K/V -> the (N, H, P + S, Dh) keys and values to attend to."""
        ...


class _ConcatLayer:
    """One layer of an immutable cache: ``[cached | fresh]`` by concatenation."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor) -> None:
        self.keys, self.values = keys, values  # (N, H, P, Dh)

    def extend(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Fresh (N, H, S, Dh) rows -> the (N, H, P + S, Dh) keys and values to attend to."""
        return torch.cat([self.keys, k], dim=2), torch.cat([self.values, v], dim=2)


class _BufferLayer:
    """One layer of a preallocated buffer: fresh rows are written behind the ``cached`` tokens."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, cached: int) -> None:
        self.keys, self.values, self.cached = keys, values, cached  # (N, H, capacity, Dh)

    def extend(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Fresh (N, H, S, Dh) rows -> views (N, H, P + S, Dh) of the buffer (no cache copy)."""
        stop = self.cached + k.shape[2]
        self.keys[:, :, self.cached:stop].copy_(k)
        self.values[:, :, self.cached:stop].copy_(v)
        return self.keys[:, :, :stop], self.values[:, :, :stop]


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
        return _nbytes(self.keys, self.values)

    def layer(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.keys[index], self.values[index]

    def past_layer(self, index: int) -> _ConcatLayer:
        """Layer ``index`` as the cached prefix of a pass (concatenated with the pass's rows)."""
        return _ConcatLayer(self.keys[index], self.values[index])

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


@dataclass
class KVBuffer:
    """A preallocated self-attention cache ``(L, N, H, capacity, Dh)``: ``length`` cached tokens at
    the front, room behind them for one pass's own rows, written in place (module docstring).

    A pass run with ``past=buffer`` writes each layer's fresh K/V at ``length ..``; :meth:`keep`
    then makes the first ``n`` tokens the cache (the enc-dec prefill: its context rows)."""

    keys: torch.Tensor
    values: torch.Tensor
    length: int = 0

    @classmethod
    def allocate(cls, layers: int, batch: int, heads: int, capacity: int, head_dim: int, device: torch.device,
                 dtype: torch.dtype) -> "KVBuffer":
        """An empty buffer with room for ``capacity`` tokens per layer."""
        shape = (layers, batch, heads, capacity, head_dim)
        return cls(torch.zeros(shape, device=device, dtype=dtype), torch.zeros(shape, device=device, dtype=dtype))

    @property
    def capacity(self) -> int:
        return int(self.keys.shape[3])

    @property
    def nbytes(self) -> int:
        """Bytes held, the free room included (it is allocated)."""
        return _nbytes(self.keys, self.values)

    def past_layer(self, index: int) -> _BufferLayer:
        return _BufferLayer(self.keys[index], self.values[index], self.length)

    def keep(self, n: int) -> None:
        """Make the first ``n`` tokens (those the last pass wrote, from ``length``) the cache."""
        if not 0 <= n <= self.capacity:
            raise ValueError(f"cannot keep {n} tokens in a buffer of {self.capacity}")
        self.length = n

    def cached(self) -> KVCache:
        """The cached tokens as an immutable :class:`KVCache` (views; clone to keep them)."""
        return KVCache(self.keys[:, :, :, :self.length], self.values[:, :, :, :self.length])


@dataclass
class KVRing(KVBuffer):
    """The block-causal ring: ``slots`` chunks of ``chunk`` tokens at the front of a
    :class:`KVBuffer` (``length = slots * chunk``), in no particular order: the slot of the oldest
    chunk is ``oldest``, and the next chunk replaces it (:meth:`advance`), so no chunk is ever
    moved. Attention does not depend on the order of its keys (RoPE is in the keys), only a mask
    that hides the oldest chunk has to know where it is (:meth:`oldest_tokens`)."""

    chunk: int = 1
    oldest: int = 0  # slot of the oldest chunk

    @classmethod
    def from_tokens(cls, cache: KVCache, chunk: int, room: int) -> "KVRing":
        """A ring holding ``cache``'s tokens (oldest chunk first) with ``room`` tokens behind."""
        layers, batch, heads, length, head_dim = cache.keys.shape
        if length % chunk:
            raise ValueError(f"a ring of {length} tokens is not a whole number of {chunk}-token chunks")
        buffer = KVBuffer.allocate(layers, batch, heads, length + room, head_dim, cache.keys.device, cache.keys.dtype)
        buffer.keys[:, :, :, :length].copy_(cache.keys)
        buffer.values[:, :, :, :length].copy_(cache.values)
        return cls(buffer.keys, buffer.values, length, chunk, 0)

    @property
    def slots(self) -> int:
        return self.length // self.chunk

    def oldest_tokens(self) -> slice:
        """Token positions of the oldest chunk in the buffer."""
        return slice(self.oldest * self.chunk, (self.oldest + 1) * self.chunk)

    def rerotated(self, cos: torch.Tensor, sin: torch.Tensor) -> "KVRing":
        """Every cached key rotated by the angles of ``cos``/``sin`` ((1, Dh): one position delta),
        in place; returns the ring (the same call as :meth:`KVCache.rerotated`)."""
        cached = self.keys[:, :, :, :self.length]
        cached.copy_(apply_rope(cached, cos, sin))
        return self

    def advance(self) -> "KVRing":
        """The chunk the last pass wrote first behind the cache replaces the oldest one (in place);
        returns the ring. A ring of no slots stays empty."""
        if self.slots:
            fresh = slice(self.length, self.length + self.chunk)
            self.keys[:, :, :, self.oldest_tokens()] = self.keys[:, :, :, fresh]
            self.values[:, :, :, self.oldest_tokens()] = self.values[:, :, :, fresh]
            self.oldest = (self.oldest + 1) % self.slots
        return self

    def ordered(self) -> KVCache:
        """The cached chunks oldest first, as a new :class:`KVCache` (for tests and inspection)."""
        order = [(self.oldest + i) % self.slots for i in range(self.slots)]
        index = torch.tensor([s * self.chunk + j for s in order for j in range(self.chunk)], device=self.keys.device)
        return KVCache(self.keys.index_select(3, index), self.values.index_select(3, index))


__all__ = [
    "rope_cos_sin", "rope_tables", "apply_rope", "rerotate", "encdec_mask", "block_causal_mask", "window_chunk_ids",
    "KVCache", "KVBuffer", "KVRing", "PastLayer",
]
