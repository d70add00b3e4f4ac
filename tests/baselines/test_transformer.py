import math

import pytest
import torch

from baselines.transformer import KVCache, Stack, init_parameters, memory_kv_flops, sinusoids, stack_flops
from bench.app.flops import count_flops


def _stack(cross: bool, layers: int = 2, width: int = 16, heads: int = 2, hidden: int = 24, seed: int = 0) -> Stack:
    stack = Stack(layers, width, heads, hidden, cross=cross, device="meta").to_empty(device="cpu")
    init_parameters(stack, torch.Generator().manual_seed(seed), std=0.2)
    return stack.eval()


def test_sinusoids_closed_form():
    table = sinusoids(7, 6)
    assert table.shape == (7, 6)
    for p in range(7):
        for j in range(3):
            freq = math.exp(-math.log(10000.0) * j / 3)
            assert table[p, 2 * j].item() == pytest.approx(math.sin(p * freq), abs=1e-6)
            assert table[p, 2 * j + 1].item() == pytest.approx(math.cos(p * freq), abs=1e-6)
    assert sinusoids(4, 5).shape == (4, 5)  # odd widths work


@pytest.mark.parametrize("cross", [False, True])
def test_cached_chunks_equal_full_causal_pass(cross):
    stack = _stack(cross)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, 9, 16, generator=gen)  # (B, T, D)
    kvs = stack.memory_kv(torch.randn(2, 5, 16, generator=gen)) if cross else None
    full = stack(x, causal=True, cross_kvs=kvs)
    caches = stack.new_caches(2, 9, "cpu", torch.float32)
    parts, start = [], 0
    for size in (3, 1, 1, 4):  # multi-token chunks need the offset causal mask
        parts.append(stack(x[:, start:start + size], caches=caches, causal=True, cross_kvs=kvs))
        start += size
    assert caches[0].length == 9
    assert (torch.cat(parts, dim=1) - full).abs().max() <= 1e-5


def test_cache_reset_and_overflow():
    cache = KVCache(1, 2, 3, 4, "cpu", torch.float32)
    k = torch.ones(1, 2, 2, 4)
    cache.append(k, k)
    with pytest.raises(RuntimeError, match="overflow"):
        cache.append(k, k)
    cache.reset()
    keys, _ = cache.append(2 * k, 2 * k)
    assert keys.shape == (1, 2, 2, 4) and torch.equal(keys, 2 * k)
    assert cache.nbytes() == 2 * 1 * 2 * 3 * 4 * 4


def test_stack_flops_match_the_counter():
    stack = _stack(cross=True, layers=3, width=32, heads=4, hidden=40)
    x, memory = torch.randn(2, 6, 32), torch.randn(2, 11, 32)
    assert count_flops(stack.memory_kv, memory) == memory_kv_flops(3, 32, 11, batch=2)
    kvs = stack.memory_kv(memory)
    measured = count_flops(stack, x, causal=True, cross_kvs=kvs)
    assert measured == stack_flops(3, 32, 40, queries=6, keys=6, batch=2, cross_keys=11)
    caches = stack.new_caches(2, 8, "cpu", torch.float32)
    stack(x[:, :5], caches=caches, cross_kvs=kvs)
    measured = count_flops(stack, x[:, 5:6], caches=caches, cross_kvs=kvs)  # 1 query, 6 keys
    assert measured == stack_flops(3, 32, 40, queries=1, keys=6, batch=2, cross_keys=11)


def test_init_is_seeded_and_leaves_the_global_rng_alone():
    before = torch.random.get_rng_state()
    a, b, c = _stack(False, seed=3), _stack(False, seed=3), _stack(False, seed=4)
    assert torch.equal(torch.random.get_rng_state(), before)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(sa["blocks.0.self_attn.qkv.weight"], sc["blocks.0.self_attn.qkv.weight"])
    assert torch.equal(sa["norm.weight"], torch.ones(16))
    assert torch.equal(sa["blocks.1.norm_mlp.weight"], torch.ones(16))
