"""Regime 4: the discrete autoregressive Live Music Model (Magenta RealTime v1 shaped), "lmm".

Per block (``B`` frames of ``Q`` RVQ levels, context of ``F`` frames):

1. ``encode`` (once): a bidirectional encoder over ``S`` style tokens and the context's first
   ``E`` RVQ levels, each (frame, level) its own token: ``N = S + F * E`` tokens (paper scale
   6 + 250 x 4 = 1006). Nothing is reused across blocks. The temporal decoder's cross-attention
   keys/values of the encoder output are projected here, once per block.
2. ``temporal`` (B times): one causal step per frame with a KV cache that lives for the block;
   its input is the sum of the previous frame's level embeddings; for the first frame, a learned
   start vector plus the embeddings of the last context frame's ``E`` levels (so the block
   starts from where the context ends: with only a start vector, a 2M-parameter model trained
   teacher-forced learned to copy the previous frame and ignored its context, measured as
   continuations whose chroma was unrelated to their contexts); it cross-attends to the encoder
   output.
3. ``depth`` (B times, one phase entry per frame): per frame, one causal step per RVQ level
   (``Q`` steps) with a KV cache that lives for the frame; input = temporal output + previous
   level's token embedding; each level has its own output head over the codebook. The token is
   sampled right there (temperature, top-k, classifier-free guidance by batch doubling with the
   style masked in the negative branch). One phase entry covers a frame's ``Q`` steps: on CUDA
   each entry records two timing events, which cost the host 26-34 us on an H200 (about 4 us
   once recorded on a stream looked up per step; docs/lmm.md), so an entry per step (``B * Q``,
   800 at paper scale) would inflate the block the LMM is judged by.
4. ``decode`` (once): tokens -> latents (RVQ codeword sums) -> audio with the codec, given the
   frame before the block. The block's tokens become the tail of the next block's context.

Sampling never reads a device value on the host: tokens are drawn with the exponential race
(``argmax(p / e)``, ``e ~ Exp(1)``; :mod:`baselines.token_sampler`), which is what
``torch.multinomial`` does for one sample, minus its host-side validity checks (those call
``.item()``). The race's random numbers of a frame's ``Q`` levels are drawn in one call at the
start of its depth phase, (Q, V), so that a compiled graph can run all of a frame's levels (on
the CPU one (Q, V) draw equals ``Q`` draws of one row; on CUDA it is a different stream).

``--compile`` runs the temporal pass and each frame's depth levels at static shapes instead
(:mod:`baselines.lmm_static`, docs/lmm.md "Compile mode").

Tokens share one embedding table with a row block per level (level ``l``, code ``c`` -> row
``l * codebook_size + c``), like a T5 vocabulary with per-level offsets; style ids have their own
table (id 0 = masked). Positions are fixed sinusoids, so parameter shapes do not depend on the
stream's context or block length.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file
import torch.nn.functional as F
from torch import nn

from baselines.codec import ResidualVQ
from baselines.codecs import make_codec
from baselines.conditioning import style_ids
from baselines.token_sampler import guide, race_argmax, race_noise, token_probs
from baselines.transformer import Stack, init_parameters, memory_kv_flops, sinusoids, stack_flops
from baselines.weights import load_checkpoint, resolve_weights
from bench.core.contract import (
    NULL_RECORDER,
    PhaseRecorder,
    StepInfo,
    StepResult,
    StreamingGenerator,
    StreamSpec,
    block_generator,
)
from bench.core.errors import ConfigError
from bench.core.phases import PHASE_DECODE, PHASE_DEPTH, PHASE_ENCODE, PHASE_TEMPORAL
from bench.core.presets import LMMConfig, Preset
from bench.core.settings import Control, StreamSettings

SAMPLE_PURPOSE = "lmm-sample"  # block_generator purpose of the token sampler
RVQ_CODEBOOKS_KEY = "rvq.codebooks"  # optional checkpoint entry: (levels, size, dim) codebooks


class LMMNet(nn.Module):
    """The weights: token/style embeddings, encoder, temporal decoder, depth decoder, level heads."""

    def __init__(self, cfg: LMMConfig, device: torch.device | str | None = None,
                 dtype: torch.dtype | None = None) -> None:
        super().__init__()
        d, kw = cfg.width, {"device": device, "dtype": dtype}
        self.token_embed = nn.Embedding(cfg.rvq_levels * cfg.codebook_size, d, **kw)
        self.style_embed = nn.Embedding(cfg.style_vocab, d, **kw)
        self.encoder = Stack(cfg.encoder_layers, d, cfg.heads, cfg.mlp_hidden, cross=False, **kw)
        self.temporal_start = nn.Parameter(torch.empty(d, **kw))
        self.temporal = Stack(cfg.temporal_layers, d, cfg.heads, cfg.mlp_hidden, cross=True, **kw)
        self.depth = Stack(cfg.depth_layers, d, cfg.heads, cfg.mlp_hidden, cross=False, **kw)
        self.codebook_size = cfg.codebook_size
        self.level_heads = None if cfg.tie_heads else nn.ModuleList(
            nn.Linear(d, cfg.codebook_size, bias=False, **kw) for _ in range(cfg.rvq_levels)
        )

    def level_logits(self, level: int, y: torch.Tensor) -> torch.Tensor:
        """Depth outputs (..., d) of RVQ level ``level`` -> logits (..., V): its own head, or with
        ``lmm.tie_heads`` the token embedding's rows of that level."""
        if self.level_heads is not None:
            return self.level_heads[level](y)
        v = self.codebook_size
        return F.linear(y, self.token_embed.weight[level * v:(level + 1) * v])


