"""lmdm-encdec: prefill-once + target-only steps equal the uncached window under the enc-dec mask."""

import dataclasses

import numpy as np
import pytest
import torch

from baselines.lmdm_encdec import EncDecGenerator
from bench.core.phases import PHASE_PREFILL, PHASE_STEP
from bench.core.settings import Control
from bench.core.presets import get_preset
from tests.baselines.diffusion_reference import max_abs_diff, record_velocities, reference_stream

TOL = 1e-5


def _generator(cfg: bool = False, **changes) -> EncDecGenerator:
    preset = get_preset("tiny")
    return EncDecGenerator(preset, dataclasses.replace(preset.settings, cfg=cfg, **changes))


def _stream(gen, prompts, seed=5, context_audio=None):
    velocities = record_velocities(gen)
    state = gen.start(Control(prompts[0]), seed=seed, context_audio=context_audio)
    results = []
    for prompt in prompts:
        result, state = gen.step(state, Control(prompt))
        results.append(result)
    return velocities, results, state


@pytest.mark.parametrize("cfg", [False, True])
def test_cached_steps_equal_uncached_window(cfg):
    gen = _generator(cfg)
    prompts = ["slow strings"] * 3 + ["fast drums"] * 2
    audio_in = 0.3 * np.sin(np.arange(8000, dtype=np.float32) * 0.05)[None, :]
    velocities, results, _ = _stream(gen, prompts, context_audio=audio_in)
    context = gen._encode_context(audio_in)
    ref_v, ref_audio = reference_stream(gen, "encdec", prompts, seed=5, context=context)
    assert len(velocities) == len(ref_v) == 5 * gen.steps
    assert max_abs_diff(velocities, ref_v) <= TOL
    assert max_abs_diff([r.audio for r in results], ref_audio) <= TOL


def test_two_different_contexts_give_different_outputs():
    # beyond numerical noise: the same context twice gives the same audio, two tones give audio that
    # differs by orders of magnitude more (the prefilled context conditions every block)
    gen = _generator()
    n = np.arange(8000, dtype=np.float32)
    tone_a, tone_b = 0.3 * np.sin(n * 0.05)[None, :], 0.5 * np.sin(n * 0.31 + 1.0)[None, :]
    outs = [[r.audio for r in _stream(gen, ["x", "x"], context_audio=tone)[1]] for tone in (tone_a, tone_a, tone_b)]
    noise = max_abs_diff(outs[0], outs[1])
    assert noise <= 1e-6
    for block in range(2):
        assert np.abs(outs[0][block] - outs[2][block]).max() > max(1e-3, 1e3 * noise), block
    assert np.abs(_stream(gen, ["x"])[1][0].audio - outs[0][0]).max() > 1e-3  # silence (no context) differs too


def test_context_rows_do_not_depend_on_the_target_or_t():
    # the property that makes prefill-once exact: under the enc-dec mask with the noisy context
    # input zeroed, changing the target rows and t leaves the context rows' outputs unchanged
    gen = _generator()
    dit, c, b, dim = gen.dit, gen.context_frames, gen.block_frames, gen.latent_dim
    g = torch.Generator().manual_seed(0)
    clean = torch.randn(1, c, dim, generator=g)
    cond = torch.randn(1, gen.config.cond_tokens, gen.config.cond_dim, generator=g)
    cos, sin = gen._rope(0, c + b + 1)
    mask = torch.ones(c + b + 1, c + b + 1, dtype=torch.bool)
    mask[:c, c:] = False
    in_mask = torch.cat([torch.ones(1, c, 1), torch.zeros(1, b, 1)], dim=1)
    masked = torch.cat([clean, torch.zeros(1, b, dim)], dim=1)
    outs = []
    for t in (0.9, 0.2):
        noisy = torch.cat([torch.zeros(1, c, dim), torch.randn(1, b, dim, generator=g)], dim=1)
        h = torch.cat([dit.embed(noisy, in_mask, masked), dit.time_token(torch.tensor([t]), cond[:, -1])], dim=1)
        outs.append(dit.run(h, cos, sin, mask, dit.cross_cache(cond))[0])
    assert torch.allclose(outs[0][:, :c], outs[1][:, :c], atol=1e-6)
    assert not torch.allclose(outs[0][:, c:], outs[1][:, c:], atol=1e-3)


def test_prompt_cross_kv_is_cached_until_the_prompt_changes():
    gen = _generator()
    _, results, state = _stream(gen, ["a"] * 2 + ["b"] + ["b"])
    assert [r.info.extra["prompt_changed"] for r in results] == [True, False, True, False]
    assert results[0].info.analytic_flops[PHASE_PREFILL] > results[1].info.analytic_flops[PHASE_PREFILL]
    assert results[2].info.analytic_flops[PHASE_PREFILL] == results[0].info.analytic_flops[PHASE_PREFILL]
    assert state.prompt == "b" and gen.kv_cache_bytes(state) == state.cross.nbytes


def test_lengths_come_from_the_config():
    # the public release hard-coded a 208-latent prefill; here C and B follow the stream settings
    for context_s, block_s in ((0.5, 0.125), (0.75, 0.25)):
        gen = _generator(context_s=context_s, block_s=block_s)
        c, b, steps = gen.context_frames, gen.block_frames, gen.steps
        assert (c, b) == (round(context_s * 32), round(block_s * 32))
        _, results, _ = _stream(gen, ["x"])
        info = results[0].info
        assert info.tokens_processed == c + steps * (b + 1)
        assert info.phase_calls == {PHASE_PREFILL: 1, PHASE_STEP: steps, "decode": 1}
        # the block's buffer: the context's K/V and room for one step's B + 1 rows
        assert info.transient_kv_bytes == 2 * gen.config.depth * (c + b + 1) * gen.config.width * 4


def test_immutable_cache_path_of_compiled_runs_equals_the_in_place_buffer():
    in_place, immutable = _generator(cfg=True), _generator(cfg=True)
    immutable._use_immutable_caches()  # what compile() switches to
    prompts = ["a", "a", "b"]
    v_a, r_a, _ = _stream(in_place, prompts)
    v_b, r_b, _ = _stream(immutable, prompts)
    assert max_abs_diff(v_a, v_b) <= 1e-6
    assert max(float(np.abs(x.audio - y.audio).max()) for x, y in zip(r_a, r_b)) <= 1e-6
    assert in_place._cache is not None and immutable._cache is None  # only the eager path holds a buffer
    assert r_b[0].info.transient_kv_bytes == 2 * 2 * in_place.config.depth * in_place.context_frames * \
        in_place.config.width * 4  # the immutable cache: the context alone (CFG doubles the batch)
