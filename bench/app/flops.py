"""Measured FLOPs per phase, with ``torch.utils.flop_counter.FlopCounterMode``.

FLOPs are counted in a separate, untimed pass: the harness passes a :class:`FlopRecorder` as the
step's recorder, so each phase runs inside its own counter and the counter never slows a timed
step.

Blind spot fixed here: on the CPU, scaled-dot-product attention dispatches to
``aten._scaled_dot_product_flash_attention_for_cpu``, which has no FLOP formula, so the counter
reports 0 for attention. Counters made by :func:`flop_counter_mode` map torch's own SDPA formula onto that
kernel through ``FlopCounterMode``'s ``custom_mapping`` (no change to torch's global state), so
the counted pass runs the same kernels as the timed pass. Attention is counted dense (masked
positions included): no kernel used here skips masked tiles.
"""

from __future__ import annotations

import contextlib
from collections import Counter, defaultdict
from typing import Iterator

import torch
from torch.utils import flop_counter


def _cpu_flash_sdpa_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:  # noqa: ANN001
    return flop_counter.sdpa_flop_count(query_shape, key_shape, value_shape)


def _extra_formulas() -> dict:
    ops = {}
    for name in ("_scaled_dot_product_flash_attention_for_cpu",):
        if hasattr(torch.ops.aten, name):
            ops[getattr(torch.ops.aten, name)] = _cpu_flash_sdpa_flops  # keyed by overload packet
    return ops


def flop_counter_mode() -> flop_counter.FlopCounterMode:
    """A ``FlopCounterMode`` that also counts the CPU flash-attention kernel (dense)."""
    return flop_counter.FlopCounterMode(display=False, custom_mapping=_extra_formulas())


class FlopRecorder:
    """A phase recorder that counts FLOPs per phase (accumulated over repeated entries)."""

    def __init__(self) -> None:
        self.flops: dict[str, float] = defaultdict(float)
        self.calls: Counter[str] = Counter()

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        with flop_counter_mode() as counter:
            yield
        self.flops[name] += float(counter.get_total_flops())
        self.calls[name] += 1

    def total(self) -> float:
        return float(sum(self.flops.values()))


def count_flops(fn, *args, **kwargs) -> float:  # noqa: ANN001
    """FLOPs of one call ``fn(*args, **kwargs)`` (attention included)."""
    with flop_counter_mode() as counter:
        fn(*args, **kwargs)
    return float(counter.get_total_flops())
