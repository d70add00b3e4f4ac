"""stable-audio-tools' ``DiffusionTransformer`` ("sat" arch), behind the interface the regimes call.

``--set dit.arch=sat --set dit.config=model_config.json --set dit.weights=model.safetensors`` runs
outpaint, lmdm-encdec and lmdm-causal on a real stable-audio-tools checkpoint (Stable Audio Open
Small, or an LMDM checkpoint from the authors' modified stable-audio-tools). Module names equal
stable-audio-tools', so its state dict loads with ``strict=True``; ``tests/baselines/test_sat_dit.py``
builds stable-audio-tools' own DiT from the same config and requires equal outputs.

What one full-window pass computes (stable-audio-tools 0.0.20, ``continuous_transformer``,
``global_cond_type="prepend"``, ``timestep_cond_type="global"``, ``patch_size=1``):
  x = [noisy latents | input_concat channels]                              (N, S, Din)
  x = x + preprocess_conv(x)          (a 1x1 convolution, i.e. a Din x Din matrix per row)
  h = project_in(x) [+ to_input_add_embed(input_add channels)]              (N, S, d)
  token = to_timestep_embed(fourier(t)) [+ to_global_embed(global cond)]  prepended at position 0
  every layer: pre_norm -> self-attention (qk-LayerNorm, partial RoPE on the first
  max(Dh/2, 32) dims of each head) -> cross_attend_norm -> cross-attention to
  to_cond_embed(cond tokens) (qk-LayerNorm, no RoPE) -> ff_norm -> GLU feed-forward (SiLU gate)
  out = project_out(h[rows]);  v = out + postprocess_conv(out)
The LMDM release adds ``input_add_dims`` (the clean context through an added embedding),
``split_qkv`` (``to_q`` + ``to_kv`` instead of ``to_qkv``: loaded by concatenation) and
``postpend`` (the token stored last with its RoPE rolled to position 0: the same computation).

Our windows keep the token as the LAST row (the regimes' layout); its RoPE position is what makes
it stable-audio-tools' prepended token: rows sit at ``origin + 1 ..`` and the token at ``origin``
(:meth:`SatDiT.window_positions`), which is exactly stable-audio-tools' ``0 .. S`` for a window at
``origin = 0``. Attention is permutation-equivariant given the positions, so the row order does not
change any output.

Not supported (a ConfigError names the key): adaLN global conditioning, ``input_concat``
timestep conditioning, patching, memory tokens, absolute/sinusoidal positions, conformer, layer
scale, differential attention, LoRA, local-add conditioning, and conditioning ids whose channels
the streaming regimes do not produce (only ``inpaint_mask`` and ``inpaint_masked_input``).
The autoencoder (``pretransform``) is NOT loaded: the DiT runs on the preset codec's latents, so a
real checkpoint's latency is its own but its audio is not (docs/diffusion.md, "Real checkpoints").
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from baselines.attention import KVBuffer, KVCache, PastLayer, apply_rope, rope_tables
from baselines.weights import check_checkpoint, read_checkpoint
from bench.core.errors import ConfigError
from bench.core.hashing import stable_hash
from bench.core.presets import DiTConfig

log = logging.getLogger(__name__)

BUILTIN_CONFIGS = {"sao-small": Path(__file__).parent / "configs" / "sao_small_dit.json"}
# conditioning ids the streaming regimes produce, and their channels per latent row
INPAINT_MASK, INPAINT_MASKED = "inpaint_mask", "inpaint_masked_input"
# diffusion.config keys that change nothing at inference (initialisation, training-only switches)
_INERT_KEYS = {"zero_init_branch_outputs", "use_checkpointing", "cond_dropout_prob"}
_HANDLED_KEYS = {
    "io_channels", "embed_dim", "depth", "num_heads", "cond_token_dim", "project_cond_tokens", "global_cond_dim",
    "project_global_cond", "input_concat_dim", "input_add_dims", "patch_size", "transformer_type",
    "global_cond_type", "timestep_cond_type", "timestep_features_type", "timestep_features_dim",
    "attn_kwargs", "ff_kwargs", "postpend", "split_qkv", "rotary_pos_emb",
}
# required value of keys that only have one supported setting
_FIXED = {"patch_size": 1, "transformer_type": "continuous_transformer", "global_cond_type": "prepend",
          "timestep_cond_type": "global", "timestep_features_type": "learned", "rotary_pos_emb": True}


# ------------------------------------------------------------------------------- the config
@dataclass(frozen=True)
class SatSpec:
    """What a stable-audio-tools model config says about its DiT (only what changes the math)."""

    source: str  # the JSON it came from
    io_channels: int
    embed_dim: int
    depth: int
    num_heads: int
    cond_token_dim: int
    cond_embed_dim: int  # cond_token_dim, or embed_dim when the tokens are projected
    global_cond_dim: int  # 0: no global conditioning
    global_embed_dim: int
    input_concat: tuple[str, ...]  # ids concatenated to the noisy latents as channels
    input_add: tuple[str, ...]  # ids entering through to_input_add_embed (LMDM)
    qk_norm: str  # "ln" or "none"
    qk_norm_eps: float
    ff_mult: float
    ff_bias: bool
    ff_glu: bool
    timestep_features_dim: int
    objective: str
    sample_rate: int
    downsampling_ratio: int  # of its autoencoder (0 = not stated)

    @property
    def head_dim(self) -> int:
        return self.embed_dim // self.num_heads

    @property
    def rotary_dim(self) -> int:
        """Dims of each head that RoPE rotates (stable-audio-tools: ``max(Dh // 2, 32)``)."""
        return max(self.head_dim // 2, 32)

    @property
    def ff_hidden(self) -> int:
        return int(self.embed_dim * self.ff_mult)

    def channels(self, cond_id: str) -> int:
        return 1 if cond_id == INPAINT_MASK else self.io_channels


def resolve_config_path(value: str) -> Path:
    """``dit.config`` -> the JSON file (``builtin:<name>`` names one shipped in baselines/configs)."""
    if value.startswith("builtin:"):
        name = value.split(":", 1)[1]
        if name not in BUILTIN_CONFIGS:
            raise ConfigError(f"dit.config: unknown builtin {value!r}; known: "
                              + ", ".join(f"builtin:{n}" for n in BUILTIN_CONFIGS))
        return BUILTIN_CONFIGS[name]
    return Path(value)


def load_sat_spec(value: str) -> SatSpec:
    """Parse ``dit.config`` (a stable-audio-tools ``model_config.json``). ConfigError naming the file
    and the key for anything missing, malformed or not supported by the streaming regimes."""
    path = resolve_config_path(value)
    if not path.is_file():
        raise ConfigError(f"dit.config: {str(path)!r} does not exist; give the checkpoint's stable-audio-tools "
                          "model_config.json (or builtin:sao-small)")
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"dit.config: cannot read {str(path)!r} as JSON ({exc})") from exc
    return parse_sat_config(doc, str(path))


def parse_sat_config(doc: dict[str, Any], source: str = "<dict>") -> SatSpec:
    """A :class:`SatSpec` from a parsed model config (see :func:`load_sat_spec`)."""

    def bad(message: str) -> ConfigError:
        return ConfigError(f"dit.config {source!r}: {message}")

    try:
        diffusion = doc["model"]["diffusion"]
        cfg = dict(diffusion["config"])
    except (KeyError, TypeError):
        raise bad("no model.diffusion.config section; is this a stable-audio-tools diffusion model config?") from None
    if diffusion.get("type", "dit") != "dit":
        raise bad(f"model.diffusion.type is {diffusion.get('type')!r}; only 'dit' runs in the diffusion regimes")
    unknown = sorted(set(cfg) - _HANDLED_KEYS - _INERT_KEYS)
    if unknown:
        raise bad(f"unsupported DiT option(s) {unknown} (dit.arch=sat implements: {sorted(_HANDLED_KEYS)})")
    for key, value in _FIXED.items():
        if key in cfg and cfg[key] != value:
            raise bad(f"{key}={cfg[key]!r} is not supported (only {value!r})")
    objective = diffusion.get("diffusion_objective", "v")
    if objective not in ("rectified_flow", "rf_denoiser"):
        raise bad(f"diffusion_objective {objective!r}: the suite's samplers integrate a rectified-flow velocity "
                  "(rectified_flow or rf_denoiser)")
    try:
        io, width, depth, heads = (int(cfg[k]) for k in ("io_channels", "embed_dim", "depth", "num_heads"))
    except KeyError as exc:
        raise bad(f"model.diffusion.config lacks {exc.args[0]!r}") from None
    if width % heads:
        raise bad(f"embed_dim {width} is not divisible by num_heads {heads}")
    if width // heads < 32:
        raise bad(f"head dim {width // heads} < 32: stable-audio-tools' RoPE rotates max(head_dim / 2, 32) dims "
                  "and fails on narrower heads")
    cond_dim = int(cfg.get("cond_token_dim", 0))
    if cond_dim <= 0:
        raise bad("cond_token_dim must be > 0: the regimes condition through cross-attention")
    cond_embed = width if cfg.get("project_cond_tokens", True) else cond_dim
    if cond_embed % (width // heads) or heads % (cond_embed // (width // heads)):
        raise bad(f"cross-attention context width {cond_embed} gives a head count that does not divide {heads}")
    global_dim = int(cfg.get("global_cond_dim", 0))
    global_embed = (width if cfg.get("project_global_cond", True) else global_dim) if global_dim else 0
    if global_dim and global_embed != width:
        raise bad("global conditioning must be projected to embed_dim (project_global_cond=true) to be prepended")
    if global_dim and global_dim != cond_dim:
        raise bad(f"global_cond_dim ({global_dim}) must equal cond_token_dim ({cond_dim}): the global condition is "
                  "the pooled prompt token")

    concat_ids = tuple(diffusion.get("input_concat_ids", ()))
    add_pairs = cfg.get("input_add_dims", [])
    add_ids = tuple(str(pair[0]) for pair in add_pairs)
    for cond_id in concat_ids + add_ids:
        if cond_id not in (INPAINT_MASK, INPAINT_MASKED):
            raise bad(f"conditioning id {cond_id!r}: the streaming regimes only produce {INPAINT_MASK!r} and "
                      f"{INPAINT_MASKED!r} per latent row")
    spec_channels = {INPAINT_MASK: 1, INPAINT_MASKED: io}
    concat_dim = int(cfg.get("input_concat_dim", 0))
    if concat_dim != sum(spec_channels[i] for i in concat_ids):
        raise bad(f"input_concat_dim {concat_dim} does not match input_concat_ids {list(concat_ids)} "
                  f"({sum(spec_channels[i] for i in concat_ids)} channels)")
    for cond_id, dim in ((str(p[0]), int(p[1])) for p in add_pairs):
        if dim != spec_channels[cond_id]:
            raise bad(f"input_add_dims gives {cond_id!r} {dim} channels; it has {spec_channels[cond_id]}")
    attn = dict(cfg.get("attn_kwargs", {}))
    qk_norm = attn.pop("qk_norm", "none")
    qk_eps = float(attn.pop("qk_norm_eps", 1e-6))
    for key in ("differential", "feat_scale"):
        if attn.pop(key, False):
            raise bad(f"attn_kwargs.{key} is not supported")
    if attn:
        raise bad(f"unsupported attn_kwargs {sorted(attn)}")
    if qk_norm not in ("ln", "none"):
        raise bad(f"attn_kwargs.qk_norm={qk_norm!r} is not supported (only 'ln' or 'none')")
    ff = dict(cfg.get("ff_kwargs", {}))
    ff_mult, ff_no_bias, ff_glu = float(ff.pop("mult", 4)), bool(ff.pop("no_bias", False)), bool(ff.pop("glu", True))
    if ff.pop("use_conv", False) or ff:
        raise bad(f"unsupported ff_kwargs {sorted(set(cfg.get('ff_kwargs', {})) - {'mult', 'no_bias', 'glu'})}")
    pretransform = doc.get("model", {}).get("pretransform") or {}
    ratio = int((pretransform.get("config") or {}).get("downsampling_ratio", 0) or 0)
    return SatSpec(
        source=source, io_channels=io, embed_dim=width, depth=depth, num_heads=heads, cond_token_dim=cond_dim,
        cond_embed_dim=cond_embed, global_cond_dim=global_dim, global_embed_dim=global_embed,
        input_concat=concat_ids, input_add=add_ids, qk_norm=qk_norm, qk_norm_eps=qk_eps, ff_mult=ff_mult,
        ff_bias=not ff_no_bias, ff_glu=ff_glu, timestep_features_dim=int(cfg.get("timestep_features_dim", 256)),
        objective=objective, sample_rate=int(doc.get("sample_rate", 0) or 0), downsampling_ratio=ratio,
    )


# ------------------------------------------------------------------------------- the modules
class SatLayerNorm(nn.Module):
    """stable-audio-tools' bias-less LayerNorm: a learned ``gamma``, a zero ``beta`` buffer."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(dim))
        self.register_buffer("beta", torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, x.shape[-1:], weight=self.gamma, bias=self.beta, eps=1e-5)


class SatAttention(nn.Module):
    """Self-attention (``to_qkv``) or cross-attention (``to_q`` + ``to_kv`` over a context)."""

    def __init__(self, spec: SatSpec, context_dim: int | None = None) -> None:
        super().__init__()
        d, dh = spec.embed_dim, spec.head_dim
        self.heads, self.head_dim = spec.num_heads, dh
        if context_dim is None:
            self.to_qkv = nn.Linear(d, 3 * d, bias=False)
            self.kv_heads = self.heads
        else:
            self.to_q = nn.Linear(d, d, bias=False)
            self.to_kv = nn.Linear(context_dim, 2 * context_dim, bias=False)
            self.kv_heads = context_dim // dh
        self.to_out = nn.Linear(d, d, bias=False)
        self.qk_norm = spec.qk_norm == "ln"
        if self.qk_norm:
            self.q_norm = nn.LayerNorm(dh, eps=spec.qk_norm_eps)
            self.k_norm = nn.LayerNorm(dh, eps=spec.qk_norm_eps)

    def split(self, x: torch.Tensor, heads: int) -> torch.Tensor:
        n, s, _ = x.shape
        return x.view(n, s, heads, self.head_dim).transpose(1, 2)  # (N, H, S, Dh)

    def norm_q(self, q: torch.Tensor) -> torch.Tensor:
        return self.q_norm(q) if self.qk_norm else q

    def norm_k(self, k: torch.Tensor) -> torch.Tensor:
        return self.k_norm(k) if self.qk_norm else k

    def context_keys_values(self, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Cross-attention K (normed) and V of ``context`` (N, Nc, ctx), repeated to every query head:
        (N, H, Nc, Dh) each."""
        k, v = self.to_kv(context).chunk(2, dim=-1)
        k, v = self.norm_k(self.split(k, self.kv_heads)), self.split(v, self.kv_heads)
        if self.kv_heads != self.heads:  # grouped-query attention, as stable-audio-tools repeats
            repeat = self.heads // self.kv_heads
            k, v = k.repeat_interleave(repeat, dim=1), v.repeat_interleave(repeat, dim=1)
        return k, v

    def merge(self, a: torch.Tensor) -> torch.Tensor:
        n, _, s, _ = a.shape
        return self.to_out(a.transpose(1, 2).reshape(n, s, self.heads * self.head_dim))


class SatGLU(nn.Module):
    def __init__(self, dim: int, hidden: int, bias: bool = True) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, 2 * hidden, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = self.proj(x).chunk(2, dim=-1)
        return value * F.silu(gate)


class SatFeedForward(nn.Module):
    """``ff.ff = [GLU | Linear+SiLU, Identity, Linear]`` as stable-audio-tools names it."""

    def __init__(self, spec: SatSpec) -> None:
        super().__init__()
        d, hidden = spec.embed_dim, spec.ff_hidden
        first: nn.Module
        if spec.ff_glu:
            first = SatGLU(d, hidden)  # its GLU projection always has a bias
        else:
            first = nn.Sequential(nn.Identity(), nn.Linear(d, hidden, bias=spec.ff_bias), nn.Identity(), nn.SiLU())
        self.ff = nn.Sequential(first, nn.Identity(), nn.Linear(hidden, d, bias=spec.ff_bias))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ff(x)


class SatBlock(nn.Module):
    def __init__(self, spec: SatSpec) -> None:
        super().__init__()
        self.pre_norm = SatLayerNorm(spec.embed_dim)
        self.self_attn = SatAttention(spec)
        self.cross_attend_norm = SatLayerNorm(spec.embed_dim)
        self.cross_attn = SatAttention(spec, context_dim=spec.cond_embed_dim)
        self.ff_norm = SatLayerNorm(spec.embed_dim)
        self.ff = SatFeedForward(spec)

    def forward(
        self,
        h: torch.Tensor,  # (N, S, d)
        cos: torch.Tensor,  # (S, R): R = rotary dims
        sin: torch.Tensor,
        attn_mask: torch.Tensor | None,  # (S, P + S) bool
        cross_k: torch.Tensor,  # (N, H, Nc, Dh)
        cross_v: torch.Tensor,
        past: PastLayer | None = None,  # P cached tokens (normed and rotated)
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        attn = self.self_attn
        q, k, v = attn.to_qkv(self.pre_norm(h)).chunk(3, dim=-1)
        q = apply_rope(attn.norm_q(attn.split(q, attn.heads)), cos, sin)
        k = apply_rope(attn.norm_k(attn.split(k, attn.heads)), cos, sin)
        v = attn.split(v, attn.heads)
        keys, values = past.extend(k, v) if past is not None else (k, v)  # (N, H, P + S, Dh)
        h = h + attn.merge(F.scaled_dot_product_attention(q, keys, values, attn_mask=attn_mask))
        cross = self.cross_attn
        cq = cross.norm_q(cross.split(cross.to_q(self.cross_attend_norm(h)), cross.heads))
        h = h + cross.merge(F.scaled_dot_product_attention(cq, cross_k, cross_v))
        h = h + self.ff(self.ff_norm(h))
        return h, k, v


class SatRotary(nn.Module):
    """Holds ``inv_freq`` as stable-audio-tools stores it (a state-dict buffer), so a checkpoint's
    own frequencies are the ones used."""

    def __init__(self, rotary_dim: int) -> None:
        super().__init__()
        self.register_buffer("inv_freq", rotary_inv_freq(rotary_dim))


def rotary_inv_freq(rotary_dim: int, base: float = 10000.0) -> torch.Tensor:
    return 1.0 / (base ** (torch.arange(0, rotary_dim, 2).float() / rotary_dim))  # (R/2,)


class SatTransformer(nn.Module):
    def __init__(self, spec: SatSpec) -> None:
        super().__init__()
        dim_in = spec.io_channels + sum(spec.channels(i) for i in spec.input_concat)
        self.project_in = nn.Linear(dim_in, spec.embed_dim, bias=False)
        self.project_out = nn.Linear(spec.embed_dim, spec.io_channels, bias=False)
        self.rotary_pos_emb = SatRotary(spec.rotary_dim)
        self.layers = nn.ModuleList(SatBlock(spec) for _ in range(spec.depth))


class SatFourierFeatures(nn.Module):
    """Random Fourier features of t (stable-audio-tools keeps ``weight`` as a buffer)."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.register_buffer("weight", torch.zeros(features // 2, 1))

    def forward(self, t: torch.Tensor) -> torch.Tensor:  # (N, 1) -> (N, F)
        f = 2 * math.pi * t @ self.weight.T
        return torch.cat([f.cos(), f.sin()], dim=-1)


def _mlp(dim_in: int, dim_out: int, bias: bool) -> nn.Sequential:
    return nn.Sequential(nn.Linear(dim_in, dim_out, bias=bias), nn.SiLU(), nn.Linear(dim_out, dim_out, bias=bias))


class SatDiT(nn.Module):
    """The backbone; same methods as :class:`baselines.dit.DiT`. Build with :func:`build_sat_dit`."""

    token_first = True  # its timestep/global token sits before the window's rows (RoPE position)

    def __init__(self, config: DiTConfig, spec: SatSpec) -> None:
        super().__init__()
        self.config, self.spec = config, spec
        self.width, self.heads, self.head_dim = spec.embed_dim, spec.num_heads, spec.head_dim
        self.latent_dim, self.rotary_dim = spec.io_channels, spec.rotary_dim
        self.cond_dim = spec.cond_token_dim  # width of the conditioning tokens it reads
        self.timestep_features = SatFourierFeatures(spec.timestep_features_dim)
        self.to_timestep_embed = _mlp(spec.timestep_features_dim, spec.embed_dim, bias=True)
        self.to_cond_embed = nn.Sequential(
            nn.Linear(spec.cond_token_dim, spec.cond_embed_dim, bias=False), nn.SiLU(),
            nn.Linear(spec.cond_embed_dim, spec.cond_embed_dim, bias=False),
        )
        if spec.global_cond_dim:
            self.to_global_embed = _mlp(spec.global_cond_dim, spec.global_embed_dim, bias=False)
        if spec.input_add:
            add_dim = sum(spec.channels(i) for i in spec.input_add)
            self.to_input_add_embed = nn.Linear(add_dim, spec.embed_dim, bias=False)
        self.transformer = SatTransformer(spec)
        dim_in = self.transformer.project_in.in_features
        self.preprocess_conv = nn.Conv1d(dim_in, dim_in, 1, bias=False)
        self.postprocess_conv = nn.Conv1d(spec.io_channels, spec.io_channels, 1, bias=False)

    @property
    def blocks(self) -> nn.ModuleList:
        return self.transformer.layers

    # ----------------------------------------------------------------------------- positions
    def window_positions(self, row_start: int, row_stop: int, origin: int, token: bool) -> torch.Tensor:
        """RoPE positions (float64) of rows ``row_start .. row_stop - 1`` of a window whose first row is at
        ``origin``, followed (``token``) by the timestep token's: rows one past their index (the token
        is stable-audio-tools' prepended position 0 of the window). On the host: callers upload them."""
        rows = torch.arange(row_start + 1, row_stop + 1, dtype=torch.float64, device="cpu")
        return torch.cat([rows, torch.tensor([float(origin)], dtype=torch.float64, device="cpu")]) if token else rows

    def rope(self, positions: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """(cos, sin) tables (S, R) of ``positions`` with the model's own ``inv_freq``."""
        return rope_tables(positions, self.transformer.rotary_pos_emb.inv_freq, dtype)

    # -------------------------------------------------------------------------------- inputs
    def _conditioning_rows(self, ids: tuple[str, ...], mask: torch.Tensor, masked: torch.Tensor) -> list[torch.Tensor]:
        return [mask if cond_id == INPAINT_MASK else masked for cond_id in ids]

    def embed(self, noisy: torch.Tensor, mask: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
        """Latent rows -> hidden rows. noisy (N, S, D), mask (N, S, 1), masked (N, S, D) -> (N, S, d)."""
        x = torch.cat([noisy, *self._conditioning_rows(self.spec.input_concat, mask, masked)], dim=-1)  # (N, S, Din)
        x = x + F.linear(x, self.preprocess_conv.weight[:, :, 0])
        h = self.transformer.project_in(x)
        if self.spec.input_add:
            h = h + self.to_input_add_embed(torch.cat(self._conditioning_rows(self.spec.input_add, mask, masked), -1))
        return h

    def time_token(self, t: torch.Tensor, pooled: torch.Tensor) -> torch.Tensor:
        """t (N,) and the pooled prompt token (N, cond_dim) -> the prepended token (N, 1, d)."""
        features = self.timestep_features(t.to(pooled.dtype)[:, None])
        token = self.to_timestep_embed(features)
        if self.spec.global_cond_dim:
            token = self.to_global_embed(pooled) + token
        return token[:, None, :]

    def cross_cache(self, cond: torch.Tensor) -> KVCache:
        """Cross-attention K/V of every layer for cond (N, Nc, cond_dim): (L, N, H, Nc, Dh)."""
        context = self.to_cond_embed(cond)
        return KVCache.stack([layer.cross_attn.context_keys_values(context) for layer in self.blocks])

    # -------------------------------------------------------------------------------- layers
    def run(
        self,
        h: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        attn_mask: torch.Tensor | None,
        cross: KVCache,
        past: KVCache | KVBuffer | None = None,
        return_kv: bool = False,
    ) -> tuple[torch.Tensor, KVCache | None]:
        """All layers over the rows ``h`` (as :meth:`baselines.dit.DiT.run`)."""
        fresh: list[tuple[torch.Tensor, torch.Tensor]] = []
        for index, block in enumerate(self.blocks):
            past_layer = past.past_layer(index) if past is not None else None
            h, k, v = block(h, cos, sin, attn_mask, *cross.layer(index), past_layer)
            if return_kv:
                fresh.append((k, v))
        return h, (KVCache.stack(fresh) if return_kv else None)

    def head(self, h: torch.Tensor) -> torch.Tensor:
        """Hidden rows (N, S, d) -> velocity (N, S, D)."""
        out = self.transformer.project_out(h)
        return out + F.linear(out, self.postprocess_conv.weight[:, :, 0])

    def forward(self, noisy: torch.Tensor, mask: torch.Tensor, masked: torch.Tensor, t: torch.Tensor,
                cond: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        """A plain uncached pass over a whole window, token last: velocity (N, S, D)."""
        h = torch.cat([self.embed(noisy, mask, masked), self.time_token(t, cond[:, -1])], dim=1)
        h, _ = self.run(h, cos, sin, attn_mask, self.cross_cache(cond))
        return self.head(h[:, :-1])

    # --------------------------------------------------------------------------------- FLOPs
    def pass_flops(self, *, latent_rows: int, token_rows: int, past_keys: int, out_rows: int, cond_tokens: int,
                   batch: int) -> float:
        """Analytic FLOPs of one pass (``2 m n k`` per matmul; attention dense over every key given)."""
        s = self.spec
        d, hidden = s.embed_dim, s.ff_hidden
        q, keys = latent_rows + token_rows, past_keys + latent_rows + token_rows
        dim_in = self.transformer.project_in.in_features
        embed = 2.0 * latent_rows * (dim_in * dim_in + dim_in * d)
        if s.input_add:
            embed += 2.0 * latent_rows * self.to_input_add_embed.in_features * d
        token = 2.0 * token_rows * (s.timestep_features_dim // 2 + s.timestep_features_dim * d + d * d)
        if s.global_cond_dim:
            token += 2.0 * token_rows * (s.global_cond_dim * d + d * d)
        ff = 2.0 * q * d * hidden * (2 if s.ff_glu else 1) + 2.0 * q * hidden * d
        per_layer = (
            2.0 * q * d * 3 * d + 4.0 * q * keys * d + 2.0 * q * d * d  # qkv, QK^T + AV, out
            + 2.0 * q * d * d + 4.0 * q * cond_tokens * d + 2.0 * q * d * d  # cross q, QK^T + AV, out
            + ff
        )
        head = 2.0 * out_rows * (d * s.io_channels + s.io_channels * s.io_channels)
        return batch * (embed + token + s.depth * per_layer + head)

    def cross_flops(self, cond_tokens: int, batch: int) -> float:
        """FLOPs of projecting the prompt tokens (to_cond_embed) and every layer's cross K/V."""
        s = self.spec
        project = 2.0 * cond_tokens * (s.cond_token_dim * s.cond_embed_dim + s.cond_embed_dim * s.cond_embed_dim)
        per_layer = 2.0 * cond_tokens * s.cond_embed_dim * 2 * s.cond_embed_dim
        return batch * (project + s.depth * per_layer)


# ------------------------------------------------------------------------------ construction
def _init_parameters(model: SatDiT, seed: int) -> None:
    """Seeded, non-degenerate init (every tensor drawn on the CPU from its own generator). Unlike
    stable-audio-tools' init, no branch output is zero: a random model's passes then exercise every
    layer, which is what the equivalence tests need."""
    depth = max(1, model.spec.depth)
    for name, tensor in list(model.named_parameters()) + list(model.named_buffers()):
        gen = torch.Generator().manual_seed(stable_hash("sat-dit-init", int(seed), name))
        shape = tuple(tensor.shape)
        if name.endswith("inv_freq"):
            value = rotary_inv_freq(model.rotary_dim)
        elif name.endswith("beta"):
            value = torch.zeros(shape)
        elif name == "timestep_features.weight":
            value = torch.randn(shape, generator=gen)  # stable-audio-tools draws std 16; 1 keeps t smooth
        elif name.endswith(("gamma", "norm.weight")):
            value = 1.0 + 0.02 * torch.randn(shape, generator=gen)
        elif name.endswith("bias"):
            value = 0.02 * torch.randn(shape, generator=gen)
        else:  # Linear (out, in) or 1x1 Conv (out, in, 1)
            value = torch.randn(shape, generator=gen) / math.sqrt(shape[1])
            if name.endswith(("to_out.weight", "ff.ff.2.weight")):
                value = value / math.sqrt(2.0 * depth)
            if "process_conv" in name:
                value = 0.1 * value
        with torch.no_grad():
            tensor.copy_(value.to(device=tensor.device, dtype=tensor.dtype))


def read_sat_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """The DiT's tensors of a stable-audio-tools checkpoint (``.safetensors``, or a Lightning
    ``.ckpt`` read with ``weights_only=True``), keyed as :class:`SatDiT` names them: the wrapper
    prefixes (``model.model.``, ``model.``) stripped, the conditioner and autoencoder dropped, split
    ``to_q`` + ``to_kv`` self-attention projections (LMDM's cache form) concatenated into ``to_qkv``."""
    path = Path(path)
    if path.suffix == ".ckpt":
        if not path.is_file():
            raise ConfigError(f"dit.weights: checkpoint {str(path)!r} does not exist")
        try:
            raw = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - a bad file is a config problem
            raise ConfigError(f"dit.weights: cannot read {str(path)!r} ({exc}); is it a stable-audio-tools "
                              "checkpoint?") from exc
        tensors = raw.get("state_dict", raw) if isinstance(raw, dict) else {}
    else:
        tensors = read_checkpoint("dit.weights", path)
    prefixes = ("model.model.", "model.", "")
    for prefix in prefixes:  # the longest prefix under which the DiT's own keys appear
        if any(k.startswith(prefix + "transformer.layers.") for k in tensors):
            break
    else:
        raise ConfigError(f"dit.weights: {str(path)!r} holds no stable-audio-tools DiT (no "
                          "'transformer.layers.*' keys under model.model., model. or the root)")
    out = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)
           and not k[len(prefix):].startswith(("conditioner.", "pretransform.", "model."))}
    for key in [k for k in out if k.endswith("self_attn.to_q.weight")]:
        stem = key[: -len("to_q.weight")]
        if stem + "to_kv.weight" in out:
            out[stem + "to_qkv.weight"] = torch.cat([out.pop(key), out.pop(stem + "to_kv.weight")], dim=0)
    return out


def build_sat_dit(config: DiTConfig, device: torch.device | str = "cpu",
                  dtype: torch.dtype = torch.float32) -> SatDiT:
    """The sat backbone for ``config`` (``dit.config`` parsed; ``dit.weights`` loaded when set,
    otherwise seeded from ``dit.init_seed``). ConfigError when the config and the preset's codec
    disagree (latent channels) or the checkpoint does not fit."""
    if not config.config:
        raise ConfigError("dit.arch=sat needs dit.config: the checkpoint's stable-audio-tools model_config.json "
                          "(or builtin:sao-small for Stable Audio Open Small's published shape)")
    spec = load_sat_spec(config.config)
    if spec.io_channels != config.codec.latent_dim:
        raise ConfigError(
            f"dit.config {spec.source!r} has io_channels={spec.io_channels}, but the preset's codec gives "
            f"{config.codec.latent_dim}-d latents; use a preset whose codec matches (sao-small: 64) or set "
            "dit.codec.latent_bins / dit.codec.channels so that latent_bins * channels equals io_channels"
        )
    device = torch.device(device)
    with torch.device("meta"):
        model = SatDiT(config, spec)
    if device.type == "meta":
        return model.to(dtype=dtype).eval()
    model = model.to_empty(device=device)
    if config.weights:
        tensors = read_sat_checkpoint(config.weights)
        check_checkpoint("dit.weights", config.weights, tensors, model.state_dict(),
                         f"the stable-audio-tools DiT of {spec.source!r}")
        model.load_state_dict(tensors, strict=True)
        log.info("dit.weights: loaded %d stable-audio-tools tensors from %s", len(tensors), config.weights)
    else:
        _init_parameters(model, config.init_seed)
    model = model.to(dtype=dtype)
    model.requires_grad_(False)
    return model.eval()


__all__ = ["SatSpec", "SatDiT", "load_sat_spec", "parse_sat_config", "build_sat_dit", "read_sat_checkpoint",
           "BUILTIN_CONFIGS"]
