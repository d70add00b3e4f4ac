"""The degrading test generators: contract, determinism, and the degradation schedule they promise."""

from __future__ import annotations

import numpy as np
import pytest

from baselines.degrading import (
    DEGRADING_GENERATORS, KeyChangeGenerator, NoiseCollapseGenerator, SilenceCollapseGenerator,
    SyntheticMusicGenerator, TiltDriftGenerator, TonalMusicGenerator, degradation_gain, render_music,
    render_tonal_music,
)
from bench.core.errors import ConfigError
from bench.core.settings import Control, StreamSettings
from bench.app.flops import FlopRecorder
from bench.core.presets import get_preset

PRESET = get_preset("tiny")
SETTINGS = StreamSettings(context_s=0.5, block_s=0.125, steps=3)
PROMPT = Control("bach chorale, organ")


def stream(gen, n_blocks: int, seed: int = 0, control: Control = PROMPT) -> np.ndarray:
    state = gen.start(control, seed)
    blocks = []
    for _ in range(n_blocks):
        result, state = gen.step(state, control)
        blocks.append(result.audio)
    return np.concatenate(blocks, axis=1)  # (C, T)


def test_registry_names_and_spec() -> None:
    assert set(DEGRADING_GENERATORS) == {"drift-control", "drift-tilt", "collapse-silence", "collapse-noise",
                                         "tonal-control", "key-change"}
    gen = TiltDriftGenerator(PRESET, SETTINGS)
    spec = gen.spec
    assert spec.sample_rate == 8000 and spec.channels == 1 and spec.regime == "drift-tilt"
    result, _ = gen.step(gen.start(PROMPT, 0), PROMPT)
    assert result.audio.shape == (1, spec.block_samples) and result.audio.dtype == np.float32


def test_block_by_block_equals_rendering_at_once() -> None:
    audio = stream(SyntheticMusicGenerator(PRESET, SETTINGS), 16)  # 2 s
    once = render_music(8000, 0, PROMPT.prompt, 0, audio.shape[1])
    np.testing.assert_allclose(audio[0], once, atol=1e-7)
    assert 0.01 < np.abs(audio).max() < 0.9  # audible, unclipped


def test_determinism_and_copy_state() -> None:
    gen = TiltDriftGenerator(PRESET, SETTINGS, onset_s=0.25, ramp_s=0.25)
    np.testing.assert_array_equal(stream(gen, 8, seed=3), stream(gen, 8, seed=3))
    assert not np.array_equal(stream(gen, 8, seed=3), stream(gen, 8, seed=4))
    assert not np.array_equal(stream(gen, 8, control=Control("a")), stream(gen, 8, control=Control("b")))
    state = gen.start(PROMPT, 1)
    for _ in range(3):
        _, state = gen.step(state, PROMPT)
    saved = gen.copy_state(state)
    first, _ = gen.step(state, PROMPT)
    again, _ = gen.step(saved, PROMPT)
    np.testing.assert_array_equal(first.audio, again.audio)


@pytest.mark.parametrize("cls", [TiltDriftGenerator, SilenceCollapseGenerator, NoiseCollapseGenerator])
def test_identical_to_the_control_before_the_onset(cls) -> None:
    control = stream(SyntheticMusicGenerator(PRESET, SETTINGS), 16)
    degraded = stream(cls(PRESET, SETTINGS, onset_s=1.0, ramp_s=0.5), 16)
    onset = 8000  # 1.0 s
    np.testing.assert_array_equal(degraded[:, :onset], control[:, :onset])
    assert not np.allclose(degraded[:, onset + 100:], control[:, onset + 100:])


