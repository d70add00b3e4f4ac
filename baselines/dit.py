"""A Stable-Audio-Open-Small-shaped diffusion transformer (DiT), shared by every diffusion regime.

Token layout of a pass: latent rows (any subset of a window) followed, optionally, by the
timestep/global token. The backbone itself knows nothing about regimes: callers give it the
embedded rows, RoPE tables for the query rows, a dense boolean mask, the cross-attention K/V of
the prompt and, optionally, cached self-attention K/V to prepend to the keys. One class, one
seeded init, so the three regimes run the same weights given the same ``init_seed``.

Per layer (pre-LayerNorm residual blocks):
  self-attention (qkv, per-head qk-LayerNorm, RoPE on q and k, SDPA with a boolean mask)
  -> cross-attention to the conditioning tokens (K/V projected from ``cond_dim``, qk-LayerNorm)
  -> SiLU-gated MLP (hidden ``mlp_mult * width``, three matrices).
Inputs: ``in_proj(noisy latents) + mask_embed([inpaint_mask, masked clean latents])``; the
appended token is ``time_mlp(sinusoidal(t)) + global_proj(pooled prompt token)``. Output:
``out_proj(final_norm(h))``, the rectified-flow velocity ``v = eps - x0``.
"""

from __future__ import annotations

import logging
import math

import torch
import torch.nn.functional as F
from torch import nn

from baselines.attention import KVBuffer, KVCache, PastLayer, apply_rope, rope_cos_sin
from baselines.weights import load_checkpoint, resolve_weights
from bench.core.errors import ConfigError
from bench.core.hashing import stable_hash
from bench.core.presets import DiTConfig

log = logging.getLogger(__name__)

TIME_FEATURES = 256  # sinusoidal features of t fed to the timestep MLP
TIME_SCALE = 1000.0  # t in [0, 1] is scaled before the sinusoids


