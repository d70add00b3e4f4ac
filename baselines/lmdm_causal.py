"""Regime 3, "lmdm-causal": Live Music Diffusion with block-causal attention and a ring KV cache.

Semantics (what the tests check). The stream is an infinite sequence of chunks ``k = 0, 1, ...``
of ``B`` latents (the initial context is chunks ``0 .. W-1``, block ``n`` generates chunk
``W + n``). At every layer the queries of chunk ``k`` attend to chunks ``k-W+1 .. k`` (sliding
block-causal); the timestep token belongs to the target chunk; a clean chunk never sees a later
chunk or the token. Clean chunks enter the context-router way (noisy input zeroed, clean latents
through the mask embedding), so their K/V do not depend on ``t``: each chunk's K/V are computed
once and reused while they stay in the window.

Streaming cache: a ring of the ``W - 1`` chunks a target chunk attends besides itself
(``C - B`` tokens) per layer, constant size. The release code keeps ``W`` chunks, the oldest of
which no cached pass ever attends (the target chunk ``k`` sees ``k-W+1 .. k``); we do not store it,
so the steps 2..T attend every key they are given and run without a mask (the fastest attention
kernel), and no pass computes products with a key it then hides. The ring is preallocated and
written in place (:class:`baselines.attention.KVRing`): each chunk keeps its slot until a newer
chunk replaces it, and every pass writes its own K/V behind the ring, so no layer copies the
cache. Training (ARC-Forcing, gradients through the ring) uses the same passes on an immutable
:class:`baselines.attention.KVCache` instead (``in_place=False``); both are tested against the
full recomputation.
- BOOTSTRAP (first block, or when the prompt changes): the full ``[context | target | token]``
  window with the release mask (``min(i // B, W)`` chunk ids); the ring keeps the K/V of the
  context's last ``W - 1`` chunks (no history before the window's first chunk).
- STEP (steps 2..T): target + token rows against ``[ring | themselves]``, no mask.
- When a block ends its clean latents are "pending" (the newest context chunk, not yet cached).
- FIRST_STEP of the next block, fused: queries ``[pending | target | token]``, keys
  ``[ring | pending | target | token]`` with the sliding mask (pending sees the ring and itself;
  the target and token see all but the ring's oldest chunk, wherever its slot is); this one pass
  computes the pending chunk's K/V once, and they replace the ring's oldest chunk.

RoPE (``dit.rope_mode``): "fixed" keeps window positions (ring at ``B .. C-1`` during the steps,
target at ``C``, token at ``C+B``); at the fused step the ring's keys are re-rotated by ``-B``
(to ``0 .. C-B-1``; its oldest chunk, about to be evicted, at ``0 .. B-1``), pending runs at
``C-B .. C-1``. "offset" gives every token its stream position (chunk ``k`` at ``k B``) and never
re-rotates. Both equal the full-history recomputation; the tests check it.
Per block: bootstrap ``C+B+1`` + ``(T-1)(B+1)``; steady ``2B+1`` + ``(T-1)(B+1)`` ~ ``(T+1) B``.
"""

from __future__ import annotations

import torch

from baselines.attention import KVCache, KVRing, block_causal_mask, window_chunk_ids
from baselines.diffusion import DiffusionGenerator, DiffusionState, PhasePlan
from baselines.dit import DiT
from bench.core.contract import NULL_RECORDER, PhaseRecorder, StepResult
from bench.core.errors import ConfigError
from bench.core.phases import PHASE_BOOTSTRAP, PHASE_FIRST_STEP, PHASE_STEP
from bench.core.settings import Control


