"""Small transformer building blocks for the Live Music Model (LMM).

Pre-norm residual blocks (RMSNorm), multi-head attention through
``torch.nn.functional.scaled_dot_product_attention`` with an optional preallocated KV cache, an
optional cross-attention whose keys/values are projected once per memory, and a SiLU-gated MLP.
No biases, so every projection is one matmul and the analytic FLOP count is exact:

- self-attention over ``T`` queries and ``L`` keys: ``8 T d^2`` (q, k, v, out) + ``4 T L d``
  (QK^T and AV, counted dense);
- cross-attention: ``4 T d^2`` (q, out) per step + ``4 N d^2`` once per memory (k, v) +
  ``4 T N d``;
- gated MLP with hidden ``h``: ``6 T d h``.

Positions are fixed sinusoids added at the input (:func:`sinusoids`), so parameter shapes do not
depend on the stream's lengths (a checkpoint loads whatever the context / block length).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


def sinusoids(length: int, width: int, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(length, width) fixed sinusoidal position table (sin on even, cos on odd features)."""
    pos = torch.arange(length, dtype=torch.float64)[:, None]  # (L, 1)
    half = (width + 1) // 2
    freq = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float64) / max(half, 1))  # (half,)
    angles = pos * freq[None, :]  # (L, half)
    table = torch.zeros(length, width, dtype=torch.float64)
    table[:, 0::2] = torch.sin(angles)[:, : (width + 1) // 2]
    table[:, 1::2] = torch.cos(angles)[:, : width // 2]
    return table.to(device=device, dtype=dtype)


class KVCache:
    """Preallocated keys/values of one attention layer: ``k``, ``v`` of shape (B, H, capacity, Dh).

    ``length`` is a host integer (how many positions are filled), so appending never reads a
    device value. :meth:`reset` empties the cache without freeing it (static shapes).
    """

    def __init__(self, batch: int, heads: int, capacity: int, head_dim: int,
                 device: torch.device | str, dtype: torch.dtype) -> None:
        self.k = torch.zeros(batch, heads, capacity, head_dim, device=device, dtype=dtype)
        self.v = torch.zeros_like(self.k)
        self.capacity = capacity
        self.length = 0

    def append(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Write (B, H, T, Dh) new keys/values after the filled part; return all filled ones."""
        t = k.shape[2]
        if self.length + t > self.capacity:
            raise RuntimeError(f"KV cache overflow: {self.length} + {t} > capacity {self.capacity}")
        self.k[:, :, self.length:self.length + t] = k
        self.v[:, :, self.length:self.length + t] = v
        self.length += t
        return self.k[:, :, :self.length], self.v[:, :, :self.length]

    def extend(self, k: torch.Tensor, v: torch.Tensor, causal: bool,
               position: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Append (B, H, T, Dh) new keys/values -> (every filled key, value, mask or None): with
        ``causal`` and T > 1 query i (absolute ``length + i``) sees keys j <= length + i. The
        position is the host's ``length``; ``position`` is for static caches and must be None."""
        if position is not None:
            raise ValueError("a KVCache appends at its own length; position is for a StaticKVCache")
        past, t = self.length, k.shape[2]
        keys, values = self.append(k, v)  # (B, H, past + T, Dh)
        mask = None
        if causal and t > 1:
            rows = torch.arange(t, device=k.device)[:, None] + past
            mask = torch.arange(past + t, device=k.device)[None, :] <= rows  # (T, past + T)
        return keys, values, mask

    def reset(self) -> None:
        self.length = 0

    def nbytes(self) -> int:
        return self.k.numel() * self.k.element_size() * 2


class SelfAttention(nn.Module):
    """Multi-head self-attention (fused q/k/v projection, no bias)."""

    def __init__(self, width: int, heads: int, device: torch.device | str | None = None,
                 dtype: torch.dtype | None = None) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, width // heads
        self.qkv = nn.Linear(width, 3 * width, bias=False, device=device, dtype=dtype)
        self.out = nn.Linear(width, width, bias=False, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor, cache: Any = None, causal: bool = False,
                position: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, T, D) -> (B, T, D). With ``cache`` (a :class:`KVCache`, or a
        :class:`~baselines.lmm_static.StaticKVCache` written at the device-side ``position``) the
        new keys are added and the queries attend to every cached position (``causal`` then masks
        only among the new ones)."""
        b, t, d = x.shape
        qkv = self.qkv(x).view(b, t, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)  # (3, B, H, T, Dh)
        q, k, v = qkv[0], qkv[1], qkv[2]
        mask = None
        is_causal = False
        if cache is not None:
            k, v, mask = cache.extend(k, v, causal, position)  # (B, H, S, Dh) x 2, mask or None
        else:
            is_causal = causal and t > 1
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=is_causal)  # (B, H, T, Dh)
        return self.out(y.transpose(1, 2).reshape(b, t, d))


class CrossAttention(nn.Module):
    """Multi-head attention to a memory whose keys/values are projected once (:meth:`memory_kv`)."""

    def __init__(self, width: int, heads: int, device: torch.device | str | None = None,
                 dtype: torch.dtype | None = None) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, width // heads
        self.q = nn.Linear(width, width, bias=False, device=device, dtype=dtype)
        self.kv = nn.Linear(width, 2 * width, bias=False, device=device, dtype=dtype)
        self.out = nn.Linear(width, width, bias=False, device=device, dtype=dtype)

    def memory_kv(self, memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """memory (B, N, D) -> keys, values (B, H, N, Dh)."""
        b, n, _ = memory.shape
        kv = self.kv(memory).view(b, n, 2, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)  # (2, B, H, N, Dh)
        return kv[0], kv[1]

    def forward(self, x: torch.Tensor, kv: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """x (B, T, D) attends to the projected memory ``kv`` -> (B, T, D)."""
        b, t, d = x.shape
        q = self.q(x).view(b, t, self.heads, self.head_dim).transpose(1, 2)  # (B, H, T, Dh)
        y = F.scaled_dot_product_attention(q, kv[0], kv[1])  # (B, H, T, Dh)
        return self.out(y.transpose(1, 2).reshape(b, t, d))


class GatedMLP(nn.Module):
    """SiLU-gated MLP: ``down(silu(gate(x)) * up(x))`` with the gate and up matrices fused."""

    def __init__(self, width: int, hidden: int, device: torch.device | str | None = None,
                 dtype: torch.dtype | None = None) -> None:
        super().__init__()
        self.gate_up = nn.Linear(width, 2 * hidden, bias=False, device=device, dtype=dtype)
        self.down = nn.Linear(hidden, width, bias=False, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up(x).chunk(2, dim=-1)  # (B, T, h) each
        return self.down(F.silu(gate) * up)


class Block(nn.Module):
    """Pre-norm residual block: self-attention, optional cross-attention, gated MLP."""

    def __init__(self, width: int, heads: int, mlp_hidden: int, cross: bool,
                 device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> None:
        super().__init__()
        self.norm_self = nn.RMSNorm(width, eps=1e-6, device=device, dtype=dtype)
        self.self_attn = SelfAttention(width, heads, device=device, dtype=dtype)
        self.cross_attn: CrossAttention | None = None
        if cross:
            self.norm_cross = nn.RMSNorm(width, eps=1e-6, device=device, dtype=dtype)
            self.cross_attn = CrossAttention(width, heads, device=device, dtype=dtype)
        self.norm_mlp = nn.RMSNorm(width, eps=1e-6, device=device, dtype=dtype)
        self.mlp = GatedMLP(width, mlp_hidden, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor, cache: Any = None, causal: bool = False,
                cross_kv: tuple[torch.Tensor, torch.Tensor] | None = None,
                position: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.self_attn(self.norm_self(x), cache=cache, causal=causal, position=position)
        if self.cross_attn is not None:
            if cross_kv is None:
                raise ValueError("this block has cross-attention: pass cross_kv (from Stack.memory_kv)")
            x = x + self.cross_attn(self.norm_cross(x), cross_kv)
        return x + self.mlp(self.norm_mlp(x))


class Stack(nn.Module):
    """``layers`` blocks and a final RMSNorm. Cached use: one :class:`KVCache` per layer."""

    def __init__(self, layers: int, width: int, heads: int, mlp_hidden: int, cross: bool = False,
                 device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> None:
        super().__init__()
        self.width, self.heads = width, heads
        self.blocks = nn.ModuleList(
            Block(width, heads, mlp_hidden, cross, device=device, dtype=dtype) for _ in range(layers)
        )
        self.norm = nn.RMSNorm(width, eps=1e-6, device=device, dtype=dtype)

    def new_caches(self, batch: int, capacity: int, device: torch.device | str, dtype: torch.dtype) -> list[KVCache]:
        """One empty self-attention cache per layer, ``capacity`` positions each."""
        return [KVCache(batch, self.heads, capacity, self.width // self.heads, device, dtype) for _ in self.blocks]

    def memory_kv(self, memory: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Cross-attention keys/values of ``memory`` (B, N, D) for every layer (computed once)."""
        out = []
        for block in self.blocks:
            if block.cross_attn is None:
                raise ValueError("this stack has no cross-attention")
            out.append(block.cross_attn.memory_kv(memory))
        return out

    def forward(self, x: torch.Tensor, caches: list[Any] | None = None, causal: bool = False,
                cross_kvs: list[tuple[torch.Tensor, torch.Tensor]] | None = None,
                position: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, T, D) -> normalised output (B, T, D). ``position``: where static caches write
        (a 0-d int64 tensor on the device; None for :class:`KVCache`)."""
        for i, block in enumerate(self.blocks):
            x = block(
                x,
                cache=None if caches is None else caches[i],
                causal=causal,
                cross_kv=None if cross_kvs is None else cross_kvs[i],
                position=position,
            )
        return self.norm(x)


def stack_flops(layers: int, width: int, mlp_hidden: int, queries: int, keys: int, batch: int = 1,
                cross_keys: int = 0) -> float:
    """Analytic FLOPs of one pass of ``queries`` tokens through a :class:`Stack` whose
    self-attention sees ``keys`` keys (and cross-attends to ``cross_keys`` memory positions, whose
    k/v projection is NOT included: see :func:`memory_kv_flops`)."""
    d, t = width, queries
    per_layer = 8 * t * d * d + 4 * t * keys * d + 6 * t * d * mlp_hidden
    if cross_keys:
        per_layer += 4 * t * d * d + 4 * t * cross_keys * d
    return float(batch * layers * per_layer)


def memory_kv_flops(layers: int, width: int, memory: int, batch: int = 1) -> float:
    """Analytic FLOPs of :meth:`Stack.memory_kv` on ``memory`` positions."""
    return float(batch * layers * 2 * memory * width * 2 * width)


def init_parameters(module: nn.Module, generator: torch.Generator, std: float = 0.02) -> None:
    """Seeded in-place init: RMSNorm scales to one, every other parameter N(0, std^2), drawn in
    ``named_parameters`` order from ``generator`` (a CPU generator; never the global RNG)."""
    norm_params = {id(p) for m in module.modules() if isinstance(m, nn.RMSNorm) for p in m.parameters()}
    with torch.no_grad():
        for _, p in module.named_parameters():
            if id(p) in norm_params:
                p.fill_(1.0)
            else:
                p.copy_(torch.randn(p.shape, generator=generator, dtype=torch.float32) * std)
