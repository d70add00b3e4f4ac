"""The LMM's static-shape token passes (its compile mode's) against the eager LMM, run eager here
(the compiled ones: tests/bench/app/test_compile.py, slow; CUDA graphs: tests/gpu)."""

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from baselines.lmm import SAMPLE_PURPOSE, LiveMusicModelGenerator
from baselines.lmm_static import StaticKVCache, StaticTokenPasses
from baselines.token_sampler import race_noise, token_probs
from baselines.transformer import stack_flops
from bench.app.flops import FlopRecorder
from bench.core.contract import block_generator
from bench.core.phases import PHASE_DECODE, PHASE_DEPTH, PHASE_ENCODE, PHASE_TEMPORAL
from bench.core.presets import apply_overrides, get_preset
from bench.core.settings import Control

PROMPT = Control("bach chorale, organ")


def make(cfg: bool, tied: bool = False, **settings) -> LiveMusicModelGenerator:
    preset = get_preset("tiny")
    if tied:
        preset = apply_overrides(preset, {"lmm.tie_heads": "true"})
    return LiveMusicModelGenerator(preset, dataclasses.replace(preset.settings, cfg=cfg, **settings))


def test_a_static_cache_attends_exactly_the_written_slots():
    torch.manual_seed(0)
    b, h, cap, dh = 2, 3, 5, 4
    cache = StaticKVCache(b, h, cap, dh, "cpu", torch.float32)
    cache.k.normal_()  # stale slots: whatever an earlier frame left must get weight 0
    cache.v.normal_()
    keys, values = torch.randn(b, h, cap, dh), torch.randn(b, h, cap, dh)
    for pos in range(cap):
        q = torch.randn(b, h, 1, dh)
        k_all, v_all, mask = cache.extend(keys[:, :, pos:pos + 1], values[:, :, pos:pos + 1], True,
                                          torch.tensor(pos))
        got = F.scaled_dot_product_attention(q, k_all, v_all, attn_mask=mask)  # (B, H, 1, Dh)
        want = F.scaled_dot_product_attention(q, keys[:, :, :pos + 1], values[:, :, :pos + 1])
        assert torch.allclose(got, want, atol=1e-6), pos
        assert mask.shape == (1, 1, 1, cap) and int(mask.sum()) == pos + 1
    with pytest.raises(ValueError, match="one position per call"):
        cache.extend(keys[:, :, :2], values[:, :, :2], True, torch.tensor(0))
    with pytest.raises(ValueError, match="pass position"):
        cache.extend(keys[:, :, :1], values[:, :, :1], True)


@pytest.mark.parametrize("cfg,tied", [(False, False), (True, False), (True, True)])
def test_static_passes_draw_the_eager_tokens_from_the_eager_distributions(cfg, tied):
    gen = make(cfg, tied, block_s=0.25, context_s=0.5)  # 6 frames x 4 levels per block
    passes = StaticTokenPasses(gen)  # eager: the same code the compile mode compiles
    seen: list[torch.Tensor] = []
    depth = passes.depth_pass  # called by the depth frame pass at each level

    def recorded_depth(*args):  # noqa: ANN002, ANN202
        probs = depth(*args)
        seen.append(probs)
        return probs

    passes.depth_pass = recorded_depth
    state = gen.start(PROMPT, seed=3)
    with torch.no_grad():
        cross = gen.encode(state.context_tokens, gen._style_batch(PROMPT.prompt))
        start = gen.start_input(state.context_tokens)
        trace: dict = {}
        eager = gen.decode_tokens(cross, block_generator(3, 0, SAMPLE_PURPOSE, "cpu"), trace=trace, start=start)
        static = passes.decode_tokens(cross, block_generator(3, 0, SAMPLE_PURPOSE, "cpu"), start)
    assert static.shape == eager.shape == (6, 4)
    assert torch.equal(static, eager)
    want = [token_probs(logits, gen.settings.temperature, gen.top_k) for logits in trace["depth"]]
    assert len(seen) == len(want) == 24
    assert max(float((a - b).abs().max()) for a, b in zip(seen, want)) <= 1e-5
    assert len(set(eager.flatten().tolist())) > 1  # the sampler really samples


def test_a_frames_race_noise_in_one_draw_equals_one_draw_per_level_on_the_cpu():
    """The LMM draws a frame's (Q, V) race numbers at once (so one graph can run the frame's
    levels); on the CPU that is the stream of Q one-row draws, so the committed streams stayed."""
    for levels, vocab in [(4, 16), (2, 1024), (16, 1024), (3, 17)]:
        whole = race_noise(levels, vocab, torch.Generator().manual_seed(11), "cpu")
        rows_gen = torch.Generator().manual_seed(11)
        rows = torch.cat([race_noise(1, vocab, rows_gen, "cpu") for _ in range(levels)])
        assert whole.shape == (levels, vocab) and whole.dtype == torch.float32
        assert torch.equal(whole, rows)
        assert float(whole.min()) > 0


