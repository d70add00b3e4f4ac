"""The generator contract, checked for EVERY registered generator at the tiny preset.

New generators (built-in or from the entry-point group) are picked up automatically from
``GENERATORS.names(include_extras=True)`` (extras: the drift-validation generators).
"""

import contextlib
import math
from collections import Counter

import numpy as np
import pytest

from bench.core.contract import StepInfo, StreamSpec
from bench.core.phases import PHASE_ORDER
from bench.core.settings import Control
from bench.core.presets import get_preset
from bench.core.registry import GENERATORS

PRESET = get_preset("tiny")
PROMPT = Control("bach chorale, organ")
BLOCKS = 3


class CountingRecorder:
    """Counts phase entries (and checks phases are not nested)."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self._open: str | None = None

    @contextlib.contextmanager
    def phase(self, name: str):
        assert self._open is None, f"phase {name!r} entered inside phase {self._open!r}"
        self._open = name
        try:
            yield
        finally:
            self._open = None
        self.calls[name] += 1


@pytest.fixture(scope="module", params=GENERATORS.names(include_extras=True))
def generator(request):
    return GENERATORS.create(request.param, PRESET, PRESET.settings)


def _stream(gen, seed: int, blocks: int = BLOCKS, state=None, recorder_factory=None):
    state = gen.start(PROMPT, seed=seed) if state is None else state
    results = []
    for _ in range(blocks):
        recorder = recorder_factory() if recorder_factory else None
        if recorder is None:
            result, state = gen.step(state, PROMPT)
        else:
            result, state = gen.step(state, PROMPT, recorder)
        results.append((result, recorder))
    return results, state


def _audio(results) -> np.ndarray:
    return np.concatenate([r.audio for r, _ in results], axis=1)


def test_spec_is_sane(generator):
    spec = generator.spec
    settings = PRESET.settings
    assert isinstance(spec, StreamSpec)
    assert spec.regime == generator.name and generator.name in GENERATORS
    assert spec.sample_rate == PRESET.sample_rate
    assert spec.channels == PRESET.dit.codec.channels
    assert spec.frame_rate_hz > 0 and spec.block_frames >= 1 and spec.context_frames >= spec.block_frames
    frame_s = 1.0 / spec.frame_rate_hz
    assert abs(spec.block_s - settings.block_s) <= frame_s
    assert abs(spec.context_s - settings.context_s) <= settings.context_blocks * frame_s
    assert spec.block_samples > 0


def test_steps_return_host_float32_audio_and_consistent_info(generator):
    spec = generator.spec
    results, state = _stream(generator, seed=0, recorder_factory=CountingRecorder)
    for index, (result, recorder) in enumerate(results):
        audio = result.audio
        assert isinstance(audio, np.ndarray) and audio.dtype == np.float32
        assert audio.shape == (spec.channels, spec.block_samples)
        assert np.isfinite(audio).all()
        info = result.info
        assert isinstance(info, StepInfo)
        assert info.block_index == index
        assert set(info.phase_calls) <= set(PHASE_ORDER)
        assert all(isinstance(n, int) and n >= 0 for n in info.phase_calls.values())
        ran = {p for p, n in info.phase_calls.items() if n > 0}
        assert dict(recorder.calls) == {p: info.phase_calls[p] for p in ran}, "phase_calls must match the recorder"
        assert set(info.analytic_flops) <= ran, "analytic_flops may only name phases that ran"
        assert all(math.isfinite(f) and f >= 0 for f in info.analytic_flops.values())
        assert info.analytic_flops == generator.analytic_flops(first_block=index == 0)
        assert isinstance(info.tokens_processed, int) and info.tokens_processed >= 0
        assert isinstance(info.cache_len, int) and info.cache_len >= 0
        assert isinstance(info.extra, dict)
    assert generator.kv_cache_bytes(state) >= 0
    assert generator.num_parameters() >= 0
    generator.stop(state)


def test_seed_determinism(generator):
    a = _audio(_stream(generator, seed=0)[0])
    b = _audio(_stream(generator, seed=0)[0])
    c = _audio(_stream(generator, seed=1)[0])
    assert np.array_equal(a, b), "same seed must give bit-identical audio"
    assert not np.array_equal(a, c), "different seeds must give different audio"


def test_copy_state_then_step_equals_stepping_the_original(generator):
    _, state = _stream(generator, seed=4, blocks=1)
    saved = generator.copy_state(state)
    original = _audio(_stream(generator, seed=4, blocks=2, state=state)[0])
    restored = _audio(_stream(generator, seed=4, blocks=2, state=saved)[0])
    assert np.array_equal(original, restored)


def test_step_does_not_change_its_input_state(generator):
    state = generator.start(PROMPT, seed=2)
    first, _ = generator.step(state, PROMPT)
    second, _ = generator.step(state, PROMPT)
    assert np.array_equal(first.audio, second.audio)


def test_context_audio_primes_a_stream(generator):
    spec = generator.spec
    samples = spec.context_frames * spec.block_samples // spec.block_frames
    t = np.arange(samples) / spec.sample_rate
    context = np.tile(0.3 * np.sin(2 * np.pi * 60 * t), (spec.channels, 1)).astype(np.float32)
    state = generator.start(PROMPT, seed=0, context_audio=context)
    result, state = generator.step(state, PROMPT)
    assert result.audio.shape == (spec.channels, spec.block_samples)
    assert np.isfinite(result.audio).all()
    generator.stop(state)
