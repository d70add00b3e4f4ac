"""Machinery shared by the three diffusion regimes (outpaint, lmdm-encdec, lmdm-causal).

- :class:`DiffusionState`: what a stream carries between blocks (clean context latents, cached
  prompt conditioning, and for the block-causal regime its ring of K/V).
- :class:`DiffusionGenerator`: construction (codec, frames, sampler, backbone), context priming,
  conditioning (batch-doubled for CFG), guidance, decoding, and the per-block "plan" (phases,
  calls, token-passes, analytic FLOPs) that both ``analytic_flops`` and ``StepInfo`` come from.
- analytic FLOP formulas of one backbone pass (the backbone's ``pass_flops``), counted the way
  ``torch.utils.flop_counter.FlopCounterMode`` counts: ``2 m n k`` per matmul, attention as the
  two dense products ``QK^T`` and ``AV`` over every key passed (masked keys included).
- the backbone is our DiT (baselines/dit.py) or, with ``dit.arch=sat``, stable-audio-tools' DiT
  built from its model config (baselines/sat_dit.py); both expose the same methods.

Streams: a window is ``[C context latents | B target latents | 1 timestep token]``; block ``b``
appends ``B`` clean latents and slides the context by ``B``. Randomness per block comes from
:func:`bench.core.contract.block_generator` with purposes "noise" (initial noise), "sampler" (ping-pong
re-noising) and "renoise" (outpaint's context re-noising).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils._python_dispatch import _get_current_dispatch_mode

from baselines.attention import KVCache, KVRing
from baselines.codecs import make_codec
from baselines.conditioning import prompt_tokens
from baselines.dit import DiT, build_dit
from baselines.samplers import StepCallback, cfg_combine, get_update, logsnr_schedule
from bench.core.contract import (
    PhaseRecorder,
    StepInfo,
    StepResult,
    StreamingGenerator,
    StreamSpec,
    block_generator,
)
from bench.core.errors import ConfigError
from bench.core.phases import PHASE_DECODE
from bench.core.presets import DiTConfig
from bench.core.settings import Control, StreamSettings

log = logging.getLogger(__name__)

Backbone = Any  # DiT or baselines.sat_dit.SatDiT: the same methods (see DiT's docstring)
# compiled graphs one backbone may need: one per pass shape (bootstrap, fused, steps, prefill, and
# their cache layouts); more means shapes are not static, which fails the cell instead of going eager
RECOMPILE_LIMIT = 16


# ---------------------------------------------------------------------------------- backbone
def build_backbone(config: DiTConfig, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
                   regime: str = "outpaint") -> Backbone:
    """The backbone ``dit.arch`` names: our DiT (``native``) or stable-audio-tools' (``sat``)."""
    if config.arch == "sat":
        from baselines.sat_dit import build_sat_dit  # its JSON parsing only matters for arch=sat

        model = build_sat_dit(config, device, dtype)
        if regime != "outpaint" and not (model.spec.input_concat or model.spec.input_add):
            log.warning(
                "%s on %s: this stable-audio-tools DiT takes no inpainting conditioning (input_concat_ids or "
                "input_add_dims), so the clean context reaches it only as zeroed rows and its output ignores the "
                "context; its latency is still the regime's. Use an LMDM checkpoint for real continuations.",
                regime, model.spec.source,
            )
        return model
    return build_dit(config, device, dtype, regime=regime)


@dataclass(frozen=True)
class PhasePlan:
    """One phase of a block: how often it runs, its total analytic FLOPs and query token-passes."""

    phase: str
    calls: int
    flops: float
    tokens: int


# ---------------------------------------------------------------------------------- state
@dataclass
class DiffusionState:
    """A diffusion stream between blocks. Tensors are replaced, never modified in place, except
    lmdm-causal's ring, which the next block writes in place: to step one state twice ("save,
    step, restore, step"), step a ``copy_state`` of it."""

    seed: int
    block_index: int  # index of the NEXT block to generate
    context: torch.Tensor  # (C, D) float32: the last C clean latents
    prompt: str | None = None  # prompt the cached conditioning below belongs to
    cross: KVCache | None = None  # cross-attention K/V of that prompt (cached regimes)
    ring: KVRing | None = None  # lmdm-causal: K/V of the W - 1 chunks before the newest one
    ring_start_chunk: int = 0  # lmdm-causal: stream chunk index of the ring's oldest chunk


