"""The null generator: seeded noise, minimal work, contract-shaped."""

from __future__ import annotations

import numpy as np
import pytest

from baselines.noise import NOISE_STD, NoiseGenerator
from bench.core.phases import PHASE_DECODE
from bench.core.settings import Control, StreamSettings
from bench.app.flops import FlopRecorder
from bench.core.presets import get_preset
from bench.core.registry import GENERATORS


@pytest.fixture
def gen():
    return NoiseGenerator(get_preset("cpu"), StreamSettings(context_s=4.0, block_s=1.0))


def test_registered_and_spec_follows_preset(gen):
    assert GENERATORS.get("noise") is NoiseGenerator
    codec = get_preset("cpu").dit.codec
    spec = gen.spec
    assert spec.regime == "noise" and spec.sample_rate == codec.sample_rate and spec.channels == codec.channels
    assert spec.block_s == pytest.approx(1.0) and spec.context_s == pytest.approx(4.0)
    assert spec.block_samples == 16000


def test_blocks_are_seeded_float32_noise(gen):
    def stream(seed):  # noqa: ANN001, ANN202
        state = gen.start(Control("x"), seed)
        out = []
        for _ in range(3):
            res, state = gen.step(state, Control("x"))
            out.append(res.audio)
        return out

    a, b, c = stream(0), stream(0), stream(1)
    assert all(x.dtype == np.float32 and x.shape == (1, 16000) for x in a)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[0], c[0]) and not np.array_equal(a[0], a[1])
    assert np.std(np.concatenate(a, axis=1)) == pytest.approx(NOISE_STD, rel=0.02)


def test_state_copy_and_info(gen):
    state = gen.start(Control(), 5)
    _, state = gen.step(state, Control())
    copy = gen.copy_state(state)
    r1, _ = gen.step(state, Control())
    r2, _ = gen.step(copy, Control())
    assert np.array_equal(r1.audio, r2.audio)
    assert r1.info.block_index == 1 and r1.info.phase_calls == {PHASE_DECODE: 1}
    assert gen.num_parameters() == 0 and gen.kv_cache_bytes(state) == 0


def test_no_flops_measured_or_claimed(gen):
    rec = FlopRecorder()
    result, _ = gen.step(gen.start(Control(), 0), Control(), rec)
    assert rec.total() == 0 and sum(result.info.analytic_flops.values()) == 0
    assert gen.analytic_flops(True) == {PHASE_DECODE: 0.0}


def test_bad_context_audio_is_rejected(gen):
    with pytest.raises(ValueError, match="channels=1"):
        gen.start(Control(), 0, context_audio=np.zeros((2, 100), np.float32))


def test_output_does_not_depend_on_the_context(gen):
    # the null system under test ignores its context by design (it measures the harness's overhead):
    # two different context audios give bit-identical blocks, so "no dependence" is a property, not a bug
    n = np.arange(64000, dtype=np.float32)
    outs = []
    for context in (None, 0.5 * np.sin(n * 0.2)[None, :], 0.3 * np.sin(n * 0.03)[None, :]):
        result, _ = gen.step(gen.start(Control("x"), 0, context_audio=context), Control("x"))
        outs.append(result.audio)
    assert np.array_equal(outs[0], outs[1]) and np.array_equal(outs[1], outs[2])


def test_phased_null_generator_has_the_lmms_phase_entries_and_the_same_audio():
    from baselines.lmm import LiveMusicModelGenerator
    from baselines.noise import PhasedNoiseGenerator

    preset = get_preset("tiny")
    phased = GENERATORS.create("noise-phased", preset, preset.settings)
    assert isinstance(phased, PhasedNoiseGenerator)
    plain = NoiseGenerator(preset, preset.settings)
    lmm = LiveMusicModelGenerator(preset, preset.settings)
    recorder = FlopRecorder()
    result, _ = phased.step(phased.start(Control("x"), 1), Control("x"), recorder)
    lmm_result, _ = lmm.step(lmm.start(Control("x"), 1), Control("x"))
    assert result.info.phase_calls == lmm_result.info.phase_calls == dict(recorder.calls)
    assert phased.phase_entries == sum(lmm_result.info.phase_calls.values())
    assert set(result.info.analytic_flops) == set(lmm_result.info.analytic_flops)
    assert all(v == 0.0 for v in result.info.analytic_flops.values())
    expected, _ = plain.step(plain.start(Control("x"), 1), Control("x"))
    assert np.array_equal(result.audio, expected.audio)