def test_the_depth_frame_pass_draws_each_level_from_its_row_of_the_noise():
    """A level whose noise row makes one token win by far draws that token, and the next level
    sees its embedding: the frame's tokens follow the noise, level by level."""
    gen = make(cfg=False)
    passes = StaticTokenPasses(gen)
    state = gen.start(PROMPT, seed=2)
    levels, vocab, d = gen.cfg.rvq_levels, gen.cfg.codebook_size, gen.cfg.width
    with torch.no_grad():
        cross = gen.encode(state.context_tokens, gen._style_batch(PROMPT.prompt))
        passes.decode_tokens(cross, block_generator(2, 0, SAMPLE_PURPOSE, "cpu"), gen.start_input(state.context_tokens))
        h = torch.randn(gen.batch, 1, d)
        probs = [passes.depth_pass(h, torch.zeros(1, 1, d), passes.positions[0])]  # level 0's distribution
        forced = torch.ones(levels, vocab)
        winner = int(probs[0].argmax())  # a token with probability > 0 at level 0 (top-k keeps it)
        forced[0, winner] = 1e-30  # p / e: this token wins level 0 whatever the others' p
        tokens, frame_in = passes.depth_frame_pass(h, forced)
    assert tokens.shape == (levels,) and int(tokens[0]) == winner
    embeds = gen.model.token_embed(tokens + torch.arange(levels) * vocab)  # (Q, d)
    assert torch.allclose(frame_in.view(-1), embeds.sum(dim=0), atol=1e-6)


def test_static_caches_carry_nothing_from_one_block_to_the_next():
    gen = make(cfg=True, block_s=0.25, context_s=0.5)
    used, fresh = StaticTokenPasses(gen), StaticTokenPasses(gen)
    state = gen.start(PROMPT, seed=4)
    with torch.no_grad():
        other = gen.encode(state.context_tokens, gen._style_batch("bright synth arpeggio"))
        used.decode_tokens(other, block_generator(9, 0, SAMPLE_PURPOSE, "cpu"), gen.start_input(state.context_tokens))
        cross = gen.encode(state.context_tokens, gen._style_batch(PROMPT.prompt))
        start = gen.start_input(state.context_tokens)
        a = used.decode_tokens(cross, block_generator(4, 1, SAMPLE_PURPOSE, "cpu"), start)
        b = fresh.decode_tokens(cross, block_generator(4, 1, SAMPLE_PURPOSE, "cpu"), start)
    assert torch.equal(a, b)
    assert all(cache.k.abs().sum() > 0 for cache in used.temporal_caches)  # they were written (and reused)


def test_a_compiled_block_counts_the_static_passes_math_and_a_trace_runs_eager():
    """The FLOPs pass of a compiled LMM counts what its static passes compute: every slot of a
    cache attended (masked), so temporal and depth exceed the analytic (filled-slot) FLOPs by
    exactly those attention products; encode and decode are the eager ones."""
    gen = make(cfg=True)
    gen._static = StaticTokenPasses(gen)  # what compile() installs, run eager (as under a counting mode)
    cfg, b, frames, levels = gen.cfg, gen.batch, gen.block_frames, gen.cfg.rvq_levels
    d, h, n = cfg.width, cfg.mlp_hidden, gen.encoder_tokens
    temporal = frames * stack_flops(cfg.temporal_layers, d, h, queries=1, keys=frames, batch=b, cross_keys=n)
    depth = frames * levels * (stack_flops(cfg.depth_layers, d, h, queries=1, keys=levels, batch=b)
                               + 2.0 * b * d * cfg.codebook_size)
    recorder = FlopRecorder()
    result, _ = gen.step(gen.start(PROMPT, seed=1), PROMPT, recorder)
    analytic = result.info.analytic_flops
    assert recorder.flops[PHASE_TEMPORAL] == temporal > analytic[PHASE_TEMPORAL]
    assert recorder.flops[PHASE_DEPTH] == depth > analytic[PHASE_DEPTH]
    for phase in (PHASE_ENCODE, PHASE_DECODE):
        assert recorder.flops[phase] == analytic[phase]
    # a trace (tests' view of the eager passes) never goes through the static ones
    gen._static.decode_tokens = None  # would raise if called
    with torch.no_grad():
        state = gen.start(PROMPT, seed=1)
        cross = gen.encode(state.context_tokens, gen._style_batch(PROMPT.prompt))
        trace: dict = {}
        gen.decode_tokens(cross, block_generator(1, 0, SAMPLE_PURPOSE, "cpu"), trace=trace,
                          start=gen.start_input(state.context_tokens))
    assert len(trace["depth"]) == frames * levels