def test_schedules() -> None:
    np.testing.assert_allclose(degradation_gain([0.0, 10.0, 11.0, 12.0, 20.0], 10.0, 2.0), [0, 0, 0.5, 1, 1])
    np.testing.assert_array_equal(degradation_gain([9.99, 10.0], 10.0, 0.0), [0.0, 1.0])
    silent = stream(SilenceCollapseGenerator(PRESET, SETTINGS, onset_s=0.5, ramp_s=0.25), 16)
    assert np.all(silent[:, int(0.75 * 8000):] == 0.0)  # digital silence after the ramp
    noisy = stream(NoiseCollapseGenerator(PRESET, SETTINGS, onset_s=0.5, ramp_s=0.0), 16)
    tail = noisy[:, 4000:]
    assert np.abs(tail).max() == 1.0 and 0.1 < np.mean(np.abs(tail) >= 0.999) < 0.4  # hard clipped
    gen = TiltDriftGenerator(PRESET, SETTINGS, onset_s=0.5, ramp_s=0.5)
    state = gen.start(PROMPT, 0)
    gains = []
    for _ in range(10):
        result, state = gen.step(state, PROMPT)
        gains.append(result.info.extra["degradation_gain"])
    np.testing.assert_allclose(gains, gen.schedule(np.arange(1, 11) * 0.125 - 1 / 8000))
    assert SyntheticMusicGenerator(PRESET, SETTINGS).schedule(100.0) == 0.0


def test_bad_schedule_is_rejected() -> None:
    with pytest.raises(ConfigError, match="onset_s"):
        TiltDriftGenerator(PRESET, SETTINGS, onset_s=-1.0)
    with pytest.raises(ConfigError, match="ramp_s"):
        TiltDriftGenerator(PRESET, SETTINGS, ramp_s=float("nan"))


def test_no_matmul_flops_measured_or_claimed() -> None:
    gen = TiltDriftGenerator(PRESET, SETTINGS)
    recorder = FlopRecorder()
    result, _ = gen.step(gen.start(PROMPT, 0), PROMPT, recorder)
    assert recorder.total() == 0.0 and sum(gen.analytic_flops(True).values()) == 0.0
    assert result.info.phase_calls == {"decode": 1}


def _spectrum_peaks_pc(audio: np.ndarray, rate: int) -> np.ndarray:
    """(12,) energy per pitch class of a mono clip's spectrum between 60 Hz and 1.5 kHz."""
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(audio.shape[0]))) ** 2
    freqs = np.fft.rfftfreq(audio.shape[0], 1.0 / rate)
    keep = (freqs > 60.0) & (freqs < 1500.0)
    pcs = np.rint(69 + 12 * np.log2(freqs[keep] / 440.0)).astype(int) % 12
    return np.bincount(pcs, weights=spectrum[keep], minlength=12)


def test_tonal_music_stays_in_its_major_key_and_transposes() -> None:
    rate, seconds = 8000, 8
    home = render_tonal_music(rate, 0, PROMPT.prompt, 0, rate * seconds)
    away = render_tonal_music(rate, 0, PROMPT.prompt, 0, rate * seconds, transpose=6)
    energy = _spectrum_peaks_pc(home, rate)
    tonic = int(np.argmax(energy))  # the tonic (and its fifth) dominate a I-IV-V-I cadence
    in_key = {(tonic + d) % 12 for d in (0, 2, 4, 5, 7, 9, 11)}
    assert energy[sorted(in_key)].sum() > 0.95 * energy.sum()  # nothing outside the major scale
    np.testing.assert_allclose(_spectrum_peaks_pc(away, rate), np.roll(energy, 6), rtol=0.35, atol=1e-3 * energy.max())
    assert 0.05 < np.abs(home).max() < 0.9
    gen = TonalMusicGenerator(PRESET, SETTINGS)
    np.testing.assert_allclose(stream(gen, 16)[0], render_tonal_music(rate, 0, PROMPT.prompt, 0, 16000), atol=1e-7)


def test_key_change_modulates_at_its_onset() -> None:
    control = stream(TonalMusicGenerator(PRESET, SETTINGS), 24)  # 3 s
    changed = stream(KeyChangeGenerator(PRESET, SETTINGS, onset_s=1.0, ramp_s=0.0, shift_semitones=6), 24)
    np.testing.assert_array_equal(changed[:, :8000], control[:, :8000])  # identical before the onset
    moved = render_tonal_music(8000, 0, PROMPT.prompt, 8000, 16000, transpose=6)
    np.testing.assert_allclose(changed[0, 8000:], moved, atol=1e-6)  # the transposed piece after it
    with pytest.raises(ConfigError, match="shift_semitones"):
        KeyChangeGenerator(PRESET, SETTINGS, shift_semitones=12)
