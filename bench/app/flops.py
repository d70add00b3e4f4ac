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

The same holds for recurrent layers: ``nn.LSTM`` runs as ``aten.mkldnn_rnn_layer`` on the CPU (one
call per layer) and ``aten._cudnn_rnn`` on CUDA (every layer in one call), neither of which has a
formula. They are counted like the matmuls they are: ``2 * steps * batch`` per entry of every
weight matrix (input-to-hidden and hidden-to-hidden; gates' elementwise work and biases not counted).
"""

from __future__ import annotations

import contextlib
from collections import Counter, defaultdict
from typing import Iterator

import torch
from torch.utils import flop_counter


def _cpu_flash_sdpa_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:  # noqa: ANN001
    return flop_counter.sdpa_flop_count(query_shape, key_shape, value_shape)


def _rnn_tokens(input_shape) -> int:  # noqa: ANN001
    """Steps x batch of an RNN input ((T, B, I), (B, T, I) or packed (sum T, I))."""
    tokens = 1
    for size in input_shape[:-1]:
        tokens *= int(size)
    return tokens


def _mkldnn_rnn_layer_flops(input_shape, w_ih_shape, w_hh_shape, *args, out_shape=None, **kwargs) -> int:  # noqa: ANN001
    """One CPU RNN layer (one direction): both weight matrices applied at every step."""
    matrix = int(w_ih_shape[0]) * int(w_ih_shape[1]) + int(w_hh_shape[0]) * int(w_hh_shape[1])
    return 2 * _rnn_tokens(input_shape) * matrix


def _cudnn_rnn_flops(input_shape, weight_shapes, *args, out_shape=None, **kwargs) -> int:  # noqa: ANN001
    """All layers and directions of a cuDNN RNN: every 2-D weight (not the biases) at every step."""
    matrices = sum(int(s[0]) * int(s[1]) for s in weight_shapes if len(s) == 2)
    return 2 * _rnn_tokens(input_shape) * matrices


def extra_formulas() -> dict:
    """FLOP formulas torch lacks (CPU flash attention, RNN layers), keyed by aten overload packet."""
    ops = {}
    formulas = {
        "_scaled_dot_product_flash_attention_for_cpu": _cpu_flash_sdpa_flops,
        "mkldnn_rnn_layer": _mkldnn_rnn_layer_flops,
        "_cudnn_rnn": _cudnn_rnn_flops,
    }
    for name, formula in formulas.items():
        if hasattr(torch.ops.aten, name):
            ops[getattr(torch.ops.aten, name)] = formula  # keyed by overload packet
    return ops


def flop_counter_mode() -> flop_counter.FlopCounterMode:
    """A ``FlopCounterMode`` that also counts the CPU flash-attention kernel (dense) and LSTM layers."""
    return flop_counter.FlopCounterMode(display=False, custom_mapping=extra_formulas())


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
