"""The LMM's token passes at static shapes: what ``lmm``'s compile mode runs.

The eager LMM (:mod:`baselines.lmm`) appends to :class:`~baselines.transformer.KVCache` objects
whose length is a host integer, so every position has its own shapes: ``torch.compile`` would
build a graph per position (56 temporal + 16 depth at paper scale) and CUDA graphs could not
replay one pass for all. Here every pass of a stack has the same shapes:

- :class:`StaticKVCache`: keys/values of a whole frame (temporal: the block's ``B`` frames) or a
  whole level stack (depth: ``Q`` levels), written at a DEVICE-side position (a 0-d int64
  tensor) with ``index_copy_``; attention reads every slot through the mask ``slot <= position``,
  so slots not yet written in this block or frame (zeros, or what an earlier one left) get
  weight exactly 0. The caches live as long as the generator (allocated at its first step), so
  their addresses never change: CUDA graphs may write them in place.
- The temporal decoder's cross-attention keys/values are copied once per block into buffers that
  also live as long as the generator (a pass reads them at fixed addresses).
- Two passes are compiled (``fullgraph=True``, ``dynamic=False``): the temporal frame (input +
  position embedding, the temporal stack) and the depth frame: all ``Q`` levels of a frame, each
  its input, the depth stack, the level's head, classifier-free guidance, temperature and top-k
  softmax, the draw (the race's argmax) and the token's embedding, so a block makes two compiled
  calls per frame (112 at paper scale) instead of ``1 + Q`` (952). Each is one graph for every
  frame: the positions and levels are device tensors, the level heads one stacked (Q, V, d)
  weight indexed by the level (a copy of the untied heads, made once).
- Eager around them: the encoder (once per block), the race's random numbers (one (Q, V) draw
  per frame, :func:`~baselines.token_sampler.race_noise`, as the eager LMM draws them: a seeded
  ``torch.Generator`` cannot enter a graph), and the decode.

What differs from the eager passes: attention covers every slot (masked) instead of the filled
ones, extra work the analytic FLOP count (of the math) does not include: at paper scale 56
temporal keys instead of 28.5 on average and 16 depth keys instead of 8.5, on one query each.
The FLOPs pass of a compiled cell counts these passes' math (run eager under its counting
mode), so its measured temporal and depth FLOPs exceed the analytic ones by the masked slots'
attention products: the ``ratio`` column shows it. Tests: the static passes run eager equal the
eager LMM's tokens and distributions (1e-5), and compiled ones its stream.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator

import torch
from torch.utils._python_dispatch import _get_current_dispatch_mode

from baselines.token_sampler import guide, race_argmax, race_noise, token_probs
from bench.core.contract import NULL_RECORDER, PhaseRecorder
from bench.core.phases import PHASE_DEPTH, PHASE_TEMPORAL

RECOMPILE_LIMIT = 4  # each pass has one shape; a few more graphs would mean a guard we did not expect


class StaticKVCache:
    """Keys/values (B, H, capacity, Dh) of one attention layer, written at a device-side position."""

    def __init__(self, batch: int, heads: int, capacity: int, head_dim: int,
                 device: torch.device | str, dtype: torch.dtype) -> None:
        self.k = torch.zeros(batch, heads, capacity, head_dim, device=device, dtype=dtype)
        self.v = torch.zeros_like(self.k)
        self.slots = torch.arange(capacity, device=device)  # (capacity,)

    def extend(self, k: torch.Tensor, v: torch.Tensor, causal: bool,
               position: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Write one position's (B, H, 1, Dh) keys/values at ``position`` (0-d int64 on the
        device) -> (every slot's keys, values, mask (1, 1, 1, capacity) of the slots <= position).
        One query per call: the query is the newest position, so ``causal`` masks nothing more."""
        if position is None:
            raise ValueError("a StaticKVCache writes at a device-side position: pass position")
        if k.shape[2] != 1:
            raise ValueError(f"a StaticKVCache takes one position per call, got {k.shape[2]}")
        index = position.view(1)
        self.k.index_copy_(2, index, k)
        self.v.index_copy_(2, index, v)
        return self.k, self.v, (self.slots <= position).view(1, 1, 1, -1)

    def tensors(self) -> list[torch.Tensor]:
        return [self.k, self.v]