class BlockCausalPasses:
    """The regime's three backbone passes over a batch of ``N`` streams (module docstring).

    Shared by :class:`BlockCausalGenerator` (``N`` = the CFG batch, one stream) and by ARC-Forcing
    rollouts (``baselines.training.arc``: ``N`` independent streams, gradients on). Every method
    returns the raw model output (N, B, D) (no guidance) and, for the two passes that add chunks to
    the ring, the new ring. ``tables`` are the (cos, sin) RoPE tables of the pass's query rows
    (:meth:`BlockCausalGenerator._spans`)."""

    def __init__(self, dit: DiT, context_frames: int, block_frames: int, fixed_rope: bool,
                 device: torch.device, dtype: torch.dtype, in_place: bool = True) -> None:
        c, b = context_frames, block_frames
        w = c // b
        self.dit, self.context_frames, self.block_frames, self.windows = dit, c, b, w
        self.fixed_rope, self.in_place = fixed_rope, in_place
        boot_ids = window_chunk_ids(c, b)  # [context | target | token]
        self.boot_mask = block_causal_mask(boot_ids, boot_ids, w, device)  # (C+B+1, C+B+1)
        # fused queries [pending | target | token] (chunks W, W+1) against [ring | themselves]: the
        # ring holds chunks 1 .. W-1 relative to the target, chunk 1 (the oldest, hidden from the
        # target and token) in slot ``oldest``; one mask per slot (an immutable KVCache: slot 0)
        fused_q = [w] * b + [w + 1] * (b + 1)
        self.fused_masks = [
            block_causal_mask(fused_q, [1 if i // b == oldest else 2 for i in range(c - b)] + fused_q, w, device)
            for oldest in range(max(1, w - 1))
        ]  # each (2B+1, C+B+1)
        step_q = [w] * (b + 1)  # [target | token]
        ring_ids = [1 + i // b for i in range(c - b)]
        if not bool(block_causal_mask(step_q, ring_ids + step_q, w).all()):  # (on the CPU: also for meta)
            raise AssertionError("the step pass must see every key it is given")  # guards the ring's layout
        self.step_mask = None  # steps 2..T: no key is hidden
        self._rerotate = dit.rope(torch.full((1,), -b, device=device, dtype=torch.float64),
                                  dtype)  # (1, R): positions p -> p - B
        self.device, self.dtype = device, dtype
        self._constants: dict[tuple[int, int, float, int], torch.Tensor] = {}

    def _rows(self, n: int, rows: int, value: float, dim: int) -> torch.Tensor:
        """A constant (n, rows, dim) input (mask or zeroed rows), built once per shape (never written)."""
        key = (n, rows, value, dim)
        if key not in self._constants:
            self._constants[key] = torch.full((n, rows, dim), value, device=self.device, dtype=self.dtype)
        return self._constants[key]

    def bootstrap(self, x: torch.Tensor, t: torch.Tensor, context: torch.Tensor, cond: torch.Tensor,
                  cross: KVCache, tables: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, KVCache]:
        """x (N, B, D) noisy target, t (N,), context (N, C, D) clean latents, cond (N, Nc, cond_dim)
        -> (output (N, B, D), ring of the W context chunks)."""
        c, b, dit = self.context_frames, self.block_frames, self.dit
        n, dim = x.shape[0], x.shape[-1]
        h = torch.cat([
            dit.embed(torch.cat([self._rows(n, c, 0.0, dim), x], dim=1),
                      torch.cat([self._rows(n, c, 1.0, 1), self._rows(n, b, 0.0, 1)], dim=1),
                      torch.cat([context, self._rows(n, b, 0.0, dim)], dim=1)),
            dit.time_token(t, cond[:, -1]),
        ], dim=1)  # (N, C+B+1, d)
        h, fresh = dit.run(h, *tables, self.boot_mask, cross, return_kv=True)
        ring = fresh.tokens(b, c)  # the ring: context chunks 1 .. W-1, oldest first
        if self.in_place:  # with room behind it for a fused pass's 2B+1 rows
            return dit.head(h[:, c:c + b]), KVRing.from_tokens(ring, chunk=b, room=2 * b + 1)
        # contiguous, like every later ring (evict_append): one memory layout, one compiled graph
        return dit.head(h[:, c:c + b]), KVCache(ring.keys.contiguous(), ring.values.contiguous())

    def fused(self, x: torch.Tensor, t: torch.Tensor, pending: torch.Tensor, cond: torch.Tensor, cross: KVCache,
              ring: KVCache | KVRing, tables: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, KVCache | KVRing]:
        """The first step of a steady block: pending (N, B, D) is the previous block's clean output.
        Its K/V are computed once here and replace the ring's oldest chunk (a :class:`KVRing` in
        place; a :class:`KVCache` by eviction and concatenation into a new cache)."""
        b, dit = self.block_frames, self.dit
        n, dim = x.shape[0], x.shape[-1]
        if self.fixed_rope:
            ring = ring.rerotated(*self._rerotate)  # positions p -> p - B
        h = torch.cat([
            dit.embed(torch.cat([self._rows(n, b, 0.0, dim), x], dim=1),
                      torch.cat([self._rows(n, b, 1.0, 1), self._rows(n, b, 0.0, 1)], dim=1),
                      torch.cat([pending, self._rows(n, b, 0.0, dim)], dim=1)),
            dit.time_token(t, cond[:, -1]),
        ], dim=1)  # (N, 2B+1, d)
        if isinstance(ring, KVRing):
            h, _ = dit.run(h, *tables, self.fused_masks[ring.oldest], cross, past=ring)
            return dit.head(h[:, b:2 * b]), ring.advance()  # the pending rows, written behind the ring
        h, fresh = dit.run(h, *tables, self.fused_masks[0], cross, past=ring, return_kv=True)
        ring = ring.evict_append(fresh.tokens(0, b)) if ring.length else ring  # W = 1: the ring stays empty
        return dit.head(h[:, b:2 * b]), ring

    def step(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor, cross: KVCache, ring: KVCache,
             tables: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """Steps 2..T: the target and token rows against ``[ring | themselves]``."""
        b, dit = self.block_frames, self.dit
        n, dim = x.shape[0], x.shape[-1]
        h = torch.cat([
            dit.embed(x, self._rows(n, b, 0.0, 1), self._rows(n, b, 0.0, dim)),
            dit.time_token(t, cond[:, -1]),
        ], dim=1)  # (N, B+1, d)
        h, _ = dit.run(h, *tables, self.step_mask, cross, past=ring)
        return dit.head(h[:, :b])


class BlockCausalGenerator(DiffusionGenerator):
    name = "lmdm-causal"
    consumes_state = True  # the ring is written in place: copy_state a state to step it twice

    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003 - the contract's signature
        super().__init__(*args, **kwargs)
        self._fixed = self.config.rope_mode == "fixed"
        self.passes = BlockCausalPasses(self.dit, self.context_frames, self.block_frames, self._fixed, self.device,
                                        self.dtype)
        # the same passes on immutable caches, for training through the ring (baselines.training.arc)
        self.functional_passes = BlockCausalPasses(self.dit, self.context_frames, self.block_frames, self._fixed,
                                                   self.device, self.dtype, in_place=False)
        self._tables = {kind: self._rope(*span, origin=0) for kind, span in self._spans(0).items()}

    def _use_immutable_caches(self) -> None:
        self.passes = self.functional_passes  # the ring as an immutable KVCache (see compile)

    def _validate(self) -> None:
        w = self.windows
        if self.config.causal_window and self.config.causal_window != w:
            raise ConfigError(
                f"dit.causal_window ({self.config.causal_window}) must equal context/block = "
                f"{self.settings.context_s:g}/{self.settings.block_s:g} = {w} chunks for lmdm-causal "
                "(or 0 to derive it)"
            )

    def _spans(self, shift: int) -> dict[str, tuple[int, int]]:
        """Query positions of each pass, relative to ``shift`` (the ring's first position)."""
        c, b = self.context_frames, self.block_frames
        return {"boot": (shift, shift + c + b + 1), "fused": (shift + c - b, shift + c + b + 1),
                "step": (shift + c, shift + c + b + 1)}

    def rope_tables(self, ring_start_chunk: int) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """(cos, sin) tables of the "boot", "fused" and "step" passes of a block whose ring starts
        at stream chunk ``ring_start_chunk`` (the same tables for every block in fixed mode)."""
        if self._fixed:
            return self._tables
        shift = ring_start_chunk * self.block_frames
        return {kind: self._rope(*span, origin=shift) for kind, span in self._spans(shift).items()}

    def _cache_len(self) -> int:
        return self.context_frames - self.block_frames  # ring of W - 1 chunks

    def _plan(self, bootstrap: bool, new_prompt: bool) -> list[PhasePlan]:
        c, b, t, n = self.context_frames, self.block_frames, self.steps, self.batch
        if bootstrap:
            first = PhasePlan(
                PHASE_BOOTSTRAP, 1, self._pass(c + b, 1, 0, b) + self._cross(), n * (c + b + 1)
            )
        else:
            first = PhasePlan(PHASE_FIRST_STEP, 1, self._pass(2 * b, 1, c - b, b), n * (2 * b + 1))
        rest = PhasePlan(PHASE_STEP, t - 1, (t - 1) * self._pass(b, 1, c - b, b), (t - 1) * n * (b + 1))
        return [first, rest, self._decode_plan()]

    @torch.no_grad()
    def step(
        self, state: DiffusionState, control: Control, recorder: PhaseRecorder = NULL_RECORDER
    ) -> tuple[StepResult, DiffusionState]:
        b, dit = self.block_frames, self.dit
        cond = self._conditioning(control.prompt)  # (N, Nc, cond_dim)
        context = state.context  # (C, D) float32, chunks ring[1:] + pending (steady) or the window
        bootstrap = state.ring is None or state.prompt != control.prompt
        # stream chunk index of the ring's oldest chunk during this block's steps 2..T
        ring_start = state.block_index if bootstrap else state.ring_start_chunk + 1
        tables = self.rope_tables(ring_start)
        passes, cross, ring = self.passes, state.cross, state.ring

        x, draws = self._start_noise(state)  # (B, D) at t = ts[0]
        for i, t, t_next in self.schedule:
            if i == 0 and bootstrap:
                # phase 1a, first block or new prompt: the whole window with the block-causal
                # mask; fills the ring with the context's last W-1 chunks
                with recorder.phase(PHASE_BOOTSTRAP):
                    cross = dit.cross_cache(cond)
                    out, ring = passes.bootstrap(self._batched(x), self._time(t), self._batched(context), cond, cross,
                                                 tables["boot"])
                    v = self._guide(out)
            elif i == 0:
                # phase 1b, steady blocks: the fused first step; the pending chunk's K/V are
                # computed once and replace the ring's oldest chunk
                with recorder.phase(PHASE_FIRST_STEP):
                    out, ring = passes.fused(self._batched(x), self._time(t), self._batched(context[-b:]), cond, cross,
                                             ring, tables["fused"])
                    v = self._guide(out)
            else:
                # phase 2, steps 2..T: target and token rows against [ring | themselves], no mask
                with recorder.phase(PHASE_STEP):
                    v = self._guide(passes.step(self._batched(x), self._time(t), cond, cross, ring, tables["step"]))
            x = self._advance(i, t, t_next, x, v, draws)
        x0 = x  # (B, D) clean latents
        # phase 3: decode the block (the step's only host copy)
        audio = self._decode(x0, context, recorder)
        plan = self._plan(bootstrap, bootstrap)
        new_state = self._next_state(
            state, x0, prompt=control.prompt, cross=cross, ring=ring, ring_start_chunk=ring_start
        )
        extra = {"bootstrapped": bootstrap, "prompt_changed": bootstrap and state.ring is not None}
        return self._finish(state, new_state, audio, plan, extra)


ARC_REGIME = "lmdm-causal-arc"


class ArcBlockCausalGenerator(BlockCausalGenerator):
    """``lmdm-causal-arc``: the same regime with the ARC-Forcing post-trained weights (its
    ``dit.weights`` folder resolves to ``lmdm-causal-arc.safetensors``; baselines/training/arc.py)."""

    name = ARC_REGIME


__all__ = ["ARC_REGIME", "ArcBlockCausalGenerator", "BlockCausalGenerator", "BlockCausalPasses"]
