"""Samplers on a closed form: the exact rectified-flow velocity of a Gaussian target."""

import math

import pytest
import torch

from baselines.samplers import cfg_combine, get_sampler, logsnr_schedule, sample_euler, sample_pingpong
from bench.core.errors import ConfigError

MU, S = 1.5, 0.4  # target x0 ~ N(MU, S^2), independent per dimension


def gaussian_velocity(x: torch.Tensor, t: float, step_index: int) -> torch.Tensor:
    """E[eps - x0 | x_t = x] for x_t = (1 - t) x0 + t eps."""
    var = (1 - t) ** 2 * S**2 + t**2
    centred = x - (1 - t) * MU
    return t / var * centred - (MU + (1 - t) * S**2 / var * centred)


def test_schedule_is_sigmoid_of_evenly_spaced_logsnr():
    ts = logsnr_schedule(8)
    assert len(ts) == 9 and ts[-1] == 0.0
    assert all(a > b for a, b in zip(ts, ts[1:]))
    logsnr = [math.log((1 - t) / t) for t in ts[:-1]]  # t = sigmoid(-logsnr)
    assert abs(logsnr[0] + 6) < 1e-9 and abs(logsnr[-1] - 2) < 1e-9
    assert max(abs((b - a) - 8 / 7) for a, b in zip(logsnr, logsnr[1:])) < 1e-9
    assert logsnr_schedule(1) == (1 / (1 + math.exp(-6)), 0.0)


def test_euler_with_the_exact_velocity_follows_the_gaussian_flow():
    # the probability-flow ODE of a Gaussian maps z ~ N(0, 1) at t = 1 to MU + S z at t = 0
    z = torch.linspace(-3, 3, 13, dtype=torch.float64)
    steps = 4000
    ts = [1 - i / steps for i in range(steps + 1)]
    x0 = sample_euler(gaussian_velocity, z, ts)
    assert torch.allclose(x0, MU + S * z, atol=2e-3)


def test_pingpong_one_step_is_the_denoiser():
    x = torch.randn(5, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    out = sample_pingpong(gaussian_velocity, x, (0.7, 0.0), torch.Generator())
    assert torch.allclose(out, x - 0.7 * gaussian_velocity(x, 0.7, 0))


def test_pingpong_moments_match_the_gaussian_recursion():
    # every quantity is linear-Gaussian, so the output mean/variance follow a closed recursion
    ts = logsnr_schedule(6)
    mean, var = 0.0, 1.0  # x at ts[0] is pure noise
    for t, t_next in zip(ts[:-1], ts[1:]):
        gain = (1 - t) * S**2 / ((1 - t) ** 2 * S**2 + t**2)
        mean, var = MU + gain * (mean - (1 - t) * MU), gain**2 * var  # x0 = E[x0 | x_t]
        if t_next > 0:
            mean, var = (1 - t_next) * mean, (1 - t_next) ** 2 * var + t_next**2
    gen = torch.Generator().manual_seed(1)
    noise = torch.randn(400_000, generator=gen, dtype=torch.float64)
    out = sample_pingpong(gaussian_velocity, noise, ts, gen)
    assert abs(float(out.mean()) - mean) < 5e-3
    assert abs(float(out.var()) - var) < 0.02 * var + 1e-4
    assert var < S**2  # ping-pong returns posterior means: less spread than the data


def test_pingpong_draws_only_from_the_given_generator():
    noise = torch.zeros(4, 2)
    a = sample_pingpong(gaussian_velocity, noise, logsnr_schedule(4), torch.Generator().manual_seed(3))
    torch.manual_seed(123)
    b = sample_pingpong(gaussian_velocity, noise, logsnr_schedule(4), torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_cfg_combine_and_sampler_lookup():
    vc, vu = torch.tensor([2.0]), torch.tensor([1.0])
    assert cfg_combine(vc, vu, 1.0) == vc and cfg_combine(vc, vu, 0.0) == vu
    assert cfg_combine(vc, vu, 3.0) == torch.tensor([4.0])
    assert get_sampler("euler") is sample_euler and get_sampler("pingpong") is sample_pingpong
    with pytest.raises(ConfigError, match="settings.sampler"):
        get_sampler("ddim")
    with pytest.raises(ValueError, match="end at 0"):
        sample_euler(gaussian_velocity, torch.zeros(1), (1.0, 0.5))


@pytest.mark.parametrize("name", ["euler", "pingpong"])
def test_on_step_sees_every_step_and_changes_nothing(name):
    sampler = get_sampler(name)
    ts = logsnr_schedule(5)
    noise = torch.randn(4, 3, generator=torch.Generator().manual_seed(0))
    inputs = []

    def velocity(x, t, i):  # a velocity that depends on its input and the step
        inputs.append((i, t, x.clone()))
        return 0.5 * x + i

    seen = []
    plain = sampler(velocity, noise, ts, torch.Generator().manual_seed(1))
    inputs.clear()
    hooked = sampler(velocity, noise, ts, torch.Generator().manual_seed(1),
                     on_step=lambda i, t, x, v: seen.append((i, t, x.clone(), v.clone())))
    assert torch.equal(plain, hooked)
    assert [s[0] for s in seen] == list(range(5)) and [s[1] for s in seen] == list(ts[:-1])
    for (i, t, x), (_, _, x_seen, v_seen) in zip(inputs, seen):
        assert torch.equal(x, x_seen) and torch.equal(v_seen, 0.5 * x + i)