def lmm_parameter_count(cfg: LMMConfig) -> int:
    """Closed-form parameter count of :class:`LMMNet` (checks the module, and sizes the table)."""
    d, h, v, q = cfg.width, cfg.mlp_hidden, cfg.codebook_size, cfg.rvq_levels
    block = 4 * d * d + 3 * d * h + 2 * d  # self-attention, gated MLP, two norms
    cross = 4 * d * d + d  # cross-attention and its norm
    return (
        q * v * d + cfg.style_vocab * d + d  # embeddings + start vector
        + cfg.encoder_layers * block + d
        + cfg.temporal_layers * (block + cross) + d
        + cfg.depth_layers * block + d
        + (0 if cfg.tie_heads else q * d * v)  # level heads (tied: the token embedding's rows)
    )


@dataclass
class LMMState:
    """What carries from block to block (the KV caches live only inside a block)."""

    seed: int
    block_index: int
    context_tokens: torch.Tensor  # (context_frames, encoder_levels) int64
    last_latent: torch.Tensor  # (latent_dim,) float32: the frame before the next block (decode)


class LiveMusicModelGenerator(StreamingGenerator):
    """Encoder + temporal decoder + depth decoder over RVQ tokens (see the module docstring)."""

    name = "lmm"

    def __init__(self, preset: Preset, settings: StreamSettings, device: str | torch.device = "cpu",
                 dtype: torch.dtype = torch.float32) -> None:
        super().__init__(preset, settings, device, dtype)
        cfg: LMMConfig = preset.lmm
        self.cfg = cfg
        self.codec = make_codec(cfg.codec, device=self.device, dtype=torch.float32)
        self.rvq = ResidualVQ(dim=self.codec.latent_dim, levels=cfg.rvq_levels, size=cfg.codebook_size,
                              seed=cfg.init_seed, device=self.device)
        self.context_frames, self.block_frames = settings.frames(self.codec.frame_rate_hz)
        # top-k with k >= codebook size keeps every token: same as no top-k
        self.top_k = settings.top_k if settings.top_k < cfg.codebook_size else 0
        self.batch = 2 if settings.cfg else 1
        self.encoder_tokens = cfg.style_tokens + self.context_frames * cfg.encoder_levels
        self.model = self._build_model()
        dev, dt = self.device, self.dtype
        self._enc_pos = sinusoids(self.encoder_tokens, cfg.width, dev, dt)  # (N, d)
        self._temporal_pos = sinusoids(self.block_frames, cfg.width, dev, dt)  # (B, d)
        self._depth_pos = sinusoids(cfg.rvq_levels, cfg.width, dev, dt)  # (Q, d)
        self._level_offsets = torch.arange(cfg.rvq_levels, device=dev) * cfg.codebook_size  # (Q,)
        self._style_cache: dict[str, torch.Tensor] = {}  # prompt -> (b, S) ids on the device
        # the FLOP bookkeeping is Python arithmetic: done once here, never inside the timed step
        self._block_flops = {first: self.analytic_flops(first) for first in (True, False)}
        self._static: Any = None  # the compiled static-shape token passes (compile), else None

    # ------------------------------------------------------------------ construction
    def _build_model(self) -> LMMNet:
        if self.device.type == "meta":
            return LMMNet(self.cfg, device="meta", dtype=self.dtype)
        # build without touching the global RNG: shapes on meta, storage on the CPU, seeded init
        net = LMMNet(self.cfg, device="meta").to_empty(device="cpu")
        init_parameters(net, torch.Generator().manual_seed(self.cfg.init_seed))
        weights = resolve_weights("lmm.weights", self.cfg.weights, self.name)
        if weights:
            self._load_weights(net, weights)
        return net.to(device=self.device, dtype=self.dtype).eval()

    def _load_weights(self, net: LMMNet, path: str) -> None:
        cfg = self.cfg
        built_from = (f"the LMM built from the lmm.* fields (width {cfg.width}, heads {cfg.heads}, layers "
                      f"{cfg.encoder_layers}/{cfg.temporal_layers}/{cfg.depth_layers}, codebook {cfg.codebook_size}, "
                      f"levels {cfg.rvq_levels})")
        extras = load_checkpoint("lmm.weights", path, net, built_from, extra_keys=(RVQ_CODEBOOKS_KEY,))
        if RVQ_CODEBOOKS_KEY in extras:
            try:
                self.rvq.load_codebooks(extras[RVQ_CODEBOOKS_KEY].float())
            except ValueError as exc:
                raise ConfigError(f"lmm.weights: entry {RVQ_CODEBOOKS_KEY!r}: {exc}") from exc

    def save_weights(self, path: str | Path) -> None:
        """Write the model and RVQ codebooks as a safetensors file that ``lmm.weights`` loads."""
        tensors = {k: v.detach().float().cpu().contiguous() for k, v in self.model.state_dict().items()}
        tensors[RVQ_CODEBOOKS_KEY] = self.rvq.codebooks.float().cpu().contiguous()
        save_file(tensors, str(path))

    # ------------------------------------------------------------------ contract
    @property
    def spec(self) -> StreamSpec:
        rate = self.codec.frame_rate_hz
        return StreamSpec(
            regime=self.name,
            sample_rate=self.codec.sample_rate,
            channels=self.codec.channels,
            frame_rate_hz=rate,
            block_frames=self.block_frames,
            context_frames=self.context_frames,
            block_s=self.block_frames / rate,
            context_s=self.context_frames / rate,
        )

    def modules(self) -> list[torch.nn.Module]:
        return [self.model]

    def compile(self, mode: str) -> dict[str, Any]:
        """Compile the temporal pass and the depth frame (a frame's Q levels, draws included) at
        static shapes (:mod:`baselines.lmm_static`: device-side positions into caches of every
        slot, masked), one graph each, ``fullgraph=True``: a graph break or a recompilation past a
        few is an error, never a silent eager pass. Compilation happens at the first block (the
        warm-up). The encoder, the race noise (one draw per frame) and the decode stay eager
        (the record says so)."""
        from baselines.lmm_static import StaticTokenPasses  # noqa: PLC0415 - compile mode only

        self._static = StaticTokenPasses(self, compile_mode=mode)
        return self._static.record()

    def start(self, control: Control, seed: int, context_audio: np.ndarray | None = None) -> LMMState:
        """Quantise the context (silence when None) to ``encoder_levels`` RVQ tokens."""
        if self.device.type == "meta":
            raise ConfigError("device='meta' builds shapes only (parameter counts, analytic FLOPs); "
                              "use device='cpu' or 'cuda' to generate")
        with torch.no_grad():
            if context_audio is None:
                latents = torch.zeros(self.context_frames, self.codec.latent_dim, device=self.device)
            else:
                latents = self._context_latents(context_audio)  # (F, D)
            tokens = self.rvq.quantize(latents, levels=self.cfg.encoder_levels)  # (F, E)
        return LMMState(seed=int(seed), block_index=0, context_tokens=tokens, last_latent=latents[-1].clone())

    def _context_latents(self, context_audio: np.ndarray) -> torch.Tensor:
        audio = np.asarray(context_audio, dtype=np.float32)
        if audio.ndim != 2 or audio.shape[0] != self.codec.channels:
            raise ValueError(
                f"context_audio must have shape (channels={self.codec.channels}, samples) at "
                f"{self.codec.sample_rate} Hz, got {audio.shape}; pass None to start from silence"
            )
        need = self.context_frames * self.codec.hop
        audio = audio[:, -need:]
        if audio.shape[1] < need:  # left-pad short context with silence
            audio = np.pad(audio, ((0, 0), (need - audio.shape[1], 0)))
        return self.codec.encode(torch.from_numpy(np.ascontiguousarray(audio)).to(self.device))

    def step(self, state: LMMState, control: Control,
             recorder: PhaseRecorder = NULL_RECORDER) -> tuple[StepResult, LMMState]:
        b, frames, levels = self.batch, self.block_frames, self.cfg.rvq_levels
        with torch.no_grad():
            style = self._style_batch(control.prompt)  # (b, S)
            generator = block_generator(state.seed, state.block_index, SAMPLE_PURPOSE, self.device)
            with recorder.phase(PHASE_ENCODE):
                cross_kvs = self.encode(state.context_tokens, style)
            tokens = self.decode_tokens(cross_kvs, generator, recorder,
                                        start=self.start_input(state.context_tokens))  # (B, Q)
            with recorder.phase(PHASE_DECODE):
                latents = self.rvq.dequantize(tokens)  # (B, D) float32
                audio = self.codec.decode(latents, previous=state.last_latent)  # (C, B * hop)
                # the one host sync of the step, inside the decode phase as in every diffusion regime
                audio_np = audio.to("cpu", torch.float32).numpy()
            context = torch.cat([state.context_tokens[frames:], tokens[:, : self.cfg.encoder_levels]], dim=0)
            last_latent = latents[-1].clone()
        info = StepInfo(
            block_index=state.block_index,
            phase_calls={PHASE_ENCODE: 1, PHASE_TEMPORAL: frames, PHASE_DEPTH: frames, PHASE_DECODE: 1},
            tokens_processed=b * (self.encoder_tokens + frames + frames * levels),
            cache_len=frames,
            analytic_flops=dict(self._block_flops[state.block_index == 0]),
            extra={
                "encoder_tokens": self.encoder_tokens,
                "cfg_batch": b,
                "top_k": self.top_k,
            },
            transient_kv_bytes=self.block_kv_bytes(),
        )
        new_state = LMMState(state.seed, state.block_index + 1, context, last_latent)
        return StepResult(audio=audio_np, info=info), new_state

    # ------------------------------------------------------------------ the model's passes
    def _style_batch(self, prompt: str) -> torch.Tensor:
        """(b, S) style ids on the device, cached per prompt (uploaded once per prompt, without
        waiting for the stream: a blocking copy from pageable memory would synchronise it)."""
        cached = self._style_cache.get(prompt)
        if cached is not None:
            return cached
        ids = style_ids(prompt, self.cfg.style_tokens, self.cfg.style_vocab).to(self.device, non_blocking=True)  # (S,)
        if self.batch == 2:  # [cond | uncond]: the negative branch sees the masked style (id 0)
            batch = torch.stack([ids, torch.zeros_like(ids)])
        else:
            batch = ids[None]
        if len(self._style_cache) >= 64:
            self._style_cache.clear()
        self._style_cache[prompt] = batch
        return batch

    def encode(self, context_tokens: torch.Tensor, style: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """context_tokens (F, E), style (b, S) -> the temporal decoder's cross K/V per layer."""
        net = self.model
        frames, enc_levels = context_tokens.shape
        ids = context_tokens + self._level_offsets[:enc_levels]  # (F, E) rows of the shared table
        x_ctx = net.token_embed(ids.reshape(1, frames * enc_levels))  # (1, F*E, d)
        x_style = net.style_embed(style)  # (b, S, d)
        x = torch.cat([x_style, x_ctx.expand(style.shape[0], -1, -1)], dim=1) + self._enc_pos  # (b, N, d)
        memory = net.encoder(x)  # (b, N, d), bidirectional
        return net.temporal.memory_kv(memory)

    def start_input(self, context_tokens: torch.Tensor) -> torch.Tensor:
        """(F, E) context tokens -> (b, 1, d): the first frame's temporal input, the learned start
        vector plus the embeddings of the last context frame's ``E`` levels."""
        net, d = self.model, self.cfg.width
        last = context_tokens[-1] + self._level_offsets[: context_tokens.shape[1]]  # (E,)
        start = net.temporal_start + net.token_embed(last).sum(dim=0)  # (d,)
        return start.view(1, 1, d).expand(self.batch, 1, d)

    def decode_tokens(self, cross_kvs: list[tuple[torch.Tensor, torch.Tensor]], generator: torch.Generator,
                      recorder: PhaseRecorder = NULL_RECORDER, use_cache: bool = True,
                      trace: dict[str, list[torch.Tensor]] | None = None,
                      start: torch.Tensor | None = None) -> torch.Tensor:
        """Generate one block of tokens (B, Q) int64; ``start`` (b, 1, d) is the first frame's
        temporal input (:meth:`start_input`; the bare start vector when None).

        ``use_cache=False`` recomputes the whole prefix at every temporal and depth step with a
        causal mask (the reference the cached path is tested against). ``trace`` (optional)
        collects the temporal outputs (b, d) and the sampled-from logits (1, V) per step.
        """
        net, b, d = self.model, self.batch, self.cfg.width
        if self._static is not None and use_cache and trace is None:
            # compiled: the static-shape passes (a trace is a feature of the eager passes)
            first = net.temporal_start.view(1, 1, d).expand(b, 1, d) if start is None else start
            return self._static.decode_tokens(cross_kvs, generator, first, recorder)
        levels, vocab = self.cfg.rvq_levels, self.cfg.codebook_size
        t_caches = net.temporal.new_caches(b, self.block_frames, self.device, self.dtype) if use_cache else None
        d_caches = net.depth.new_caches(b, levels, self.device, self.dtype) if use_cache else None
        t_inputs: list[torch.Tensor] = []
        frame_in = net.temporal_start.view(1, 1, d).expand(b, 1, d) if start is None else start
        rows = []
        for i in range(self.block_frames):
            with recorder.phase(PHASE_TEMPORAL):
                x = frame_in + self._temporal_pos[i]  # (b, 1, d)
                if use_cache:
                    h = net.temporal(x, caches=t_caches, cross_kvs=cross_kvs)  # (b, 1, d)
                else:
                    t_inputs.append(x)
                    h = net.temporal(torch.cat(t_inputs, dim=1), causal=True, cross_kvs=cross_kvs)[:, -1:]
            if trace is not None:
                trace.setdefault("temporal", []).append(h[:, 0].float())
            with recorder.phase(PHASE_DEPTH):  # the frame's Q levels (module docstring, step 3)
                if d_caches is not None:
                    for cache in d_caches:
                        cache.reset()
                d_inputs: list[torch.Tensor] = []
                level_tokens, level_embeds = [], []
                race = race_noise(levels, vocab, generator, self.device)  # (Q, V): one draw per frame
                for level in range(levels):
                    x = h + self._depth_pos[level]  # (b, 1, d)
                    if level_embeds:
                        x = x + level_embeds[-1]
                    if use_cache:
                        y = net.depth(x, caches=d_caches)  # (b, 1, d)
                    else:
                        d_inputs.append(x)
                        y = net.depth(torch.cat(d_inputs, dim=1), causal=True)[:, -1:]
                    logits = net.level_logits(level, y[:, 0]).float()  # (b, V)
                    if b == 2:
                        logits = guide(logits, self.cfg.cfg_scale)  # (1, V)
                    probs = token_probs(logits, self.settings.temperature, self.top_k)  # (1, V)
                    token = race_argmax(probs, race[level:level + 1])  # (1,)
                    embed = net.token_embed(token + level * vocab)  # (1, d)
                    level_tokens.append(token)
                    level_embeds.append(embed.view(1, 1, d).expand(b, 1, d))
                    if trace is not None:
                        trace.setdefault("depth", []).append(logits)
            rows.append(torch.cat(level_tokens))  # (Q,)
            frame_in = torch.stack(level_embeds).sum(dim=0)  # (b, 1, d)
        return torch.stack(rows)  # (B, Q)

    # ------------------------------------------------------------------ accounting
    def analytic_flops(self, first_block: bool) -> dict[str, float]:
        """Matmul + dense attention FLOPs per phase of one block. Every block costs the same
        (the context is re-encoded each block), so ``first_block`` changes nothing."""
        cfg, b = self.cfg, self.batch
        d, h, n = cfg.width, cfg.mlp_hidden, self.encoder_tokens
        frames, levels = self.block_frames, cfg.rvq_levels
        encode = stack_flops(cfg.encoder_layers, d, h, queries=n, keys=n, batch=b)
        encode += memory_kv_flops(cfg.temporal_layers, d, n, batch=b)
        temporal = sum(
            stack_flops(cfg.temporal_layers, d, h, queries=1, keys=i, batch=b, cross_keys=n)
            for i in range(1, frames + 1)
        )
        per_frame_depth = sum(
            stack_flops(cfg.depth_layers, d, h, queries=1, keys=lv, batch=b) + 2.0 * b * d * cfg.codebook_size
            for lv in range(1, levels + 1)
        )
        return {
            PHASE_ENCODE: float(encode),
            PHASE_TEMPORAL: float(temporal),
            PHASE_DEPTH: float(frames * per_frame_depth),
            PHASE_DECODE: float(self.codec.decode_flops(frames)),
        }

    def token_passes(self) -> int:
        """Query token-passes per block (CFG counts twice): encoder + temporal + depth."""
        return self.batch * (self.encoder_tokens + self.block_frames * (1 + self.cfg.rvq_levels))

    def block_kv_bytes(self) -> int:
        """Bytes of the caches one block holds at its peak: the cross-attention K/V of the
        encoder output, the temporal self-attention cache and the depth cache. They are freed at
        the end of the block, so :meth:`kv_cache_bytes` of a state is 0."""
        cfg, b = self.cfg, self.batch
        elem = torch.empty((), dtype=self.dtype).element_size()
        per_position = 2 * cfg.width * elem * b  # K and V
        return per_position * (
            cfg.temporal_layers * (self.encoder_tokens + self.block_frames) + cfg.depth_layers * cfg.rvq_levels
        )

    def kv_cache_bytes(self, state: Any) -> int:
        """0: no cache survives a block (the context is re-encoded every block)."""
        return 0
