"""Regime 1, "outpaint": uncached block-wise outpainting with a bidirectional DiT (the baseline).

Window ``[C context | B target | token]`` at positions ``0 .. C+B``. At every denoising step the
context rows of the noisy input are overwritten with a re-noised copy of the clean context at the
current ``t`` (``(1 - t) ctx + t eps``, fresh ``eps`` per step), the clean context also enters
through the mask embedding, and the WHOLE window runs through every layer with full bidirectional
attention. Cross-attention K/V of the prompt are recomputed at every step, as the stock model does.
Nothing is cached. Then the window slides by ``B``.
Per block: ``T (C + B + 1)`` query token-passes (times 2 with CFG).
"""

from __future__ import annotations

import torch

from baselines.diffusion import DiffusionGenerator, DiffusionState, PhasePlan
from bench.core.contract import NULL_RECORDER, PhaseRecorder, StepResult, block_generator
from bench.core.phases import PHASE_STEP
from bench.core.settings import Control


class OutpaintGenerator(DiffusionGenerator):
    name = "outpaint"

    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003 - the contract's signature
        super().__init__(*args, **kwargs)
        c, b = self.context_frames, self.block_frames
        self._cos, self._sin = self._rope(0, c + b + 1, origin=0)  # (C+B+1, Dh)
        self._window_mask = torch.cat([self._ones_ctx, self._zeros_mask_block], dim=1)  # (N, C+B, 1)

    def _plan(self, bootstrap: bool, new_prompt: bool) -> list[PhasePlan]:
        c, b, t, n = self.context_frames, self.block_frames, self.steps, self.batch
        per_step = self._pass(c + b, 1, 0, b) + self._cross()
        return [PhasePlan(PHASE_STEP, t, t * per_step, t * n * (c + b + 1)), self._decode_plan()]

    @torch.no_grad()
    def step(
        self, state: DiffusionState, control: Control, recorder: PhaseRecorder = NULL_RECORDER
    ) -> tuple[StepResult, DiffusionState]:
        c, b, dit = self.context_frames, self.block_frames, self.dit
        cond = self._conditioning(control.prompt)  # (N, Nc, cond_dim)
        context = state.context  # (C, D) float32
        masked = torch.cat([self._batched(context), self._zeros_block], dim=1)  # (N, C+B, D)
        renoise = block_generator(state.seed, state.block_index, "renoise", self.device)
        x, draws = self._start_noise(state)  # (B, D) at t = ts[0]
        for i, t, t_next in self.schedule:
            # phase 1, every step: re-noise the context to t, run the whole window bidirectionally
            with recorder.phase(PHASE_STEP):
                eps = torch.randn(context.shape, generator=renoise, device=self.device)
                noisy = torch.cat([(1.0 - t) * context + t * eps, x], dim=0)  # (C+B, D)
                rows = dit.embed(self._batched(noisy), self._window_mask, masked)  # (N, C+B, d)
                h = torch.cat([rows, dit.time_token(self._time(t), cond[:, -1])], dim=1)  # (N, C+B+1, d)
                h, _ = dit.run(h, self._cos, self._sin, None, dit.cross_cache(cond))
                v = self._guide(dit.head(h[:, c:c + b]))
            x = self._advance(i, t, t_next, x, v, draws)
        x0 = x  # (B, D) clean latents
        # phase 2: decode the block (the step's only host copy)
        audio = self._decode(x0, context, recorder)
        plan = self._plan(False, False)
        return self._finish(state, self._next_state(state, x0), audio, plan, {})


__all__ = ["OutpaintGenerator"]