class DiTBlock(nn.Module):
    """One pre-LN block: self-attention, cross-attention, gated MLP."""

    def __init__(self, width: int, heads: int, cond_dim: int, hidden: int) -> None:
        super().__init__()
        self.heads = heads
        self.head_dim = width // heads
        self.norm_attn = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width, bias=False)
        self.q_norm = nn.LayerNorm(self.head_dim)
        self.k_norm = nn.LayerNorm(self.head_dim)
        self.attn_out = nn.Linear(width, width, bias=False)
        self.norm_cross = nn.LayerNorm(width)
        self.cross_q = nn.Linear(width, width, bias=False)
        self.cross_kv = nn.Linear(cond_dim, 2 * width, bias=False)
        self.cross_q_norm = nn.LayerNorm(self.head_dim)
        self.cross_k_norm = nn.LayerNorm(self.head_dim)
        self.cross_out = nn.Linear(width, width, bias=False)
        self.norm_mlp = nn.LayerNorm(width)
        self.mlp_gate = nn.Linear(width, hidden)
        self.mlp_up = nn.Linear(width, hidden)
        self.mlp_down = nn.Linear(hidden, width)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        n, s, _ = x.shape
        return x.view(n, s, self.heads, self.head_dim).transpose(1, 2)  # (N, H, S, Dh)

    def _merge(self, x: torch.Tensor) -> torch.Tensor:
        n, _, s, _ = x.shape
        return x.transpose(1, 2).reshape(n, s, self.heads * self.head_dim)  # (N, S, d)

    def cross_keys_values(self, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """cond (N, Nc, cond_dim) -> K, V each (N, H, Nc, Dh) (K after qk-norm)."""
        k, v = self.cross_kv(cond).chunk(2, dim=-1)
        return self.cross_k_norm(self._heads(k)), self._heads(v)

    def forward(
        self,
        h: torch.Tensor,  # (N, S, d)
        cos: torch.Tensor,  # (S, Dh)
        sin: torch.Tensor,  # (S, Dh)
        attn_mask: torch.Tensor | None,  # (S, P + S) bool, None = attend to everything
        cross_k: torch.Tensor,  # (N, H, Nc, Dh)
        cross_v: torch.Tensor,
        past: PastLayer | None = None,  # P cached tokens (normed and rotated): KVCache/KVBuffer.past_layer
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns (h, k, v): the new hidden rows and this pass's rotated K/V (N, H, S, Dh)."""
        q, k, v = self.qkv(self.norm_attn(h)).chunk(3, dim=-1)
        q = apply_rope(self.q_norm(self._heads(q)), cos, sin)
        k = apply_rope(self.k_norm(self._heads(k)), cos, sin)
        v = self._heads(v)
        keys, values = past.extend(k, v) if past is not None else (k, v)  # (N, H, P + S, Dh)
        a = F.scaled_dot_product_attention(q, keys, values, attn_mask=attn_mask)
        h = h + self.attn_out(self._merge(a))

        cq = self.cross_q_norm(self._heads(self.cross_q(self.norm_cross(h))))
        h = h + self.cross_out(self._merge(F.scaled_dot_product_attention(cq, cross_k, cross_v)))

        x = self.norm_mlp(h)
        h = h + self.mlp_down(F.silu(self.mlp_gate(x)) * self.mlp_up(x))
        return h, k, v


class DiT(nn.Module):
    """The backbone. Build it with :func:`build_dit` (seeded init or a checkpoint).

    The regimes call only: ``embed``, ``time_token``, ``cross_cache``, ``run``, ``head``,
    ``window_positions``, ``rope``, ``pass_flops``, ``cross_flops`` and the attributes ``width``,
    ``heads``, ``head_dim``, ``rotary_dim``, ``latent_dim``, ``config``; stable-audio-tools' DiT
    (baselines/sat_dit.py) implements the same."""

    token_first = False  # the timestep token sits after the window's rows (RoPE position)

    def __init__(self, config: DiTConfig) -> None:
        super().__init__()
        self.config = config
        width, latent_dim = config.width, config.codec.latent_dim
        self.width = width
        self.heads = config.heads
        self.head_dim = width // config.heads
        self.rotary_dim = self.head_dim  # RoPE rotates every dim of a head
        self.cond_dim = config.cond_dim  # width of the conditioning tokens it reads
        self.latent_dim = latent_dim
        self.in_proj = nn.Linear(latent_dim, width)
        self.mask_embed = nn.Linear(latent_dim + 1, width)  # [inpaint_mask, masked latents]
        self.time_in = nn.Linear(TIME_FEATURES, width)
        self.time_out = nn.Linear(width, width)
        self.global_proj = nn.Linear(config.cond_dim, width)
        self.blocks = nn.ModuleList(
            DiTBlock(width, config.heads, config.cond_dim, config.mlp_mult * width) for _ in range(config.depth)
        )
        self.final_norm = nn.LayerNorm(width)
        self.out_proj = nn.Linear(width, latent_dim)

    # ----------------------------------------------------------------------------- positions
    def window_positions(self, row_start: int, row_stop: int, origin: int, token: bool) -> torch.Tensor:
        """RoPE positions (float64) of rows ``row_start .. row_stop - 1`` (a row's position is its
        index), followed (``token``) by the timestep token's: ``row_stop``, right after the rows.
        ``origin`` (the window's first row) does not move anything here (see SatDiT). On the host:
        callers upload them."""
        del origin
        return torch.arange(row_start, row_stop + (1 if token else 0), dtype=torch.float64, device="cpu")

    def rope(self, positions: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """(cos, sin) tables (S, Dh) of ``positions`` (S,)."""
        return rope_cos_sin(positions, self.rotary_dim, dtype)

    # -------------------------------------------------------------------------------- inputs
    def embed(self, noisy: torch.Tensor, mask: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
        """Latent rows -> hidden rows. noisy (N, S, D), mask (N, S, 1), masked (N, S, D) -> (N, S, d)."""
        return self.in_proj(noisy) + self.mask_embed(torch.cat([mask, masked], dim=-1))

    def time_token(self, t: torch.Tensor, pooled: torch.Tensor) -> torch.Tensor:
        """t (N,) in [0, 1] and the pooled prompt token (N, cond_dim) -> the token (N, 1, d)."""
        half = TIME_FEATURES // 2
        freqs = torch.exp(
            -math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half
        )  # (F/2,)
        angles = (t.to(torch.float32) * TIME_SCALE)[:, None] * freqs[None, :]  # (N, F/2), elementwise
        features = torch.cat([angles.cos(), angles.sin()], dim=-1).to(pooled.dtype)  # (N, F)
        token = self.time_out(F.silu(self.time_in(features))) + self.global_proj(pooled)
        return token[:, None, :]

    def cross_cache(self, cond: torch.Tensor) -> KVCache:
        """Cross-attention K/V of every layer for cond (N, Nc, cond_dim): (L, N, H, Nc, Dh)."""
        return KVCache.stack([block.cross_keys_values(cond) for block in self.blocks])

    # -------------------------------------------------------------------------------- layers
    def run(
        self,
        h: torch.Tensor,  # (N, S, d)
        cos: torch.Tensor,  # (S, Dh)
        sin: torch.Tensor,
        attn_mask: torch.Tensor | None,  # (S, P + S)
        cross: KVCache,
        past: KVCache | KVBuffer | None = None,  # P cached tokens per layer
        return_kv: bool = False,
    ) -> tuple[torch.Tensor, KVCache | None]:
        """All layers over the rows ``h``. Returns the final hidden rows and, if asked, the rows'
        own K/V of every layer (L, N, H, S, Dh), ready to be cached."""
        fresh: list[tuple[torch.Tensor, torch.Tensor]] = []
        for index, block in enumerate(self.blocks):
            past_layer = past.past_layer(index) if past is not None else None
            cross_k, cross_v = cross.layer(index)
            h, k, v = block(h, cos, sin, attn_mask, cross_k, cross_v, past_layer)
            if return_kv:
                fresh.append((k, v))
        return h, (KVCache.stack(fresh) if return_kv else None)

    def head(self, h: torch.Tensor) -> torch.Tensor:
        """Hidden rows (N, S, d) -> velocity (N, S, D)."""
        return self.out_proj(self.final_norm(h))

    def forward(
        self,
        noisy: torch.Tensor,  # (N, S, D)
        mask: torch.Tensor,  # (N, S, 1)
        masked: torch.Tensor,  # (N, S, D)
        t: torch.Tensor,  # (N,)
        cond: torch.Tensor,  # (N, Nc, cond_dim); the last token is the pooled one
        cos: torch.Tensor,  # (S + 1, Dh): latent rows then the token
        sin: torch.Tensor,
        attn_mask: torch.Tensor | None = None,  # (S + 1, S + 1)
    ) -> torch.Tensor:
        """A plain uncached pass over a whole window with the token appended: velocity (N, S, D)."""
        h = torch.cat([self.embed(noisy, mask, masked), self.time_token(t, cond[:, -1])], dim=1)
        h, _ = self.run(h, cos, sin, attn_mask, self.cross_cache(cond))
        return self.head(h[:, :-1])

    # --------------------------------------------------------------------------------- FLOPs
    def pass_flops(self, *, latent_rows: int, token_rows: int, past_keys: int, out_rows: int, cond_tokens: int,
                   batch: int) -> float:
        """Analytic FLOPs of one pass: :func:`native_pass_flops` (``cond_tokens`` is the config's)."""
        del cond_tokens
        return native_pass_flops(self.config, latent_rows=latent_rows, token_rows=token_rows, past_keys=past_keys,
                                 out_rows=out_rows, batch=batch)

    def cross_flops(self, cond_tokens: int, batch: int) -> float:
        """FLOPs of projecting the prompt tokens to every layer's cross-attention K/V."""
        return batch * self.config.depth * 2.0 * cond_tokens * self.config.cond_dim * 2 * self.config.width


def native_pass_flops(
    config: DiTConfig, *, latent_rows: int, token_rows: int, past_keys: int, out_rows: int, batch: int
) -> float:
    """Analytic FLOPs of one :class:`DiT` pass (cross-attention K/V excluded: ``DiT.cross_flops``).

    ``latent_rows`` + ``token_rows`` query rows run through every layer, attending to
    ``past_keys`` cached keys plus themselves; ``out_rows`` rows go through the output head.
    """
    d, latent, cond = config.width, config.codec.latent_dim, config.cond_dim
    hidden = config.mlp_mult * d
    q = latent_rows + token_rows
    keys = past_keys + q
    embed = 2.0 * latent_rows * (latent * d + (latent + 1) * d)  # in_proj + mask_embed
    token = 2.0 * token_rows * (TIME_FEATURES * d + d * d + cond * d)  # time MLP + global proj
    per_layer = (
        2.0 * q * d * 3 * d  # qkv
        + 4.0 * q * keys * d  # QK^T and AV (all heads)
        + 2.0 * q * d * d  # attn out
        + 2.0 * q * d * d  # cross q
        + 4.0 * q * config.cond_tokens * d  # cross QK^T and AV
        + 2.0 * q * d * d  # cross out
        + 2.0 * q * d * hidden * 3  # gated MLP (gate, up, down)
    )
    head = 2.0 * out_rows * d * latent
    return batch * (embed + token + config.depth * per_layer + head)


# ------------------------------------------------------------------------------ construction
def _init_parameters(model: DiT, seed: int, device: torch.device, dtype: torch.dtype) -> None:
    """Seeded init, independent of device, dtype and parameter order: each tensor is drawn on the
    CPU in float32 from its own generator (seeded by (seed, parameter name)), then copied."""
    residual_scale = 1.0 / math.sqrt(2.0 * max(1, model.config.depth))
    for module_name, module in model.named_modules():
        for param_name, param in module.named_parameters(recurse=False):
            name = f"{module_name}.{param_name}" if module_name else param_name
            gen = torch.Generator().manual_seed(stable_hash("dit-init", int(seed), name))
            shape = tuple(param.shape)
            if isinstance(module, nn.LayerNorm):
                base = 1.0 if param_name == "weight" else 0.0
                value = base + 0.02 * torch.randn(shape, generator=gen)
            elif param_name == "bias":
                value = 0.02 * torch.randn(shape, generator=gen)
            else:  # Linear weight (out, in)
                value = torch.randn(shape, generator=gen) / math.sqrt(shape[1])
                if module_name.endswith(("attn_out", "cross_out", "mlp_down")):
                    value = value * residual_scale
            with torch.no_grad():
                param.copy_(value.to(device=device, dtype=dtype))


def _describe(config: DiTConfig) -> str:
    """The DiT that ``config`` builds, as named in a checkpoint mismatch."""
    return (f"the DiT built from the dit.* fields (width {config.width}, depth {config.depth}, heads {config.heads}, "
            f"mlp_mult {config.mlp_mult}, latent dim {config.codec.latent_dim}, cond_dim {config.cond_dim})")


def build_dit(config: DiTConfig, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
              regime: str = "outpaint") -> DiT:
    """The backbone on ``device`` in ``dtype``: loaded from ``config.weights`` when set (resolved for
    ``regime``: see baselines/weights.py; the default is the bidirectional base model), otherwise
    seeded from ``config.init_seed``. On the meta device nothing is initialised or loaded (shapes
    only, for parameter counts). Never touches the global RNG."""
    device = torch.device(device)
    if not dtype.is_floating_point:
        raise ConfigError(f"dtype must be a floating dtype, got {dtype}")
    with torch.device("meta"):
        model = DiT(config)
    if device.type == "meta":
        if config.weights:
            log.info("dit.weights %r not loaded: the meta device holds shapes only", config.weights)
        return model.to(dtype=dtype).eval()
    model = model.to_empty(device=device).to(dtype=dtype)
    weights = resolve_weights("dit.weights", config.weights, regime)
    if weights:
        load_checkpoint("dit.weights", weights, model, _describe(config))  # cast to the model's device/dtype
    else:
        _init_parameters(model, config.init_seed, device, dtype)
    model.requires_grad_(False)
    return model.eval()


def parameter_count(config: DiTConfig) -> int:
    """Closed-form parameter count of :class:`DiT` for ``config``."""
    d, dh, latent, cond = config.width, config.width // config.heads, config.codec.latent_dim, config.cond_dim
    hidden = config.mlp_mult * d
    per_block = (
        2 * d * 3  # three LayerNorms (weight + bias)
        + 3 * d * d + 4 * dh  # qkv + q/k norms
        + d * d  # attn_out
        + d * d + 2 * cond * d + 4 * dh + d * d  # cross q, kv, norms, out
        + 2 * (d * hidden + hidden) + hidden * d + d  # gated MLP
    )
    stem = (latent * d + d) + ((latent + 1) * d + d) + (TIME_FEATURES * d + d) + (d * d + d) + (cond * d + d)
    head = 2 * d + d * latent + latent
    return stem + config.depth * per_block + head


__all__ = ["DiT", "DiTBlock", "build_dit", "parameter_count", "native_pass_flops", "TIME_FEATURES"]
