"""lmdm-causal: the streamed ring cache equals recomputing every step over the full history."""

import dataclasses

import numpy as np
import pytest
import torch

from baselines.lmdm_causal import BlockCausalGenerator
from bench.core.errors import ConfigError
from bench.core.phases import PHASE_BOOTSTRAP, PHASE_FIRST_STEP
from bench.core.settings import Control
from bench.core.presets import apply_overrides, get_preset
from tests.baselines.diffusion_reference import max_abs_diff, record_velocities, reference_stream

TOL = 1e-5


def _generator(rope_mode: str = "fixed", cfg: bool = False, sampler: str = "pingpong") -> BlockCausalGenerator:
    preset = apply_overrides(get_preset("tiny"), [f"dit.rope_mode={rope_mode}"])
    settings = dataclasses.replace(preset.settings, cfg=cfg, sampler=sampler)
    return BlockCausalGenerator(preset, settings)


def _stream(gen, prompts, seed=3):
    velocities = record_velocities(gen)
    state = gen.start(Control(prompts[0]), seed=seed)
    audio, infos = [], []
    for prompt in prompts:
        result, state = gen.step(state, Control(prompt))
        audio.append(result.audio)
        infos.append(result.info)
    return velocities, audio, infos, state


@pytest.mark.parametrize("rope_mode", ["fixed", "offset"])
@pytest.mark.parametrize("cfg", [False, True])
def test_stream_equals_full_history_recomputation(rope_mode, cfg):
    gen = _generator(rope_mode, cfg)
    prompts = ["warm organ chords"] * 7  # W = 4: eviction and re-rotation from block 1 on
    velocities, audio, infos, _ = _stream(gen, prompts)
    ref_v, ref_audio = reference_stream(gen, "causal", prompts, seed=3)
    assert len(velocities) == len(ref_v) == 7 * gen.steps
    assert max_abs_diff(velocities, ref_v) <= TOL
    assert max_abs_diff(audio, ref_audio) <= TOL
    assert [PHASE_BOOTSTRAP in i.phase_calls for i in infos] == [True] + [False] * 6
    assert all(i.phase_calls[PHASE_FIRST_STEP] == 1 for i in infos[1:])
    # the reference is not trivially equal to something cache-free: history matters
    assert np.abs(audio[-1]).max() > 0


def test_two_different_contexts_give_different_outputs():
    # beyond numerical noise: the same context twice gives the same audio; two tones give audio that
    # differs by orders of magnitude more, in the first block (bootstrap from the context) and later
    # ones (the context stays in the KV ring until it is evicted)
    gen = _generator()
    n = np.arange(4000, dtype=np.float32)
    tones = (0.5 * np.sin(n * 0.2)[None, :], 0.5 * np.sin(n * 0.2)[None, :], 0.3 * np.sin(n * 0.03 + 1.0)[None, :])
    outs = []
    for tone in tones:
        state = gen.start(Control("x"), seed=3, context_audio=tone)
        audio = []
        for _ in range(2):
            result, state = gen.step(state, Control("x"))
            audio.append(result.audio)
        outs.append(audio)
    noise = max_abs_diff(outs[0], outs[1])
    assert noise <= 1e-6
    for block in range(2):
        assert np.abs(outs[0][block] - outs[2][block]).max() > max(1e-3, 1e3 * noise), block


def test_euler_stream_equals_reference_too():
    gen = _generator("offset", sampler="euler")
    prompts = ["bass"] * 6
    velocities, audio, _, _ = _stream(gen, prompts)
    ref_v, ref_audio = reference_stream(gen, "causal", prompts, seed=3)
    assert max_abs_diff(velocities, ref_v) <= TOL and max_abs_diff(audio, ref_audio) <= TOL


