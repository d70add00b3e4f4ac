"""RoPE, masks and KV caches."""

import pytest
import torch

from baselines.attention import (
    KVBuffer,
    KVCache,
    KVRing,
    apply_rope,
    block_causal_mask,
    encdec_mask,
    rerotate,
    rope_cos_sin,
    window_chunk_ids,
)


def _rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_rope_scores_depend_only_on_relative_position():
    q, k = _rand(1, 1, 1, 16, seed=1), _rand(1, 1, 1, 16, seed=2)

    def score(pq, pk):
        cq, sq = rope_cos_sin(torch.tensor([float(pq)]), 16, torch.float64)
        ck, sk = rope_cos_sin(torch.tensor([float(pk)]), 16, torch.float64)
        return float((apply_rope(q, cq, sq) * apply_rope(k, ck, sk)).sum())

    assert abs(score(7, 3) - score(1007, 1003)) < 1e-9
    assert abs(score(7, 3) - score(-3, -7)) < 1e-9
    assert abs(score(7, 3) - score(8, 3)) > 1e-3


def test_rope_preserves_norm_and_position_zero_is_identity():
    x = _rand(2, 3, 5, 8)
    cos, sin = rope_cos_sin(torch.arange(5, dtype=torch.float64) * 13, 8, torch.float64)
    assert torch.allclose(apply_rope(x, cos, sin).norm(dim=-1), x.norm(dim=-1))
    c0, s0 = rope_cos_sin(torch.zeros(1), 8, torch.float64)
    assert torch.equal(apply_rope(x, c0, s0), x)


def test_rerotation_composes_with_rotation():
    x = _rand(1, 2, 6, 8)
    positions = torch.arange(10, 16, dtype=torch.float64)
    cos, sin = rope_cos_sin(positions, 8, torch.float64)
    cos_m, sin_m = rope_cos_sin(positions - 4, 8, torch.float64)
    assert torch.allclose(rerotate(apply_rope(x, cos, sin), -4), apply_rope(x, cos_m, sin_m), atol=1e-12)
    cache = KVCache(apply_rope(x, cos, sin)[None], x[None])
    moved = cache.rerotated(*rope_cos_sin(torch.tensor([-4.0]), 8, torch.float64))
    assert torch.allclose(moved.keys[0], apply_rope(x, cos_m, sin_m), atol=1e-12)
    assert torch.equal(moved.values, cache.values)


