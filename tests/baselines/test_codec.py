import torch

from baselines.codec import MDCTCodec, ResidualVQ
from bench.core.presets import CodecConfig


def test_full_band_mdct_reconstructs_after_the_first_hop():
    codec = MDCTCodec(CodecConfig(8000, 2, 64, 64), dtype=torch.float64)
    audio = torch.randn(2, 64 * 20, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    decoded = codec.decode(codec.encode(audio))
    assert decoded.shape == audio.shape
    # segment 0 lacks frame -1 (the stream's first hop); every later sample is exact (TDAC)
    assert (decoded - audio)[:, 64:].abs().max() < 1e-10
    assert (decoded - audio)[:, :64].abs().max() > 1e-3


def test_blockwise_decoding_with_previous_frame_equals_whole_decoding():
    codec = MDCTCodec(CodecConfig(8000, 1, 50, 8))
    latents = torch.randn(30, 8, generator=torch.Generator().manual_seed(1))
    whole = codec.decode(latents)
    parts = [codec.decode(latents[:10])]
    for start in (10, 20):
        parts.append(codec.decode(latents[start:start + 10], previous=latents[start - 1]))
    assert torch.allclose(torch.cat(parts, dim=1), whole, atol=1e-6)


def test_lowpass_keeps_a_low_tone_and_removes_a_high_one():
    sr, hop = 8000, 100
    codec = MDCTCodec(CodecConfig(sr, 1, hop, 10))  # keeps bins below 10/100 * 4000 Hz = 400 Hz
    t = torch.arange(sr) / sr
    low, high = torch.sin(2 * torch.pi * 200 * t)[None], torch.sin(2 * torch.pi * 2000 * t)[None]
    rec_low, rec_high = codec.decode(codec.encode(low)), codec.decode(codec.encode(high))
    assert (rec_low - low)[:, hop:].pow(2).mean() < 0.01 * low.pow(2).mean()
    assert rec_high[:, hop:].pow(2).mean() < 0.01 * high.pow(2).mean()


def test_decode_flops_match_the_counter():
    from torch.utils.flop_counter import FlopCounterMode

    codec = MDCTCodec(CodecConfig(8000, 2, 64, 16))
    latents = torch.randn(12, 32)
    with FlopCounterMode(display=False) as counter:
        codec.decode(latents)
    assert counter.get_total_flops() == codec.decode_flops(12)


def test_rvq_more_levels_reconstruct_better_and_round_trip_tokens():
    rvq = ResidualVQ(dim=8, levels=4, size=64, seed=0)
    latents = torch.randn(200, 8, generator=torch.Generator().manual_seed(2)) * 0.5
    errors = [(rvq.dequantize(rvq.quantize(latents, q)) - latents).pow(2).mean().item() for q in (1, 2, 4)]
    assert errors[0] > errors[1] > errors[2]
    tokens = rvq.quantize(latents)
    assert tokens.shape == (200, 4) and tokens.dtype == torch.int64
    manual = sum(rvq.codebooks[level][tokens[:, level]] for level in range(4))
    assert torch.allclose(rvq.dequantize(tokens), manual)


def test_make_codec_builds_the_kind_the_config_names():
    from baselines.codecs import make_codec
    from baselines.spectral_codec import SpectralCodec

    spectral = make_codec(CodecConfig(16000, 1, 500, kind="spectral", max_hz=4000.0))
    assert isinstance(spectral, SpectralCodec) and spectral.latent_dim == 151 and spectral.config.max_hz == 4000.0
    assert isinstance(make_codec(CodecConfig(16000, 1, 500, 64)), MDCTCodec)
