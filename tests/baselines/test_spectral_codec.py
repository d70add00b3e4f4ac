"""The log-magnitude band codec (baselines/spectral_codec.py): shapes, exactness of its transforms,
pitch kept through a round trip (PESTO), streaming, FLOPs, determinism, RVQ, errors."""

import math

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from baselines.codec import ResidualVQ
from baselines.codecs import make_codec
from baselines.spectral_codec import (
    SpectralCodec, SpectralCodecConfig, SynthesisState, band_centres, band_matrices, nearest_peaks,
)
from baselines.training.rvq import fit_rvq
from bench.core.errors import ConfigError
from bench.core.presets import get_preset
from metrics.descriptors import PitchTracker, pitched_fraction

SR = 16000
HOP = 500


def harmonic_notes(midi_notes, note_s=0.5, partials=6, amplitude=0.15, noise=0.0, seed=0):
    """(samples,) float32: harmonic notes in sequence (amplitudes 0.6^(k-1), 10 ms attack, exp(-2t) decay)."""
    n = int(note_s * SR)
    t = np.arange(n) / SR
    envelope = np.minimum(1.0, t / 0.01) * np.exp(-2.0 * t)
    out = []
    for note in midi_notes:
        f0 = 440.0 * 2 ** ((note - 69) / 12)
        tone = sum(0.6 ** (k - 1) * np.sin(2 * np.pi * k * f0 * t + k)
                   for k in range(1, partials + 1) if k * f0 < SR / 2)
        out.append(amplitude * envelope * tone)
    audio = np.concatenate(out)
    if noise:
        audio = audio + noise * np.random.default_rng(seed).standard_normal(audio.shape[0])
    return audio.astype(np.float32)


def blockwise(codec, latents, block=32, previous=None):
    parts = []
    for start in range(0, latents.shape[0], block):
        parts.append(codec.decode(latents[start:start + block], previous=previous))
        previous = latents[start + block - 1] if start + block <= latents.shape[0] else latents[-1]
    return torch.cat(parts, dim=1)


def test_shapes_frame_rate_and_silence():
    codec = SpectralCodec(SpectralCodecConfig())
    assert (codec.frame_rate_hz, codec.hop, codec.bins, codec.latent_dim) == (32.0, 500, 501, 194)
    audio = torch.from_numpy(harmonic_notes([60, 64]))[None, : 20 * HOP]
    latents = codec.encode(audio)
    assert latents.shape == (20, 194) and latents.dtype == torch.float32
    decoded = codec.decode(latents)
    assert decoded.shape == (1, 20 * HOP) and decoded.dtype == torch.float32
    assert torch.equal(codec.encode(torch.zeros(1, 10 * HOP)), torch.zeros(10, 194))  # silence is 0
    assert torch.equal(codec.decode(torch.zeros(10, 194)), torch.zeros(1, 10 * HOP))
    assert torch.equal(codec.silence_frame(), torch.zeros(194))
    assert float(latents.min()) >= 0.0 and float(latents.max()) < codec.config.max_latent


def test_other_hops_and_channel_major_layout():
    codec = SpectralCodec(SpectralCodecConfig(hop=640, channels=2, max_hz=4000.0, linear_below_hz=500.0))
    assert codec.frame_rate_hz == 25.0 and codec.bins == 321 and codec.latent_dim == 2 * codec.bands
    left = torch.from_numpy(harmonic_notes([67]))[: 12 * 640]
    latents = codec.encode(torch.stack([left, torch.zeros_like(left)]))
    assert latents.shape == (12, 2 * codec.bands)
    assert latents[:, : codec.bands].max() > 1.0 and torch.equal(latents[:, codec.bands:], torch.zeros(12, codec.bands))
    assert codec.decode(latents).shape == (2, 12 * 640)


def test_bands_are_single_bins_below_the_break_then_widen_to_the_last_bin():
    config = SpectralCodecConfig()  # 16 Hz bins, linear below 1 kHz
    centres = band_centres(config)
    assert torch.equal(centres[:63], torch.arange(63, dtype=torch.float64))
    steps = torch.diff(centres[62:])
    assert bool((steps[1:] >= steps[:-1] - 1e-9).all()) and float(steps[0]) == pytest.approx(1.0, abs=0.05)
    assert float(centres[-1]) == config.bins - 1 and config.bands == centres.shape[0] == 194
    pool, unpool = band_matrices(config)
    assert torch.allclose(unpool.sum(0), torch.ones(config.bins, dtype=torch.float64))  # interpolation weights
    assert torch.allclose(pool.sum(0), torch.ones(config.bands, dtype=torch.float64))  # band means
    assert SpectralCodecConfig(max_hz=4000.0).bands == 151


