"""ARC-Forcing (baselines/training/arc.py): the rollout is the live-cache stream, gradient only
through each graded block's last step, the discriminator scores only the rollout region, and a
few generator steps lower the generator loss on a fixed batch."""

import dataclasses

import pytest
import torch

from baselines.attention import rope_cos_sin
from baselines.dit import build_dit
from baselines.lmdm_causal import BlockCausalGenerator
from baselines.training.arc import ArcSettings, ArcTask, Discriminator, rollout
from baselines.training.data import LatentBank
from bench.core.presets import apply_overrides, get_preset
from tests.baselines.diffusion_reference import chunk_mask

TOL = 1e-5


def _gen(rope_mode: str = "fixed", seed: int = 0) -> BlockCausalGenerator:
    preset = apply_overrides(get_preset("tiny"), [f"dit.rope_mode={rope_mode}", f"dit.init_seed={seed}"])
    return BlockCausalGenerator(preset, preset.settings)


def _context_and_cond(gen: BlockCausalGenerator, n: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(5)
    context = torch.randn(n, gen.context_frames, gen.latent_dim, generator=g)
    cond = torch.randn(n, gen.config.cond_tokens, gen.config.cond_dim, generator=g)
    return context, cond


def _uncached_output(gen, history: torch.Tensor, x: torch.Tensor, t: float, cond: torch.Tensor) -> torch.Tensor:
    """The block-causal definition over the FULL history (N, H, D) of clean chunks + the target x:
    one plain DiT.forward with the sliding chunk mask and stream positions, nothing cached."""
    n, rows, dim = history.shape
    b, w = gen.block_frames, gen.windows
    ids = [i // b for i in range(rows)] + [rows // b] * (b + 1)
    cos, sin = rope_cos_sin(torch.arange(rows + b + 1, dtype=torch.float64), gen.head_dim)
    noisy = torch.cat([torch.zeros_like(history), x], dim=1)
    mask = torch.cat([torch.ones(n, rows, 1), torch.zeros(n, b, 1)], dim=1)
    masked = torch.cat([history, torch.zeros(n, b, dim)], dim=1)
    return gen.dit(noisy, mask, masked, torch.full((n,), t), cond, cos, sin, chunk_mask(ids, ids, w))[:, rows:]


@pytest.mark.parametrize("rope_mode", ["fixed", "offset"])
def test_rollout_velocities_equal_uncached_recomputation(rope_mode):
    gen = _gen(rope_mode)
    context, cond = _context_and_cond(gen)
    exits = [1, 3, 2, 2, 1, 3, 2]  # W = 4 in tiny: eviction and re-rotation from block 1 on
    record = []
    with torch.no_grad():
        chunks = rollout(gen, context, cond, exits, graded_from=len(exits), rng=torch.Generator().manual_seed(1),
                         record=record)
    assert [(r.block, r.step) for r in record] == [(k, i) for k, s in enumerate(exits) for i in range(s)]
    worst = 0.0
    for r in record:
        history = torch.cat([context, *chunks[:r.block]], dim=1)  # every clean chunk so far, none evicted
        with torch.no_grad():
            ref = _uncached_output(gen, history, r.x, r.t, cond)
        worst = max(worst, float((ref - r.output).abs().max()))
    assert worst <= TOL, worst
    # and the rollout's blocks are the sampler's x0 of their exit step (not the last step of the schedule)
    last = [r for r in record if r.step == exits[r.block] - 1]
    for r, chunk in zip(last, chunks):
        assert torch.allclose(chunk, r.x - r.t * r.output, atol=1e-6)


def test_gradient_flows_only_through_the_last_step_of_graded_blocks():
    gen = _gen()
    gen.dit.requires_grad_(True)
    context, cond = _context_and_cond(gen)
    exits = [2, 3, 1, 3, 2]
    record = []
    chunks = rollout(gen, context, cond, exits, graded_from=3, rng=torch.Generator().manual_seed(2), record=record)
    graded = {(k, s - 1) for k, s in enumerate(exits) if k >= 3}
    assert {(r.block, r.step) for r in record if r.output_requires_grad} == graded
    assert not any(r.ring_requires_grad for r in record)  # the cache is always detached
    assert [c.requires_grad for c in chunks] == [False, False, False, True, True]
    # the graded block's gradient equals that of its last pass alone, recomputed from the detached
    # inputs that pass saw (so nothing before it, and no earlier step, contributes)
    weight = gen.dit.out_proj.weight
    (grad_rollout,) = torch.autograd.grad(chunks[3].sum(), weight)
    last = next(r for r in record if (r.block, r.step) == (3, exits[3] - 1))
    history = torch.cat([context, *[c.detach() for c in chunks[:3]]], dim=1)
    out = _uncached_output(gen, history, last.x, last.t, cond)
    (grad_alone,) = torch.autograd.grad((last.x - last.t * out).sum(), weight)
    assert float(grad_rollout.abs().max()) > 0
    assert torch.allclose(grad_rollout, grad_alone, atol=1e-4, rtol=1e-3)


def _task(seed: int = 0, batch: int = 4) -> ArcTask:
    gen = _gen(seed=seed)
    base = build_dit(dataclasses.replace(gen.config, init_seed=seed + 1))
    disc = Discriminator(base, max(1, gen.config.depth // 2))
    frames = gen.context_frames + 4 * gen.block_frames
    latents = torch.randn(8, frames, gen.latent_dim, generator=torch.Generator().manual_seed(3)) * 0.5
    bank = LatentBank(latents, [("warm organ", "organ"), ("fast drums", "drums")] * 4, gen.config)
    return ArcTask(gen, disc, bank, ArcSettings(min_blocks=4, max_blocks=6), batch)


def test_discriminator_scores_only_the_rollout_region():
    task = _task()
    g = torch.Generator().manual_seed(4)
    real, cond, _, _ = task.draw(g)
    t = torch.full((real.shape[0],), 0.3)
    features = task.disc.features(real, t, cond, task.cos, task.sin).detach().requires_grad_(True)
    score = task.disc.score(features, task.scored_from, real.shape[1])
    (grad,) = torch.autograd.grad(score.sum(), features)
    per_row = grad.abs().sum(dim=(0, 2))  # (S+1,)
    assert float(per_row[:task.scored_from].max()) == 0.0  # context rows: no influence on the head
    assert float(per_row[-1]) == 0.0  # the timestep token neither
    assert bool((per_row[task.scored_from:real.shape[1]] > 0).all())
    assert task.scored_from == task.gen.context_frames and real.shape[1] == task.window


def test_few_generator_steps_lower_the_generator_loss_on_a_fixed_batch():
    task = _task()
    gen = task.gen
    gen.dit.requires_grad_(True)
    optimizer = torch.optim.Adam(gen.dit.parameters(), lr=3e-3)
    draw = task.draw(torch.Generator().manual_seed(7))
    real, cond, context, exits = draw

    def fixed_loss() -> torch.Tensor:  # same batch, same rollout noise, same discriminator noise
        fake = task.fake_windows(cond, context, exits, torch.Generator().manual_seed(8))
        return task.generator_loss(real, fake, cond, torch.Generator().manual_seed(9))

    before = float(fixed_loss().detach())
    for _ in range(5):
        loss = fixed_loss()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = float(fixed_loss().detach())
    assert after < before - 1e-3, (before, after)


def test_one_arc_step_updates_both_players_and_logs_the_margins():
    task = _task()
    gen = task.gen
    gen.dit.requires_grad_(True)
    disc_before = [p.detach().clone() for p in task.disc.parameters()]
    loss = task.loss(torch.Generator().manual_seed(11))
    loss.backward()
    assert torch.isfinite(loss)
    assert any(p.grad is not None and float(p.grad.abs().max()) > 0 for p in gen.dit.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(disc_before, task.disc.parameters()))
    assert all(p.grad is None for p in task.disc.parameters())  # the generator's loss leaves D alone
    assert len(task.extra_values()) == len(task.extra_columns) == 3


def test_settings_are_checked():
    with pytest.raises(ValueError, match="scored_blocks"):
        ArcSettings(scored_blocks=5, min_blocks=4)
    with pytest.raises(ValueError, match="batch"):
        _task(batch=1)


def test_a_skipped_discriminator_update_leaves_it_unchanged():
    task = _task()
    task.settings = dataclasses.replace(task.settings, disc_update_probability=1e-9)
    task.gen.dit.requires_grad_(True)
    before = [p.detach().clone() for p in task.disc.parameters()]
    loss = task.loss(torch.Generator().manual_seed(11))
    assert torch.isfinite(loss)
    assert all(torch.equal(a, b) for a, b in zip(before, task.disc.parameters()))
    with pytest.raises(ValueError, match="disc_update_probability"):
        ArcSettings(disc_update_probability=0.0)
