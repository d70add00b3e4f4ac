"""The codec a :class:`~bench.core.presets.CodecConfig` names (its own module, so the two codec
modules do not import each other)."""

from __future__ import annotations

import torch

from baselines.codec import Codec, MDCTCodec
from baselines.spectral_codec import SpectralCodec, SpectralCodecConfig
from bench.core.presets import CodecConfig


def make_codec(config: CodecConfig, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> Codec:
    """The codec ``config.kind`` names (``mdct``: :class:`~baselines.codec.MDCTCodec`;
    ``spectral``: :class:`~baselines.spectral_codec.SpectralCodec`). Decoding runs in float32
    regardless of the model dtype unless ``dtype`` says otherwise (it is cheap and keeps the audio
    exact)."""
    if config.kind == "spectral":
        spectral = SpectralCodecConfig(sample_rate=config.sample_rate, channels=config.channels, hop=config.hop,
                                       max_hz=config.top_hz, linear_below_hz=config.linear_below_hz)
        return SpectralCodec(spectral, device=device, dtype=dtype)
    return MDCTCodec(config, device=device, dtype=dtype)


__all__ = ["make_codec"]