def test_analysis_and_synthesis_reconstruct_exactly_with_the_true_phase():
    codec = SpectralCodec(SpectralCodecConfig(), dtype=torch.float64)
    audio = torch.randn(1, 30 * HOP, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    magnitude, phase = codec.analyse(audio)  # frames 0 .. 29
    decoded = codec.overlap_add(magnitude, phase)  # segments 1 .. 29
    assert (decoded[0] - audio[0, HOP:]).abs().max() < 1e-10


@pytest.mark.parametrize("offset_bins", [0.0, 0.13, 0.27, 0.41, 0.5])
def test_a_lone_sinusoid_frequency_is_refined_to_within_0_005_bins(offset_bins):
    codec = SpectralCodec(SpectralCodecConfig(), dtype=torch.float64)
    t = torch.arange(4 * HOP, dtype=torch.float64)
    freq_bins = 37.0 + offset_bins  # bin spacing is 16 Hz
    tone = 0.3 * torch.cos(2 * math.pi * freq_bins * t / (2 * HOP) + 0.7)
    magnitude, _ = codec.analyse(tone[None])
    _, freq = nearest_peaks(magnitude[0, 1])
    assert abs(float(freq[37]) - freq_bins) < 0.005


def test_round_trip_keeps_the_pitch_of_harmonic_notes():
    from metrics.descriptors import PitchTracker
    from metrics.descriptors.pitch import pitched_mask

    notes = [57, 60, 64, 67, 72, 65]  # A3 .. C5
    audio = harmonic_notes(notes)  # 3 s
    codec = SpectralCodec(SpectralCodecConfig())
    decoded = blockwise(codec, codec.encode(torch.from_numpy(audio)[None]))[0].numpy()
    tracker = PitchTracker()
    original, round_trip = tracker(audio, SR), tracker(decoded, SR)
    assert pitched_mask(round_trip).mean() >= 0.9 * pitched_mask(original).mean()
    per_note = len(round_trip) // len(notes)
    for i, note in enumerate(notes):
        frames = slice(i * per_note + 8, (i + 1) * per_note - 8)  # away from the note changes
        pitched = pitched_mask(round_trip)[frames]
        assert pitched.mean() > 0.9
        assert abs(np.median(round_trip.midi[frames][pitched]) - note) * 100 < 25


def test_blockwise_decoding_equals_whole_decoding_and_the_explicit_state():
    audio = torch.from_numpy(harmonic_notes([55, 62, 59, 64, 66, 71, 67, 60], noise=0.01))[None]  # 4 s
    latents = SpectralCodec(SpectralCodecConfig()).encode(audio)  # (128, D)
    whole = SpectralCodec(SpectralCodecConfig()).decode(latents)
    streamed = blockwise(SpectralCodec(SpectralCodecConfig()), latents, block=32)
    assert (streamed - whole).abs().max() < 1e-5 * whole.abs().max()
    codec, state, parts = SpectralCodec(SpectralCodecConfig()), None, []
    for start in range(0, 128, 20):  # another block size, state kept by the caller
        part, state = codec.decode_with_state(latents[start:start + 20], state)
        parts.append(part)
    assert (torch.cat(parts, dim=1) - whole).abs().max() < 1e-5 * whole.abs().max()
    assert torch.equal(state.frame, latents[-1])


def test_the_first_block_continues_the_encoded_contexts_phase():
    audio = torch.from_numpy(harmonic_notes([62], note_s=2.0))[None]  # one held note, 64 frames
    codec = SpectralCodec(SpectralCodecConfig())
    context = codec.encode(audio[:, : 32 * HOP])  # remembers the analysed phase of its last frame
    target = SpectralCodec(SpectralCodecConfig()).encode(audio)[32:64]  # the next frames: segments 32 .. 63
    continued = codec.decode(target, previous=context[-1])[0]
    reference = audio[0, 32 * HOP: 64 * HOP]
    for segment in range(4):  # the first segments after the context, where a phase jump would show
        part = slice(segment * HOP, (segment + 1) * HOP)
        similarity = torch.nn.functional.cosine_similarity(continued[part], reference[part], dim=0)
        assert similarity > 0.8  # measured 0.87-0.92; from phase 0 instead: about -0.7
    unseen = SpectralCodec(SpectralCodecConfig()).decode(target, previous=context[-1])  # phase 0 instead
    assert torch.equal(unseen, SpectralCodec(SpectralCodecConfig()).decode_with_state(
        target, SynthesisState(context[-1], torch.zeros(1, 501)))[0])


@pytest.mark.parametrize("channels,frames", [(1, 1), (1, 32), (2, 25)])
def test_decode_flops_match_the_flop_counter(channels, frames):
    codec = SpectralCodec(SpectralCodecConfig(channels=channels))
    latents = torch.rand(frames, codec.latent_dim, generator=torch.Generator().manual_seed(3)) * 2
    with FlopCounterMode(display=False) as counter:
        codec.decode(latents, previous=latents[0])
    assert counter.get_total_flops() == codec.decode_flops(frames)


def test_decoding_is_deterministic_in_float32_and_clamps_strays():
    latents = torch.rand(40, 194, generator=torch.Generator().manual_seed(4)) * 3
    first = SpectralCodec(SpectralCodecConfig()).decode(latents)
    assert torch.equal(first, SpectralCodec(SpectralCodecConfig()).decode(latents)) and first.dtype == torch.float32
    wild = SpectralCodec(SpectralCodecConfig()).decode(latents * 100 - 50)  # far outside the data's range
    assert torch.isfinite(wild).all() and wild.abs().max() < 1e4


def test_an_rvq_fits_on_the_latents():
    audio = torch.from_numpy(harmonic_notes([55, 60, 64, 67, 72, 69, 65, 62], noise=0.005))[None]
    codec = SpectralCodec(SpectralCodecConfig(max_hz=4000.0))
    latents = codec.encode(audio)  # (128, D)
    fit = fit_rvq(latents, levels=3, size=16, iters=4, seed=0)
    assert fit.residual_energy[0] > fit.residual_energy[1] > fit.residual_energy[2]
    rvq = ResidualVQ(codec.latent_dim, 3, 16)
    rvq.load_codebooks(fit.codebooks)
    quantised = rvq.dequantize(rvq.quantize(latents))
    assert (quantised - latents).pow(2).mean() < 0.2 * (latents - latents.mean(0)).pow(2).mean()
    assert torch.isfinite(codec.decode(quantised)).all()


def test_meta_device_construction_and_flops():
    codec = SpectralCodec(SpectralCodecConfig(), device="meta")
    assert codec.analysis.device.type == "meta" and codec.decode_flops(32) > 0


def test_bad_inputs_raise_clear_errors():
    codec = SpectralCodec(SpectralCodecConfig())
    with pytest.raises(ValueError, match="channel"):
        codec.encode(torch.zeros(2, 10 * HOP))
    with pytest.raises(ValueError, match="whole number of hops"):
        codec.encode(torch.zeros(1, 10 * HOP + 1))
    with pytest.raises(ValueError, match="latents must have shape"):
        codec.decode(torch.zeros(10, 193))
    with pytest.raises(ValueError, match="latents must have shape"):
        codec.decode(torch.zeros(194))
    for bad in ({"max_hz": 9000.0}, {"max_hz": 0.0}, {"linear_below_hz": 9000.0}, {"linear_below_hz": 1.0}, {"floor": 0.0},
                {"scale": -1.0}, {"hop": 0}, {"channels": 0}, {"max_amplitude": 1e-5}):
        with pytest.raises(ConfigError):
            SpectralCodecConfig(**bad)


def test_noise_through_the_codec_stays_unpitched():
    # the MDCT codec's 0-1 kHz low-pass made white noise read 0.57 pitched; the 0-8 kHz bands keep it noise
    codec = make_codec(get_preset("cpu").dit.codec)
    noise = (0.1 * np.random.default_rng(0).standard_normal(3 * 16000)).astype(np.float32)
    decoded = codec.decode(codec.encode(torch.from_numpy(noise[None])))[0].numpy()
    assert 10 * np.log10(np.mean(decoded ** 2)) == pytest.approx(-20.0, abs=2.0)
    assert pitched_fraction(PitchTracker().track(decoded, 16000)) < 0.05