class StaticTokenPasses:
    """The LMM's temporal and depth passes at static shapes (module docstring), eager or compiled.

    ``compile_mode`` None runs them eager (what the tests compare with the eager LMM); otherwise
    a ``torch.compile`` mode. The buffers are allocated at the first :meth:`decode_tokens`."""

    def __init__(self, gen: Any, compile_mode: str | None = None) -> None:
        """``gen``: the :class:`~baselines.lmm.LiveMusicModelGenerator` whose passes these are."""
        self.gen = gen
        net, cfg = gen.model, gen.cfg
        self.width, self.batch = cfg.width, gen.batch
        device = gen.device
        if net.level_heads is None:  # tied: the token embedding's rows of each level, a view
            self.head_weights = net.token_embed.weight.view(cfg.rvq_levels, cfg.codebook_size, cfg.width)
        else:  # (Q, V, d), a copy of the untied heads made once
            self.head_weights = torch.stack([head.weight.detach() for head in net.level_heads])
        self.positions = [torch.tensor(i, device=device) for i in range(max(gen.block_frames, cfg.rvq_levels))]
        self.temporal_caches: list[StaticKVCache] = []
        self.depth_caches: list[StaticKVCache] = []
        self.cross: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.cuda_graphs = compile_mode == "reduce-overhead" and device.type == "cuda"
        self.compile_mode = compile_mode
        self._strict = False  # inside _compile_limits (compiled passes refuse to run outside it)
        self.temporal: Callable[..., Any] = self.temporal_pass
        self.depth_frame: Callable[..., Any] = self.depth_frame_pass
        if compile_mode is not None:
            self.temporal = self._compiled(self.temporal_pass, compile_mode)
            self.depth_frame = self._compiled(self.depth_frame_pass, compile_mode)

    def record(self) -> dict[str, Any]:
        """What the compile mode runs, for the cell's record."""
        return {"compiled": ["lmm temporal frame pass", "lmm depth frame pass (all levels)"], "backend": "inductor",
                "fullgraph": True, "dynamic": False, "kv_caches": "static (every slot, masked)",
                "cuda_graphs": self.cuda_graphs, "eager": "encode, race noise (one draw per frame), decode"}

    # ------------------------------------------------------------------ the passes
    def temporal_pass(self, frame_in: torch.Tensor, position: torch.Tensor) -> torch.Tensor:
        """frame_in (1, 1, d) at frame ``position`` -> the temporal output (b, 1, d)."""
        gen = self.gen
        row = gen._temporal_pos.index_select(0, position.view(1))  # (1, d); never a host read  # noqa: SLF001
        x = (frame_in + row).expand(self.batch, 1, self.width)  # (b, 1, d)
        return gen.model.temporal(x, caches=self.temporal_caches, cross_kvs=self.cross, position=position)

    def depth_pass(self, h: torch.Tensor, previous: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
        """Temporal output h (b, 1, d), the previous level's token embedding (1, 1, d; zeros at
        level 0), the level (0-d) -> the level's sampled-from distribution (1, V) float32."""
        gen = self.gen
        x = h + gen._depth_pos.index_select(0, level.view(1)) + previous  # (b, 1, d)  # noqa: SLF001
        y = gen.model.depth(x, caches=self.depth_caches, position=level)  # (b, 1, d)
        head = self.head_weights.index_select(0, level.view(1))[0]  # (V, d)
        logits = (y[:, 0] @ head.T).float()  # (b, V)
        if self.batch == 2:
            logits = guide(logits, gen.cfg.cfg_scale)  # (1, V)
        return token_probs(logits, gen.settings.temperature, gen.top_k)

    def depth_frame_pass(self, h: torch.Tensor, noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A frame's ``Q`` depth levels: temporal output h (b, 1, d) and the frame's race noise
        (Q, V) (:func:`~baselines.token_sampler.race_noise`) -> (its tokens (Q,) int64, the next
        frame's temporal input (1, 1, d): the sum of the tokens' embeddings). Each level's token is
        drawn from :meth:`depth_pass`'s distribution with its row of ``noise`` and embedded here,
        on the device, so one graph runs the whole frame."""
        gen, d = self.gen, self.width
        vocab = gen.cfg.codebook_size
        embed = gen.model.token_embed
        previous = torch.zeros(1, 1, d, device=h.device, dtype=h.dtype)  # level 0 has no previous token
        tokens, embeds = [], []
        for level in range(gen.cfg.rvq_levels):
            probs = self.depth_pass(h, previous, self.positions[level])  # (1, V)
            token = race_argmax(probs, noise[level:level + 1])  # (1,)
            previous = embed(token + level * vocab).view(1, 1, d)
            tokens.append(token)
            embeds.append(previous)
        return torch.cat(tokens), torch.stack(embeds).sum(dim=0)

    def _compiled(self, eager: Callable[..., Any], mode: str) -> Callable[..., Any]:
        options = {} if mode == "default" else {"mode": mode}
        compiled = torch.compile(eager, fullgraph=True, dynamic=False, **options)

        def run(*args: Any) -> torch.Tensor:
            if _get_current_dispatch_mode() is not None:
                # a dispatch mode (the FLOPs pass's FlopCounterMode) counts these passes' math
                # eager; a mode must not trigger a second compilation
                return eager(*args)
            if not self._strict:
                raise RuntimeError("a compiled LMM pass runs inside StaticTokenPasses.decode_tokens "
                                   "(which sets its compile limits)")
            out = compiled(*args)
            # graph trees start a new iteration at every call and may reuse an output's memory at
            # the next replay: the depth frame reads the temporal output after that, and the tokens
            # and next frame input outlive the frame
            if not self.cuda_graphs:
                return out
            return tuple(t.clone() for t in out) if isinstance(out, tuple) else out.clone()
        return run

    @contextlib.contextmanager
    def _compile_limits(self) -> Iterator[None]:
        """Around a whole block (entered once, not at each of its 2 calls per frame: the two config
        patches cost the host 15-30 us each time): every pass must compile to one graph, since
        past the recompile limit dynamo would run eager in silence; under CUDA graphs a pass that
        cannot be captured raises instead of running without one."""
        if self.compile_mode is None:
            yield
            return
        import torch._inductor.config as inductor_config  # noqa: PLC0415 - compile mode only

        graph_errors = (inductor_config.patch({"triton.cudagraph_or_error": True}) if self.cuda_graphs
                        else contextlib.nullcontext())
        with torch._dynamo.config.patch(recompile_limit=RECOMPILE_LIMIT, fail_on_recompile_limit_hit=True), \
                graph_errors:
            self._strict = True
            try:
                yield
            finally:
                self._strict = False

    # ------------------------------------------------------------------ one block
    def _allocate(self, cross_kvs: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        gen, cfg = self.gen, self.gen.cfg
        head_dim = cfg.width // cfg.heads
        self.temporal_caches = [StaticKVCache(self.batch, cfg.heads, gen.block_frames, head_dim, gen.device, gen.dtype)
                                for _ in range(cfg.temporal_layers)]
        self.depth_caches = [StaticKVCache(self.batch, cfg.heads, cfg.rvq_levels, head_dim, gen.device, gen.dtype)
                             for _ in range(cfg.depth_layers)]
        self.cross = [(torch.empty_like(k), torch.empty_like(v)) for k, v in cross_kvs]
        if self.cuda_graphs:  # fixed addresses the graphs write and read in place
            for tensor in self.static_tensors():
                torch._dynamo.mark_static_address(tensor)

    def static_tensors(self) -> list[torch.Tensor]:
        """The tensors the passes read that live as long as the generator: caches, cross-attention
        K/V, and the constants the passes read as attributes (positions, position embeddings,
        stacked level heads). Under CUDA graphs they are marked static: a graph input that is not
        is copied into the graph's own buffer at every replay (the untied heads: 25 MB at paper
        scale)."""
        out = [t for cache in self.temporal_caches + self.depth_caches for t in cache.tensors()]
        constants = [*self.positions, self.gen._temporal_pos, self.gen._depth_pos, self.head_weights]  # noqa: SLF001
        return out + [t for kv in self.cross for t in kv] + constants

    def decode_tokens(self, cross_kvs: list[tuple[torch.Tensor, torch.Tensor]], generator: torch.Generator,
                      start: torch.Tensor, recorder: PhaseRecorder = NULL_RECORDER) -> torch.Tensor:
        """One block of tokens (B, Q) int64, the same phases and draws as
        :meth:`~baselines.lmm.LiveMusicModelGenerator.decode_tokens`; ``start`` (b, 1, d)."""
        gen = self.gen
        levels, vocab = gen.cfg.rvq_levels, gen.cfg.codebook_size
        if not self.cross:
            self._allocate(cross_kvs)
        for (k_buf, v_buf), (k, v) in zip(self.cross, cross_kvs):
            k_buf.copy_(k)
            v_buf.copy_(v)
        # (1, 1, d), standard strides (a graph input's strides are guarded; ``start`` is an expand):
        # both guidance rows share the token history
        frame_in = start[:1].clone(memory_format=torch.contiguous_format)
        rows = []
        with self._compile_limits():
            for i in range(gen.block_frames):
                with recorder.phase(PHASE_TEMPORAL):
                    h = self.temporal(frame_in, self.positions[i])  # (b, 1, d)
                with recorder.phase(PHASE_DEPTH):
                    noise = race_noise(levels, vocab, generator, gen.device)  # (Q, V), as the eager LMM draws
                    tokens, frame_in = self.depth_frame(h, noise)  # (Q,), (1, 1, d)
                rows.append(tokens)
        return torch.stack(rows)  # (B, Q)

