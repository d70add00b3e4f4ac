"""The architecture the committed checkpoints are trained at (the ``cpu`` preset's, proposed).

These overrides give models whose float16 checkpoints stay under 20 MB and that train on two CPU
cores in well under an hour each. ``bench/presets.py``'s ``cpu`` preset has adopted them (so applying them changes
nothing); they stay here, and in the checkpoints' ``config.json``, as the record of the
architecture the checkpoints were trained at. Training always starts from the seeded init (or the
base checkpoint), whatever ``dit.weights`` / ``lmm.weights`` the preset names.

- DiT: width 192, 4 layers, 4 heads (head dim 48), gated MLP 2x, the log-magnitude band codec
  (194 bands of 0-8 kHz at 16 kHz, hop 500 = 32 latent frames/s; docs/codec.md), conditioning
  8 tokens x 64 (hashing featuriser): about 2.1M parameters, 4.2 MB in float16.
- LMM: width 128, 4 heads, MLP 320, encoder 2 / temporal 3 / depth 2 layers, 2 RVQ levels of
  1024 codes (both seen by the encoder) over the same codec at hop 640 (249 bands of 0-8 kHz,
  25 frames/s), level heads tied to the token embedding: about 1.8M parameters plus float16
  codebooks, 4.7 MB.
- Stream: unchanged (16 kHz mono, 4 s context, 1 s blocks, 8 steps).
"""

from __future__ import annotations

from typing import Iterable

from bench.core.presets import Preset, apply_overrides, get_preset

PRESET_NAME = "cpu"
CPU_TRAINED_OVERRIDES: tuple[str, ...] = (
    "dit.width=192",
    "dit.depth=4",
    "dit.heads=4",
    "dit.mlp_mult=2",
    "dit.codec.kind=spectral",
    "dit.cond_dim=64",
    "dit.cond_tokens=8",
    "lmm.width=128",
    "lmm.heads=4",
    "lmm.mlp_hidden=320",
    "lmm.encoder_layers=2",
    "lmm.temporal_layers=3",
    "lmm.depth_layers=2",
    "lmm.codebook_size=1024",
    "lmm.encoder_levels=2",
    "lmm.rvq_levels=2",
    "lmm.style_tokens=6",
    "lmm.style_vocab=256",
    "lmm.codec.kind=spectral",
    "lmm.tie_heads=true",
)


def training_preset(name: str = PRESET_NAME, extra: Iterable[str] = ()) -> Preset:
    """``get_preset(name)`` with :data:`CPU_TRAINED_OVERRIDES` (for "cpu") and ``extra`` applied."""
    base = get_preset(name)
    overrides = list(CPU_TRAINED_OVERRIDES if name == PRESET_NAME else ()) + list(extra)
    return apply_overrides(base, overrides) if overrides else base


__all__ = ["CPU_TRAINED_OVERRIDES", "PRESET_NAME", "training_preset"]