@pytest.mark.parametrize("rope_mode", ["fixed", "offset"])
def test_prompt_change_rebootstraps_from_the_current_window(rope_mode):
    gen = _generator(rope_mode)
    prompts = ["jazz piano"] * 3 + ["distorted guitar"] * 4
    velocities, audio, infos, state = _stream(gen, prompts)
    ref_v, ref_audio = reference_stream(gen, "causal", prompts, seed=3)
    assert max_abs_diff(velocities, ref_v) <= TOL and max_abs_diff(audio, ref_audio) <= TOL
    boots = [PHASE_BOOTSTRAP in i.phase_calls for i in infos]
    assert boots == [True, False, False, True, False, False, False]
    assert state.prompt == "distorted guitar"


def test_ring_is_written_in_place_at_constant_size_and_a_copied_state_replays():
    gen = _generator()
    state = gen.start(Control("x"), seed=0)
    _, s1 = gen.step(state, Control("x"))
    saved = gen.copy_state(s1)
    slots = s1.ring.slots
    assert s1.ring.oldest == 0 and slots == gen.windows - 1 >= 2
    r2, s2 = gen.step(s1, Control("x"))
    assert s2.ring is s1.ring and s2.ring.oldest == 1  # the pending chunk took the oldest one's slot
    assert not torch.equal(s1.ring.keys, saved.ring.keys)  # written in place ...
    replay, _ = gen.step(saved, Control("x"))  # ... so a saved state is a copy, and replays exactly
    assert np.array_equal(replay.audio, r2.audio)
    _, s3 = gen.step(s2, Control("x"))
    assert s3.ring.keys.shape == saved.ring.keys.shape and s3.ring.oldest == 2 % slots
    # W - 1 chunks: the oldest of the release's W chunks is never attended by a cached pass
    assert s3.ring.length == gen.context_frames - gen.block_frames
    assert s3.ring.capacity == s3.ring.length + 2 * gen.block_frames + 1  # room for a fused pass's rows
    assert gen.passes.step_mask is None  # steps 2..T see every key they are given
    assert gen.kv_cache_bytes(s3) == s3.ring.nbytes + s3.cross.nbytes > 0
    assert s3.ring_start_chunk == 2


@pytest.mark.parametrize("rope_mode", ["fixed", "offset"])
def test_one_chunk_context_keeps_an_empty_ring_and_equals_the_reference(rope_mode):
    # W = 1: every chunk attends only itself, so nothing is cached and the stream still equals the
    # full-history definition
    preset = apply_overrides(get_preset("tiny"), [f"dit.rope_mode={rope_mode}"])
    settings = dataclasses.replace(preset.settings, context_s=preset.settings.block_s)
    gen = BlockCausalGenerator(preset, settings)
    prompts = ["x"] * 3
    velocities, audio, _, state = _stream(gen, prompts)
    assert state.ring.length == 0 and gen.analytic_flops(False)
    ref_v, ref_audio = reference_stream(gen, "causal", prompts, seed=3)
    assert max_abs_diff(velocities, ref_v) <= TOL and max_abs_diff(audio, ref_audio) <= TOL


def test_causal_window_must_match_context_over_block():
    preset = get_preset("tiny")  # W = 0.5 / 0.125 = 4
    BlockCausalGenerator(apply_overrides(preset, ["dit.causal_window=4"]), preset.settings)
    with pytest.raises(ConfigError, match="dit.causal_window"):
        BlockCausalGenerator(apply_overrides(preset, ["dit.causal_window=3"]), preset.settings)


def test_single_step_blocks_use_only_bootstrap_or_fused_passes():
    preset = get_preset("tiny")
    gen = BlockCausalGenerator(preset, dataclasses.replace(preset.settings, steps=1))
    velocities, audio, infos, _ = _stream(gen, ["a"] * 5)
    ref_v, ref_audio = reference_stream(gen, "causal", ["a"] * 5, seed=3)
    assert max_abs_diff(velocities, ref_v) <= TOL and max_abs_diff(audio, ref_audio) <= TOL
    assert infos[1].phase_calls == {PHASE_FIRST_STEP: 1, "decode": 1}
