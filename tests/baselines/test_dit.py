"""The DiT backbone: parameter count, seeded init, checkpoints, cached passes equal full passes."""

import dataclasses

import pytest
import torch

from baselines.attention import KVCache
from baselines.dit import build_dit, parameter_count
from bench.core.errors import ConfigError
from bench.core.presets import get_preset

TINY = get_preset("tiny").dit


def _inputs(dit, rows, seed=0):
    g = torch.Generator().manual_seed(seed)
    cfg = dit.config
    noisy = torch.randn(2, rows, cfg.codec.latent_dim, generator=g)
    mask = (torch.rand(2, rows, 1, generator=g) > 0.5).float()
    cond = torch.randn(2, cfg.cond_tokens, cfg.cond_dim, generator=g)
    return noisy, mask, noisy * mask, cond


def _rope(dit, n):
    from baselines.attention import rope_cos_sin

    return rope_cos_sin(torch.arange(n, dtype=torch.float64), dit.head_dim)


def test_parameter_count_closed_form():
    for name in ("tiny", "cpu"):
        config = get_preset(name).dit
        assert sum(p.numel() for p in build_dit(config).parameters()) == parameter_count(config)
    sao = get_preset("sao-small").dit
    assert sum(p.numel() for p in build_dit(sao, "meta").parameters()) == parameter_count(sao)


def test_seeded_init_is_deterministic_and_leaves_the_global_rng_alone():
    torch.manual_seed(0)
    expected_next = torch.rand(1)
    torch.manual_seed(0)
    a = build_dit(TINY)
    assert torch.equal(torch.rand(1), expected_next)
    b = build_dit(TINY)
    c = build_dit(dataclasses.replace(TINY, init_seed=1))
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))
    assert any(not torch.equal(x, y) for x, y in zip(a.parameters(), c.parameters()))
    double = build_dit(TINY, dtype=torch.float64)
    assert all(torch.allclose(x.double(), y, atol=1e-7) for x, y in zip(a.parameters(), double.parameters()))


def test_cached_prefix_pass_equals_one_full_pass():
    # splitting the rows into [prefix | rest], with the prefix's K/V cached, is exact when the
    # mask keeps the prefix from seeing the rest (any such mask)
    dit = build_dit(TINY)
    rows, prefix = 11, 6
    noisy, mask, masked, cond = _inputs(dit, rows)
    cos, sin = _rope(dit, rows)
    attn = torch.rand(rows, rows, generator=torch.Generator().manual_seed(3)) > 0.4
    attn |= torch.eye(rows, dtype=torch.bool)
    attn[:prefix, prefix:] = False
    cross = dit.cross_cache(cond)
    h = dit.embed(noisy, mask, masked)
    full, full_kv = dit.run(h, cos, sin, attn, cross, return_kv=True)
    head, head_kv = dit.run(h[:, :prefix], cos[:prefix], sin[:prefix], attn[:prefix, :prefix], cross, return_kv=True)
    tail, _ = dit.run(h[:, prefix:], cos[prefix:], sin[prefix:], attn[prefix:], cross, past=head_kv)
    assert torch.allclose(torch.cat([head, tail], dim=1), full, atol=1e-5)
    assert torch.allclose(full_kv.keys[:, :, :, :prefix], head_kv.keys, atol=1e-5)
    assert isinstance(head_kv, KVCache) and head_kv.keys.shape == (TINY.depth, 2, TINY.heads, prefix, dit.head_dim)


def test_forward_uses_the_token_and_the_prompt():
    dit = build_dit(TINY)
    noisy, mask, masked, cond = _inputs(dit, 6)
    cos, sin = _rope(dit, 7)
    base = dit(noisy, mask, masked, torch.tensor([0.5, 0.5]), cond, cos, sin)
    assert base.shape == (2, 6, TINY.codec.latent_dim)
    other_t = dit(noisy, mask, masked, torch.tensor([0.1, 0.5]), cond, cos, sin)
    assert (base[0] - other_t[0]).abs().max() > 1e-4 and torch.allclose(base[1], other_t[1])
    other_cond = dit(noisy, mask, masked, torch.tensor([0.5, 0.5]), cond.flip(0), cos, sin)
    assert (base - other_cond).abs().max() > 1e-4


def test_checkpoint_round_trip_and_clear_errors(tmp_path):
    from safetensors.torch import save_file

    source = build_dit(dataclasses.replace(TINY, init_seed=5))
    path = tmp_path / "dit.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    loaded = build_dit(dataclasses.replace(TINY, weights=str(path)))
    assert all(torch.equal(x, y) for x, y in zip(source.parameters(), loaded.parameters()))
    with pytest.raises(ConfigError, match="dit.weights.*does not exist"):
        build_dit(dataclasses.replace(TINY, weights=str(tmp_path / "missing.safetensors")))
    wider = dataclasses.replace(TINY, weights=str(path), mlp_mult=3)
    with pytest.raises(ConfigError, match="dit.weights.*wrong shapes"):
        build_dit(wider)
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="dit.weights.*cannot read"):
        build_dit(dataclasses.replace(TINY, weights=str(bad)))
