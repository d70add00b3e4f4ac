"""Regime 2, "lmdm-encdec": Live Music Diffusion with encoder-decoder attention.

The context router over the window ``[C context | B target | token]`` (positions ``0 .. C+B``):
the noisy input at context positions is multiplied by 0, the clean context enters only through
the mask embedding, context queries attend only to context keys, target and token queries attend
to everything (:func:`baselines.attention.encdec_mask`). So the context rows do not depend on
``t`` or on the target, and per block:

- PREFILL: the ``C`` context rows run once through every layer; each layer's K and V (after
  qk-norm and RoPE) are kept for the block;
- STEP (x T): only the ``B + 1`` target and token rows run, attending to
  ``[cached context K/V | their own fresh K/V]`` (no mask needed: they may see everything).

The cache is rebuilt every block (the bidirectional context changes when the window slides), in
one preallocated buffer (:class:`baselines.attention.KVBuffer`, ``C + B + 1`` tokens per layer):
the prefill writes the context K/V at its front, each step writes its own rows behind them, so no
layer copies the cache. The
prompt's cross-attention K/V are cached in the stream state until the prompt changes (they are
computed inside the prefill phase of the block that needs them). With CFG the prefill runs for
both branches (context rows cross-attend to the prompt). Every length comes from the config.
Per block: ``C + T (B + 1)`` query token-passes (times 2 with CFG).
"""

from __future__ import annotations

import torch

from baselines.attention import KVBuffer
from baselines.diffusion import DiffusionGenerator, DiffusionState, PhasePlan
from bench.core.contract import NULL_RECORDER, PhaseRecorder, StepResult
from bench.core.phases import PHASE_PREFILL, PHASE_STEP
from bench.core.settings import Control


class EncDecGenerator(DiffusionGenerator):
    name = "lmdm-encdec"

    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003 - the contract's signature
        super().__init__(*args, **kwargs)
        c, b = self.context_frames, self.block_frames
        self._ctx_cos, self._ctx_sin = self._rope(0, c)  # (C, Dh)
        self._tgt_cos, self._tgt_sin = self._rope(c, c + b + 1, origin=0)  # (B+1, Dh)
        self._cache: KVBuffer | None = None  # [context K/V | one step's rows], rewritten every block
        self._in_place = True  # False once compiled (see DiffusionGenerator.compile)

    def _use_immutable_caches(self) -> None:
        self._in_place = False

    def _context_buffer(self) -> KVBuffer:
        """The block's self-attention buffer, allocated at the first block (then reused)."""
        if self._cache is None:
            dit = self.dit
            self._cache = KVBuffer.allocate(len(dit.blocks), self.batch, dit.heads,
                                            self.context_frames + self.block_frames + 1, dit.head_dim, self.device,
                                            self.dtype)
        return self._cache

    def _cache_len(self) -> int:
        return self.context_frames  # the per-block context cache the steps attend to

    def _plan(self, bootstrap: bool, new_prompt: bool) -> list[PhasePlan]:
        c, b, t, n = self.context_frames, self.block_frames, self.steps, self.batch
        prefill = self._pass(c, 0, 0, 0) + (self._cross() if new_prompt else 0.0)
        step = self._pass(b, 1, c, b)
        return [
            PhasePlan(PHASE_PREFILL, 1, prefill, n * c),
            PhasePlan(PHASE_STEP, t, t * step, t * n * (b + 1)),
            self._decode_plan(),
        ]

    @torch.no_grad()
    def step(
        self, state: DiffusionState, control: Control, recorder: PhaseRecorder = NULL_RECORDER
    ) -> tuple[StepResult, DiffusionState]:
        b, dit = self.block_frames, self.dit
        cond = self._conditioning(control.prompt)  # (N, Nc, cond_dim)
        context = state.context  # (C, D) float32
        new_prompt = state.cross is None or state.prompt != control.prompt

        # phase 1: prefill, the clean context once (its K/V of every layer), no mask needed
        with recorder.phase(PHASE_PREFILL):
            cross = dit.cross_cache(cond) if new_prompt else state.cross
            h = dit.embed(self._zeros_ctx, self._ones_ctx, self._batched(context))  # (N, C, d)
            if self._in_place:
                context_kv = self._context_buffer()
                context_kv.keep(0)  # the prefill writes its rows' K/V at the front ...
                dit.run(h, self._ctx_cos, self._ctx_sin, None, cross, past=context_kv)
                context_kv.keep(self.context_frames)  # ... and they are the steps' cache
            else:  # compiled: an immutable cache, concatenated by each step
                _, context_kv = dit.run(h, self._ctx_cos, self._ctx_sin, None, cross, return_kv=True)

        x, draws = self._start_noise(state)  # (B, D) at t = ts[0]
        for i, t, t_next in self.schedule:
            # phase 2, every step: the target and token rows against [context K/V | themselves]
            with recorder.phase(PHASE_STEP):
                h = torch.cat(
                    [
                        dit.embed(self._batched(x), self._zeros_mask_block, self._zeros_block),
                        dit.time_token(self._time(t), cond[:, -1]),
                    ],
                    dim=1,
                )  # (N, B+1, d)
                h, _ = dit.run(h, self._tgt_cos, self._tgt_sin, None, cross, past=context_kv)
                v = self._guide(dit.head(h[:, :b]))
            x = self._advance(i, t, t_next, x, v, draws)
        x0 = x  # (B, D) clean latents
        # phase 3: decode the block (the step's only host copy)
        audio = self._decode(x0, context, recorder)
        plan = self._plan(False, new_prompt)
        new_state = self._next_state(state, x0, prompt=control.prompt, cross=cross)
        extra = {"prompt_changed": new_prompt}
        return self._finish(state, new_state, audio, plan, extra, transient_kv_bytes=context_kv.nbytes)


__all__ = ["EncDecGenerator"]
