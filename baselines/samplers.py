"""Rectified-flow samplers: small pure functions with one shared signature.

Rectified flow: ``x_t = (1 - t) x0 + t eps`` with ``t`` from 1 (noise) to 0 (data); the model
predicts the velocity ``v = eps - x0`` (so ``dx/dt = v`` along the straight path).

Every sampler is ``sampler(velocity_fn, noise, ts, generator) -> x0`` where
``velocity_fn(x, t, step_index) -> v`` (x and v have the shape of ``noise``; ``t`` a Python float),
``ts`` a decreasing sequence of ``steps + 1`` Python floats ending at 0, and ``generator`` the
only source of the randomness a sampler may draw (ping-pong's fresh noise). ``step_index`` tells a
velocity function which step it serves.
``on_step(step_index, t, x, v)`` (optional, public, for tests and tools) sees every step's input
and velocity after the call; it must not modify them.

Each sampler is its per-step update rule, ``update(x, v, t, t_next, generator) -> x_next``
(:func:`euler_update`, :func:`pingpong_update`), in a loop. The streaming regimes write that loop
themselves, so each of their phases is chosen in plain sight in the regime's own file
(:func:`get_update`); the loop functions here are the reference the tests compare them with.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch

from bench.core.errors import ConfigError

VelocityFn = Callable[[torch.Tensor, float, int], torch.Tensor]
StepCallback = Callable[[int, float, torch.Tensor, torch.Tensor], None]
Sampler = Callable[..., torch.Tensor]  # (velocity_fn, noise, ts, generator, on_step=None) -> x0
StepUpdate = Callable[[torch.Tensor, torch.Tensor, float, float, "torch.Generator | None"], torch.Tensor]

LOGSNR_MIN = -6.0
LOGSNR_MAX = 2.0


def logsnr_schedule(steps: int, logsnr_min: float = LOGSNR_MIN, logsnr_max: float = LOGSNR_MAX) -> tuple[float, ...]:
    """``steps + 1`` times: ``t = sigmoid(-logsnr)`` for logsnr evenly spaced in
    [logsnr_min, logsnr_max] over the ``steps`` model calls, then a final ``t = 0``."""
    if steps < 1:
        raise ConfigError(f"steps must be >= 1, got {steps}")
    if steps == 1:
        logsnrs = [logsnr_min]
    else:
        logsnrs = [logsnr_min + (logsnr_max - logsnr_min) * i / (steps - 1) for i in range(steps)]
    return tuple(1.0 / (1.0 + math.exp(l)) for l in logsnrs) + (0.0,)


def _check(ts: Sequence[float]) -> None:
    if len(ts) < 2 or ts[-1] != 0.0 or any(a <= b for a, b in zip(ts, ts[1:])):
        raise ValueError(f"ts must be strictly decreasing, at least 2 long, and end at 0; got {list(ts)}")


def euler_update(x: torch.Tensor, v: torch.Tensor, t: float, t_next: float,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """One Euler step of ``dx/dt = v`` from ``t`` to ``t_next`` (generator unused)."""
    return x + (t_next - t) * v


def pingpong_update(x: torch.Tensor, v: torch.Tensor, t: float, t_next: float,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """Denoise to ``x0 = x - t v``, then re-noise to ``t_next`` with FRESH noise,
    ``(1 - t_next) x0 + t_next eps``; at ``t_next = 0`` return ``x0``."""
    x0 = x - t * v
    if t_next <= 0.0:
        return x0
    eps = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return (1.0 - t_next) * x0 + t_next * eps


def _loop(update: StepUpdate, velocity_fn: VelocityFn, noise: torch.Tensor, ts: Sequence[float],
          generator: torch.Generator | None, on_step: StepCallback | None) -> torch.Tensor:
    _check(ts)
    x = noise
    for i, (t, t_next) in enumerate(zip(ts[:-1], ts[1:])):
        v = velocity_fn(x, t, i)
        if on_step is not None:
            on_step(i, t, x, v)
        x = update(x, v, t, t_next, generator)
    return x


def sample_euler(
    velocity_fn: VelocityFn, noise: torch.Tensor, ts: Sequence[float], generator: torch.Generator | None = None,
    on_step: StepCallback | None = None,
) -> torch.Tensor:
    """Deterministic Euler integration of ``dx/dt = v`` from ``ts[0]`` to 0 (generator unused)."""
    return _loop(euler_update, velocity_fn, noise, ts, generator, on_step)


def sample_pingpong(
    velocity_fn: VelocityFn, noise: torch.Tensor, ts: Sequence[float], generator: torch.Generator | None = None,
    on_step: StepCallback | None = None,
) -> torch.Tensor:
    """Ping-pong: :func:`pingpong_update` at every step; the last step returns its ``x0``."""
    return _loop(pingpong_update, velocity_fn, noise, ts, generator, on_step)


SAMPLERS: dict[str, Sampler] = {"euler": sample_euler, "pingpong": sample_pingpong}


def get_sampler(name: str) -> Sampler:
    """The sampler called ``name`` (``settings.sampler``)."""
    if name not in SAMPLERS:
        raise ConfigError(f"settings.sampler must be one of {sorted(SAMPLERS)}, got {name!r}")
    return SAMPLERS[name]


UPDATES: dict[str, StepUpdate] = {"euler": euler_update, "pingpong": pingpong_update}


def get_update(name: str) -> StepUpdate:
    """The per-step update rule of the sampler called ``name``."""
    get_sampler(name)  # the same names, the same error
    return UPDATES[name]


def cfg_combine(v_cond: torch.Tensor, v_uncond: torch.Tensor, scale: float) -> torch.Tensor:
    """Classifier-free guidance: ``v_u + s (v_c - v_u)`` (s = 1 gives the conditional velocity)."""
    return v_uncond + scale * (v_cond - v_uncond)


__all__ = [
    "VelocityFn", "StepCallback", "Sampler", "StepUpdate", "logsnr_schedule", "sample_euler", "sample_pingpong",
    "euler_update", "pingpong_update", "SAMPLERS", "UPDATES", "get_sampler", "get_update", "cfg_combine",
]