# ------------------------------------------------------------------------------ generator
class DiffusionGenerator(StreamingGenerator):
    """Shared base of the diffusion regimes. Subclasses implement ``_validate``, ``_plan`` and
    ``step`` (and ``_cache_len``)."""

    def __init__(
        self,
        preset: Any,
        settings: StreamSettings,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__(preset, settings, device, dtype)
        config = getattr(preset, "dit", None)
        if not isinstance(config, DiTConfig):
            raise ConfigError(f"preset.dit must be a DiTConfig for regime {self.name!r}, got {type(config).__name__}")
        if not isinstance(settings, StreamSettings):
            raise ConfigError(f"settings must be a StreamSettings, got {type(settings).__name__}")
        self.config = config
        self.codec = make_codec(config.codec, self.device, torch.float32)  # decode runs in float32
        self.context_frames, self.block_frames = settings.frames(self.codec.frame_rate_hz)
        self.windows = settings.context_blocks  # W = C / B
        self.latent_dim = config.codec.latent_dim
        self.steps = settings.steps
        self.ts = logsnr_schedule(settings.steps)
        # the denoising loop every regime writes out: (step index, t, next t)
        self.schedule = [(i, t, t_next) for i, (t, t_next) in enumerate(zip(self.ts[:-1], self.ts[1:]))]
        self._update = get_update(settings.sampler)
        # public per-step hook of the sampler, (step_index, t, x, guided velocity) -> None; for tests
        # and tools (None: nothing is called). It runs inside the timed step: leave it None to time.
        self.on_sampler_step: StepCallback | None = None
        self.batch = 2 if settings.cfg else 1  # CFG: [conditional, unconditional]
        self._validate()
        self.dit: DiT = build_backbone(config, self.device, dtype, regime=self.name)
        self.head_dim = self.dit.head_dim
        self._cond_cache: dict[str, torch.Tensor] = {}
        self._text_encoder = None  # a T5PromptEncoder when dit.text_encoder names a directory
        if config.text_encoder and self.device.type != "meta":
            from baselines.text_encoder import T5PromptEncoder  # transformers only when asked for

            self._text_encoder = T5PromptEncoder(config.text_encoder, config.cond_tokens, self.dit.cond_dim,
                                                 self.device)
        n, c, b, dim = self.batch, self.context_frames, self.block_frames, self.latent_dim
        fk = dict(device=self.device, dtype=dtype)
        self._ones_ctx = torch.ones(n, c, 1, **fk)  # inpaint mask of clean rows
        self._ones_block = torch.ones(n, b, 1, **fk)
        self._zeros_mask_block = torch.zeros(n, b, 1, **fk)  # inpaint mask of target rows
        self._zeros_block = torch.zeros(n, b, dim, **fk)  # masked latents of target rows
        self._zeros_ctx = torch.zeros(n, c, dim, **fk)  # zeroed noisy input of clean rows
        log.debug(
            "%s: C=%d B=%d W=%d T=%d batch=%d sampler=%s on %s/%s", self.name, c, b, self.windows, self.steps,
            n, settings.sampler, self.device, dtype,
        )

    # ------------------------------------------------------------------ subclass hooks
    def _validate(self) -> None:
        """Reject impossible configurations (ConfigError naming the field)."""

    def _plan(self, bootstrap: bool, new_prompt: bool) -> list[PhasePlan]:
        raise NotImplementedError

    def _cache_len(self) -> int:
        return 0

    # ----------------------------------------------------------------------- contract
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

    def start(self, control: Control, seed: int, context_audio: np.ndarray | None = None) -> DiffusionState:
        """A new stream whose context is ``context_audio`` (its last C frames) or silence."""
        if self.device.type == "meta":
            raise ConfigError(
                "device='meta' builds shapes only (parameter counts, analytic FLOPs); use a real device to stream"
            )
        return DiffusionState(seed=int(seed), block_index=0, context=self._encode_context(context_audio))

    def analytic_flops(self, first_block: bool) -> dict[str, float]:
        return {p.phase: p.flops for p in self._plan(first_block, first_block) if p.calls}

    def tokens_per_block(self, first_block: bool) -> int:
        """Query token-passes through the backbone per block (CFG batch counted twice)."""
        return sum(p.tokens for p in self._plan(first_block, first_block))

    def compile(self, mode: str) -> dict[str, Any]:
        """``torch.compile`` the backbone's layer stack (``run``: every pass of every regime goes
        through it) with ``fullgraph=True``, so a graph break is an error, not a silent partial
        fallback; static shapes (one graph per pass shape: bootstrap, fused, steps, prefill). The
        compilation itself happens at the first call of each shape, i.e. in the warm-up, where a
        failure fails the cell."""
        options = {} if mode == "default" else {"mode": mode}
        eager = self.dit.run
        compiled = torch.compile(eager, fullgraph=True, dynamic=False, **options)
        # inductor's CUDA graph trees start a new iteration at every call of a compiled function;
        # PyTorch 2.11 (the lent GPU machine's) then frees the previous iteration's outputs (2.14
        # copies the live ones itself), so a cache a pass returns and later passes read (the
        # enc-dec prefill's, read by all its steps) is copied out of the graph's memory at once
        # (PyTorch's remedy: clone outside torch.compile); the hidden rows are used at once anyway
        graphs = mode == "reduce-overhead" and self.device.type == "cuda"
        import torch._inductor.config as inductor_config  # noqa: PLC0415 - compile mode only

        def graph_errors() -> Any:
            """A pass inductor cannot capture in a CUDA graph raises instead of running without one."""
            return inductor_config.patch({"triton.cudagraph_or_error": True}) if graphs else contextlib.nullcontext()

        def run(*args: Any, **kwargs: Any) -> Any:
            if _get_current_dispatch_mode() is not None:
                # a dispatch mode (the FLOPs pass's FlopCounterMode) counts the eager ops: FLOPs are
                # the math's, not the kernel's, and a mode must not trigger a second compilation
                return eager(*args, **kwargs)
            # every pass shape must compile: past the recompile limit dynamo would run eager in silence
            with torch._dynamo.config.patch(recompile_limit=RECOMPILE_LIMIT, fail_on_recompile_limit_hit=True), \
                    graph_errors():
                h, fresh = compiled(*args, **kwargs)
            if graphs and fresh is not None:
                fresh = KVCache(fresh.keys.clone(), fresh.values.clone())
            return h, fresh

        self.dit.run = run
        self._use_immutable_caches()
        # in-place cache writes would be graph-input mutations, which the compiled graph copies
        # back whole after every pass (measured: lmdm-causal 10% slower at width 192); compiled
        # passes concatenate immutable caches instead, which inductor fuses into its kernels
        return {"compiled": ["dit.run"], "backend": "inductor", "fullgraph": True, "dynamic": False,
                "kv_caches": "immutable", "cuda_graphs": graphs}

    def _use_immutable_caches(self) -> None:
        """Switch the regime's self-attention caches to immutable :class:`KVCache` concatenation
        (compiled passes); a regime with in-place caches overrides this."""

    def kv_cache_bytes(self, state: DiffusionState) -> int:
        return sum(c.nbytes for c in (state.cross, state.ring) if c is not None)

    def modules(self) -> list[torch.nn.Module]:
        return [self.dit]

    # ------------------------------------------------------------------------ helpers
    def _encode_context(self, context_audio: np.ndarray | None) -> torch.Tensor:
        c, dim = self.context_frames, self.latent_dim
        if context_audio is None:
            return torch.zeros(c, dim, device=self.device, dtype=torch.float32)
        audio = np.asarray(context_audio, dtype=np.float32)
        if audio.ndim != 2 or audio.shape[0] != self.codec.channels:
            raise ValueError(
                f"context_audio must have shape (channels={self.codec.channels}, samples), got {audio.shape}"
            )
        needed = c * self.codec.hop
        if audio.shape[1] >= needed:
            audio = audio[:, -needed:]  # the last C frames' worth
        else:
            audio = np.pad(audio, ((0, 0), (needed - audio.shape[1], 0)))  # silence before
        return self.codec.encode(torch.from_numpy(np.ascontiguousarray(audio)).to(self.device)).to(torch.float32)

    def _conditioning(self, prompt: str) -> torch.Tensor:
        """(N, Nc, cond_dim) conditioning tokens in the model dtype: [prompt] or, with CFG,
        [prompt, empty prompt]. The last token is the pooled one."""
        cond = self._cond_cache.get(prompt)
        if cond is None:
            nc, dim = self.config.cond_tokens, self.dit.cond_dim
            encode = self._text_encoder or (lambda text: prompt_tokens(text, nc, dim))
            rows = [encode(prompt)]
            if self.batch == 2:
                rows.append(encode(""))
            # uploaded without waiting for the device's queue (a blocking copy from pageable memory
            # would synchronise the stream inside the step)
            cond = torch.stack(rows).to(device=self.device, dtype=self.dtype, non_blocking=True)
            if len(self._cond_cache) >= 16:
                self._cond_cache.pop(next(iter(self._cond_cache)))
            self._cond_cache[prompt] = cond
        return cond

    def _batched(self, x: torch.Tensor) -> torch.Tensor:
        """(S, D) float32 -> (N, S, D) in the model dtype (the CFG branches share their input)."""
        return x.to(self.dtype).unsqueeze(0).expand(self.batch, -1, -1)

    def _time(self, t: float) -> torch.Tensor:
        return torch.full((self.batch,), t, device=self.device, dtype=torch.float32)

    def _guide(self, v: torch.Tensor) -> torch.Tensor:
        """(N, B, D) model output -> (B, D) float32 velocity (CFG-combined when N = 2)."""
        v = v.float()
        if self.batch == 2:
            return cfg_combine(v[0], v[1], self.config.cfg_scale)
        return v[0]

    def _rope(self, start: int, stop: int, origin: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """RoPE tables (stop - start, R) of window slots ``start .. stop - 1`` (built on device). With
        ``origin`` (the slot of the window's first row) the last slot is the timestep token, placed
        where the backbone puts it (after the rows, or before the window for stable-audio-tools)."""
        token = origin is not None
        positions = self.dit.window_positions(start, stop - 1 if token else stop, origin or 0, token)
        return self.dit.rope(positions.to(self.device, non_blocking=True), self.dtype)  # offset mode: every block

    def _noise(self, state: DiffusionState) -> torch.Tensor:
        gen = block_generator(state.seed, state.block_index, "noise", self.device)
        return torch.randn(self.block_frames, self.latent_dim, generator=gen, device=self.device)

    def _start_noise(self, state: DiffusionState) -> tuple[torch.Tensor, torch.Generator]:
        """The block's starting point (B, D) float32 at ``t = ts[0]``, and the generator of the
        sampler's own draws (ping-pong's re-noising)."""
        return self._noise(state), block_generator(state.seed, state.block_index, "sampler", self.device)

    def _advance(self, step_index: int, t: float, t_next: float, x: torch.Tensor, v: torch.Tensor,
                 draws: torch.Generator) -> torch.Tensor:
        """Show the step to ``on_sampler_step``, then apply the sampler's update: x at ``t_next``
        (the clean latents after the last step)."""
        if self.on_sampler_step is not None:
            self.on_sampler_step(step_index, t, x, v)
        return self._update(x, v, t, t_next, draws)

    def _decode(self, x0: torch.Tensor, context: torch.Tensor, recorder: PhaseRecorder) -> np.ndarray:
        """Block latents (B, D) -> host float32 audio (channels, B * hop); the step's only sync."""
        with recorder.phase(PHASE_DECODE):
            audio = self.codec.decode(x0.float(), previous=context[-1])
            return audio.to("cpu", torch.float32).numpy()

    def _finish(
        self,
        state: DiffusionState,
        new_state: DiffusionState,
        audio: np.ndarray,
        plan: list[PhasePlan],
        extra: dict[str, Any],
        transient_kv_bytes: int = 0,
    ) -> tuple[StepResult, DiffusionState]:
        info = StepInfo(
            block_index=state.block_index,
            phase_calls={p.phase: p.calls for p in plan if p.calls},
            tokens_processed=sum(p.tokens for p in plan),
            cache_len=self._cache_len(),
            analytic_flops={p.phase: p.flops for p in plan if p.calls},
            extra={"sampler": self.settings.sampler, "cfg": self.batch == 2, **extra},
            transient_kv_bytes=transient_kv_bytes,
        )
        return StepResult(audio=audio, info=info), new_state

    def _next_state(self, state: DiffusionState, x0: torch.Tensor, **changes: Any) -> DiffusionState:
        context = torch.cat([state.context[self.block_frames:], x0.float()], dim=0)  # slide by B
        return dataclasses.replace(state, block_index=state.block_index + 1, context=context, **changes)

    def _decode_plan(self) -> PhasePlan:
        return PhasePlan(PHASE_DECODE, 1, float(self.codec.decode_flops(self.block_frames)), 0)

    def _pass(self, latent_rows: int, token_rows: int, past_keys: int, out_rows: int) -> float:
        """Analytic FLOPs of one backbone pass over the CFG batch."""
        return self.dit.pass_flops(
            latent_rows=latent_rows, token_rows=token_rows, past_keys=past_keys, out_rows=out_rows,
            cond_tokens=self.config.cond_tokens, batch=self.batch,
        )

    def _cross(self) -> float:
        """Analytic FLOPs of the prompt's cross-attention K/V over the CFG batch."""
        return self.dit.cross_flops(self.config.cond_tokens, self.batch)


__all__ = ["build_backbone", "PhasePlan", "DiffusionState", "DiffusionGenerator"]
