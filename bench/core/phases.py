"""Phase names shared by every regime: the generator wraps each phase in ``recorder.phase(name)``
and reports order phases this way. Plain strings, so reports and metrics read them without torch."""

from __future__ import annotations

# Phase names shared by all regimes. Reports order phases this way.
PHASE_PREFILL = "prefill"  # enc-dec: context K/V computed once per block; MusicGen: the context's decoder pass
PHASE_BOOTSTRAP = "bootstrap"  # block-causal: full [context | target] pass that fills the cache
PHASE_FIRST_STEP = "first_step"  # block-causal: fused pass [pending | target | token]
PHASE_STEP = "step"  # one denoising step (target-only for cached regimes, whole window for outpaint)
PHASE_ENCODE = "encode"  # LMM: encoder over context tokens + style tokens; MusicGen: text encoder (new prompt)
PHASE_TEMPORAL = "temporal"  # LMM: one temporal-decoder step (one frame)
PHASE_DEPTH = "depth"  # LMM: the depth decoder over one frame (one step per RVQ level)
PHASE_DECODE_TOKENS = "decode_tokens"  # MusicGen: one cached decoder step (one delayed slot, every codebook)
PHASE_DECODE = "decode"  # codec: latents / tokens -> waveform
PHASE_ORDER = (
    PHASE_PREFILL,
    PHASE_BOOTSTRAP,
    PHASE_FIRST_STEP,
    PHASE_STEP,
    PHASE_ENCODE,
    PHASE_TEMPORAL,
    PHASE_DEPTH,
    PHASE_DECODE_TOKENS,
    PHASE_DECODE,
)
