"""The degrading test generators: contract, determinism, and the degradation schedule they promise."""

from __future__ import annotations

import numpy as np
import pytest

from baselines.degrading import (
    DEGRADING_GENERATORS, NoiseCollapseGenerator, SilenceCollapseGenerator, SyntheticMusicGenerator,
    TiltDriftGenerator, degradation_gain, render_music,
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
    assert set(DEGRADING_GENERATORS) == {"drift-control", "drift-tilt", "collapse-silence", "collapse-noise"}
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
