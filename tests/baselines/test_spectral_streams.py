"""The spectral codec inside every regime: streams continue the phase block to block, and the
streamed audio equals decoding all the stream's latents at once."""

import numpy as np
import pytest
import torch

from baselines.lmdm_causal import BlockCausalGenerator
from baselines.lmdm_encdec import EncDecGenerator
from baselines.lmm import LiveMusicModelGenerator
from baselines.outpaint import OutpaintGenerator
from baselines.spectral_codec import SpectralCodec
from bench.core.presets import apply_overrides, get_preset
from bench.core.settings import Control

GENERATORS = [OutpaintGenerator, EncDecGenerator, BlockCausalGenerator, LiveMusicModelGenerator]


def _spectral_tiny():
    return apply_overrides(get_preset("tiny"), ["dit.codec.kind=spectral", "lmm.codec.kind=spectral"])


def _record_decodes(codec: SpectralCodec) -> list[torch.Tensor]:
    calls: list[torch.Tensor] = []
    inner = codec.decode

    def decode(latents, previous=None):
        calls.append(latents.detach().float().clone())
        return inner(latents, previous=previous)

    codec.decode = decode
    return calls


@pytest.mark.parametrize("cls", GENERATORS, ids=lambda c: c.__name__)
def test_every_block_continues_the_phase_and_equals_one_decode(cls):
    preset = _spectral_tiny()
    gen = cls(preset, preset.settings)
    assert isinstance(gen.codec, SpectralCodec) and gen.spec.sample_rate == 8000
    calls = _record_decodes(gen.codec)
    t = np.arange(int(preset.settings.context_s * 8000), dtype=np.float32)
    context = (0.3 * np.sin(2 * np.pi * 440.0 * t / 8000))[None, :]
    state = gen.start(Control("x"), seed=3, context_audio=context)
    streamed = []
    for _ in range(3):
        result, state = gen.step(state, Control("x"))
        assert np.isfinite(result.audio).all() and np.abs(result.audio).max() > 0
        streamed.append(result.audio)
    # every block's previous frame was remembered: the first from the encoded context, then the last decode
    assert gen.codec.phase_misses == 0
    # continuing from the context's analysed phase, the stream's audio is the one-shot decode of its latents
    whole = SpectralCodec(gen.codec.config)
    used = gen.context_frames * gen.codec.hop  # the regimes keep the context's last whole frames
    context_latents = whole.encode(torch.from_numpy(np.ascontiguousarray(context[:, -used:])))
    audio = whole.decode(torch.cat(calls), previous=context_latents[-1]).numpy()
    np.testing.assert_allclose(np.concatenate(streamed, axis=-1), audio, atol=1e-4 * np.abs(audio).max())
