"""RoPE, masks and KV caches."""

import torch

from baselines.attention import (
    KVCache,
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