def test_release_window_mask_equals_the_sliding_definition():
    context, block = 12, 3  # W = 4
    w = context // block
    ids = window_chunk_ids(context, block)
    assert ids[-1] == w and ids[context] == w and ids[context - 1] == w - 1
    mask = block_causal_mask(ids, ids, w)
    for qi in range(len(ids)):
        for ki in range(len(ids)):
            q_block, kv_block = min(qi // block, w), min(ki // block, w)  # the release formula
            assert bool(mask[qi, ki]) == (q_block - w + 1 <= kv_block <= q_block)
    # the target sees context chunks 1..W-1 and itself, never chunk 0; chunk 0 sees only itself
    assert not mask[context:, :block].any() and mask[context:, block:].all()
    assert mask[:block, :block].all() and not mask[:block, block:].any()


def test_encdec_mask():
    m = encdec_mask(5, 3)
    assert m.shape == (8, 8)
    assert m[:5, :5].all() and not m[:5, 5:].any() and m[5:].all()


def test_kv_cache_evict_append_keeps_size_and_does_not_mutate():
    keys = torch.arange(2 * 1 * 1 * 6 * 2, dtype=torch.float32).view(2, 1, 1, 6, 2)
    cache = KVCache(keys, keys + 100)
    fresh = KVCache(-torch.ones(2, 1, 1, 2, 2), -torch.ones(2, 1, 1, 2, 2))
    out = cache.evict_append(fresh)
    assert out.length == 6 and cache.length == 6
    assert torch.equal(out.keys[:, :, :, :4], keys[:, :, :, 2:]) and (out.keys[:, :, :, 4:] == -1).all()
    assert torch.equal(cache.keys, torch.arange(24, dtype=torch.float32).view(2, 1, 1, 6, 2))
    assert out.nbytes == 2 * 24 * 4
    assert torch.equal(cache.tokens(1, 3).values, (keys + 100)[:, :, :, 1:3])


def test_buffer_layer_attends_what_concatenation_attends_without_copying_the_cache():
    past = KVCache(_rand(2, 1, 3, 5, 4), _rand(2, 1, 3, 5, 4, seed=1))
    buffer = KVBuffer.allocate(2, 1, 3, 5 + 6, 4, torch.device("cpu"), torch.float64)
    buffer.keys[:, :, :, :5], buffer.values[:, :, :, :5] = past.keys, past.values
    buffer.keep(5)
    k, v = _rand(1, 3, 6, 4, seed=2), _rand(1, 3, 6, 4, seed=3)
    for index in range(2):
        keys, values = buffer.past_layer(index).extend(k, v)
        ref_k, ref_v = past.past_layer(index).extend(k, v)
        assert torch.equal(keys, ref_k) and torch.equal(values, ref_v)
        assert keys.data_ptr() == buffer.keys[index].data_ptr()  # a view of the buffer, not a copy
    assert buffer.cached().length == 5 and buffer.capacity == 11
    with pytest.raises(ValueError, match="cannot keep 12"):
        buffer.keep(12)


def test_ring_replaces_its_oldest_slot_like_evict_append():
    chunk, slots = 2, 3
    start = KVCache(_rand(2, 1, 1, chunk * slots, 4), _rand(2, 1, 1, chunk * slots, 4, seed=1))
    ring, cache = KVRing.from_tokens(start, chunk=chunk, room=2 * chunk + 1), start
    assert torch.equal(ring.ordered().keys, start.keys) and ring.slots == slots
    address = ring.keys.data_ptr()
    for block in range(5):
        fresh_k, fresh_v = _rand(1, 1, 2 * chunk + 1, 4, seed=10 + block), _rand(1, 1, 2 * chunk + 1, 4, seed=20 + block)
        for index in range(2):
            ring.past_layer(index).extend(fresh_k + index, fresh_v - index)
        pending = KVCache(torch.stack([fresh_k + i for i in range(2)])[:, :, :, :chunk],
                          torch.stack([fresh_v - i for i in range(2)])[:, :, :, :chunk])
        assert ring.advance() is ring and ring.oldest == (block + 1) % slots
        cache = cache.evict_append(pending)
        assert torch.equal(ring.ordered().keys, cache.keys) and torch.equal(ring.ordered().values, cache.values)
    assert ring.keys.data_ptr() == address  # never reallocated
    cos, sin = rope_cos_sin(torch.tensor([-2.0]), 4)
    moved = cache.rerotated(cos, sin)
    assert ring.rerotated(cos, sin) is ring and torch.allclose(ring.ordered().keys, moved.keys, atol=1e-6)
    with pytest.raises(ValueError, match="whole number"):
        KVRing.from_tokens(KVCache(_rand(1, 1, 1, 5, 4), _rand(1, 1, 1, 5, 4)), chunk=2, room=1)


def test_in_place_causal_passes_equal_the_immutable_ones():
    from baselines.lmdm_causal import BlockCausalGenerator
    from bench.core.presets import get_preset

    preset = get_preset("tiny")
    gen = BlockCausalGenerator(preset, preset.settings)
    cond = gen._conditioning("p")
    tables = gen.rope_tables(0)
    n, b = gen.batch, gen.block_frames
    x = torch.randn(n, b, gen.latent_dim, generator=torch.Generator().manual_seed(0))
    context = torch.randn(n, gen.context_frames, gen.latent_dim, generator=torch.Generator().manual_seed(1))
    t = torch.full((n,), 0.7)
    cross = gen.dit.cross_cache(cond)
    with torch.no_grad():
        out_a, ring_a = gen.passes.bootstrap(x, t, context, cond, cross, tables["boot"])
        out_b, ring_b = gen.functional_passes.bootstrap(x, t, context, cond, cross, tables["boot"])
        assert isinstance(ring_a, KVRing) and isinstance(ring_b, KVCache) and torch.equal(out_a, out_b)
        for block in range(4):  # the oldest chunk visits every slot
            pending = context[:, -b:] + block
            out_a, ring_a = gen.passes.fused(x, t, pending, cond, cross, ring_a, tables["fused"])
            out_b, ring_b = gen.functional_passes.fused(x, t, pending, cond, cross, ring_b, tables["fused"])
            assert torch.allclose(out_a, out_b, atol=1e-5)
            step_a = gen.passes.step(x, t, cond, cross, ring_a, tables["step"])
            step_b = gen.functional_passes.step(x, t, cond, cross, ring_b, tables["step"])
            assert torch.allclose(step_a, step_b, atol=1e-5)
            assert torch.allclose(ring_a.ordered().keys, ring_b.keys, atol=1e-5)
