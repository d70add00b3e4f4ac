"""MusicGen's decoder run one position at a time with a static KV cache, and its delay pattern.

The computation is transformers' ``MusicgenDecoder`` + ``lm_heads`` (same modules, same weights,
same order of operations: summed codebook embeddings + sinusoidal positions, pre-LayerNorm
self-attention, cross-attention to the text, GELU FFN, final LayerNorm, one head per codebook);
the tests compare it with transformers' own forward. What differs is how it is driven: the
self-attention K/V live in caches preallocated for the block (static shapes, written in place),
every length and offset is a Python int, and masks are boolean tensors built from Python ints, so
nothing reads a device value on the host.

Delay pattern (transformers' ``build_delay_pattern_mask``): with ``K`` codebooks, token slot ``p``
of codebook ``k`` holds frame ``p - 1 - k``; slots holding frames before the first are the pad/BOS
id (``vocab_size``). Slot 0 is all BOS. A block lays out ``[context | block]`` frames in one grid of
``S = F + B + K`` slots (``F`` context frames, ``B`` block frames): slots ``0..F`` are known (prefill),
codebook ``k`` of block frame ``j`` sits at slot ``F + 1 + j + k`` and is sampled; slots past the
block's last frame stay pad (transformers' end-of-sequence triangle). Filling the grid takes
``B + K - 1`` sampling positions: one from the prefill, then ``B + K - 2`` cached decoder steps.

A stream with fewer than ``F`` frames so far (started from nothing) is right-aligned: its BOS sits
at slot ``s0 = F - n``, slots before it are masked out of every attention (each attends only to
itself, so no row is fully masked), and positions count from its BOS. The outputs then equal
MusicGen's on the unpadded sequence while every block has the same shapes and cost.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class DelayLayout:
    """Slot arithmetic of one block: ``codebooks`` K, ``context_frames`` F, ``block_frames`` B."""

    codebooks: int
    context_frames: int
    block_frames: int

    @property
    def slots(self) -> int:
        """S = F + B + K token slots (0 .. F + B + K - 1)."""
        return self.context_frames + self.block_frames + self.codebooks

    @property
    def prefill_slots(self) -> int:
        """F + 1: BOS + context slots, run in one pass."""
        return self.context_frames + 1

    @property
    def decode_steps(self) -> int:
        """B + K - 2 cached one-slot steps after the prefill (slots F + 1 .. F + B + K - 2)."""
        return self.block_frames + self.codebooks - 2

    @property
    def cache_slots(self) -> int:
        """F + B + K - 1 slots ever fed to the decoder (the last slot is only sampled)."""
        return self.slots - 1


def generate_mask(layout: DelayLayout, device: torch.device | str = "cpu") -> torch.Tensor:
    """(K, S) bool: the slots sampled in a block (codebook k of block frames, ``F+1+j+k``)."""
    k = torch.arange(layout.codebooks, device=device)[:, None]
    frame = torch.arange(layout.slots, device=device)[None, :] - 1 - k  # (K, S): frame held by each slot
    return (frame >= layout.context_frames) & (frame < layout.context_frames + layout.block_frames)


def delay_grid(context: torch.Tensor, layout: DelayLayout, pad_id: int) -> torch.Tensor:
    """(n, K) context codes (n <= F, the stream's last frames) -> (K, S) int64 token grid: context
    frames delayed per codebook and right-aligned to end at frame slot F - 1; pad elsewhere (the
    sampled slots are filled during the block)."""
    n, codebooks = context.shape
    if n > layout.context_frames or codebooks != layout.codebooks:
        raise ValueError(f"context codes {tuple(context.shape)} do not fit {layout}")
    grid = torch.full((codebooks, layout.slots), pad_id, dtype=torch.int64, device=context.device)
    first = layout.context_frames - n  # frame slot of the first context frame (= BOS slot s0)
    for k in range(codebooks):
        grid[k, first + 1 + k: layout.context_frames + 1 + k] = context[:, k]
    return grid


def undelay(grid: torch.Tensor, layout: DelayLayout) -> torch.Tensor:
    """(K, S) grid -> (B, K) codes of the block's frames."""
    f, b = layout.context_frames, layout.block_frames
    return torch.stack([grid[k, f + 1 + k: f + 1 + k + b] for k in range(layout.codebooks)], dim=1)


class MusicgenStepper:
    """Runs a ``MusicgenForConditionalGeneration``'s decoder over a :class:`DelayLayout` with a
    batch of ``batch`` rows (2 under classifier-free guidance: [conditional | unconditional])."""

    def __init__(self, model: Any, layout: DelayLayout, batch: int, device: torch.device, dtype: torch.dtype) -> None:
        self.causal_lm = model.decoder  # MusicgenForCausalLM: .model.decoder and .lm_heads
        self.decoder = model.decoder.model.decoder  # MusicgenDecoder
        self.layout, self.batch, self.device, self.dtype = layout, batch, device, dtype
        cfg = self.decoder.config
        self.width, self.heads = cfg.hidden_size, cfg.num_attention_heads
        self.head_dim = self.width // self.heads
        self.pad_id = cfg.pad_token_id if cfg.pad_token_id is not None else cfg.vocab_size
        # transformers' sinusoid table (cos | sin), computed for the slots a block uses
        table = type(self.decoder.embed_positions).get_embedding(layout.slots, self.width)
        self.positions = table.to(device=device, dtype=dtype)  # (S, d)

    # ---------------------------------------------------------------- pieces
    def cross_kv(self, encoder_states: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(b, T, d) projected text states -> per layer cross-attention (K, V), each (b, H, T, hd)."""
        out = []
        for layer in self.decoder.layers:
            attn = layer.encoder_attn
            out.append((self._heads(attn.k_proj(encoder_states)), self._heads(attn.v_proj(encoder_states))))
        return out

    def new_cache(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per layer self-attention (K, V) buffers, each (b, H, cache_slots, hd), for one block."""
        shape = (self.batch, self.heads, self.layout.cache_slots, self.head_dim)
        return [(torch.empty(shape, device=self.device, dtype=self.dtype),
                 torch.empty(shape, device=self.device, dtype=self.dtype)) for _ in self.decoder.layers]

    def embed(self, tokens: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """(K, q) tokens and (q, d) position rows -> (b, q, d) decoder inputs (same tokens per row)."""
        table = self.decoder.embed_tokens
        x = sum(table[k](tokens[k]) for k in range(tokens.shape[0])) + positions  # (q, d)
        return x.unsqueeze(0).expand(self.batch, -1, -1)

    def prefill_inputs(self, grid: torch.Tensor, start_slot: int, count: int | None = None) -> torch.Tensor:
        """(b, count, d) inputs of slots ``0 .. count - 1`` (default: the F + 1 prefill slots); slots
        before ``start_slot`` (the BOS) get position 0."""
        count = self.layout.prefill_slots if count is None else count
        index = (torch.arange(count, device=self.device) - start_slot).clamp_min(0)  # (F+1,)
        return self.embed(grid[:, :count], self.positions.index_select(0, index))

    def step_inputs(self, grid: torch.Tensor, slot: int, start_slot: int) -> torch.Tensor:
        """(b, 1, d) input of one slot (at or after the BOS)."""
        position = slot - start_slot
        return self.embed(grid[:, slot: slot + 1], self.positions[position: position + 1])

    def self_mask(self, queries_from: int, queries: int, start_slot: int) -> torch.Tensor:
        """(q, keys) bool for query slots ``queries_from ..`` over key slots ``0 .. queries_from + q - 1``:
        causal, and no key before ``start_slot`` except a slot's own."""
        q = torch.arange(queries_from, queries_from + queries, device=self.device)[:, None]
        k = torch.arange(queries_from + queries, device=self.device)[None, :]
        return (k <= q) & ((k >= start_slot) | (k == q))

    def forward(self, x: torch.Tensor, caches: list[tuple[torch.Tensor, torch.Tensor]], first_slot: int,
                self_mask: torch.Tensor, cross: list[tuple[torch.Tensor, torch.Tensor]],
                cross_mask: torch.Tensor) -> torch.Tensor:
        """(b, q, d) inputs at slots ``first_slot ..`` -> (b, q, d) final-LayerNorm states. Writes the
        slots' K/V into ``caches`` and attends to cached slots ``0 .. first_slot + q - 1``."""
        end = first_slot + x.shape[1]
        for layer, (k_cache, v_cache), (k_cross, v_cross) in zip(self.decoder.layers, caches, cross):
            attn = layer.self_attn
            h = layer.self_attn_layer_norm(x)
            k_cache[:, :, first_slot:end] = self._heads(attn.k_proj(h))
            v_cache[:, :, first_slot:end] = self._heads(attn.v_proj(h))
            o = F.scaled_dot_product_attention(self._heads(attn.q_proj(h)), k_cache[:, :, :end], v_cache[:, :, :end],
                                               attn_mask=self_mask, scale=attn.scaling)
            x = x + attn.out_proj(self._merge(o))
            attn = layer.encoder_attn
            h = layer.encoder_attn_layer_norm(x)
            o = F.scaled_dot_product_attention(self._heads(attn.q_proj(h)), k_cross, v_cross, attn_mask=cross_mask,
                                               scale=attn.scaling)
            x = x + attn.out_proj(self._merge(o))
            h = layer.final_layer_norm(x)
            x = x + layer.fc2(layer.activation_fn(layer.fc1(h)))
        return self.decoder.layer_norm(x)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """(b, d) states -> (b, K, V) float32 logits, one head per codebook."""
        return torch.stack([head(hidden) for head in self.causal_lm.lm_heads], dim=1).float()

    # ---------------------------------------------------------------- helpers
    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        """(b, q, d) -> (b, H, q, hd)."""
        return x.view(x.shape[0], x.shape[1], self.heads, self.head_dim).transpose(1, 2)

    def _merge(self, x: torch.Tensor) -> torch.Tensor:
        """(b, H, q, hd) -> (b, q, d)."""
        return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], self.width)
