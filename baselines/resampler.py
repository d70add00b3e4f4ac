"""A rational-ratio polyphase resampler as one strided ``conv1d`` (runs on the generator's device).

For rates ``in_rate -> out_rate`` with ``up / down = out_rate / in_rate`` in lowest terms, output
sample ``m = i * up + j`` sits at input position ``m * down / up = i * down + j * down / up``. One
convolution with ``up`` output channels (one per phase ``j``) and stride ``down`` computes every
phase at once; interleaving the channels gives the output. The kernel is a Hann-windowed sinc
low-pass at ``rolloff * min(in_rate, out_rate) / 2`` Hz, ``zero_crossings`` zero crossings each
side, built once at construction (float64, then cast).

Edges are zero-padded: callers that stream keep some audio before the part they return (the
generator resamples its codec window, previous frames included) so only the right edge of a block
sees padding. No host reads of device values: every length is a Python int.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F


class PolyphaseResampler:
    """Resample (..., samples) audio from ``in_rate`` to ``out_rate`` Hz (identity when equal)."""

    def __init__(self, in_rate: int, out_rate: int, device: torch.device | str = "cpu",
                 zero_crossings: int = 16, rolloff: float = 0.94) -> None:
        if in_rate < 1 or out_rate < 1:
            raise ValueError(f"sample rates must be >= 1 Hz, got {in_rate} -> {out_rate}")
        self.in_rate, self.out_rate = int(in_rate), int(out_rate)
        g = math.gcd(self.in_rate, self.out_rate)
        self.up, self.down = self.out_rate // g, self.in_rate // g
        self.identity = self.up == self.down
        if self.identity:
            self.kernel = None
            self.pad_left = self.width = 0
            return
        cutoff_hz = rolloff * min(self.in_rate, self.out_rate) / 2
        half_width = zero_crossings * self.in_rate / (2 * cutoff_hz)  # input samples each side
        self.pad_left = int(math.ceil(half_width))
        self.width = self.pad_left + int(math.ceil(half_width + self.down))  # taps per phase
        # offset (input samples) of tap o of phase j from the output sample's exact position
        offsets = (np.arange(self.width)[None, :] - self.pad_left
                   - np.arange(self.up)[:, None] * self.down / self.up)  # (up, width)
        window = np.where(np.abs(offsets) <= half_width, 0.5 + 0.5 * np.cos(np.pi * offsets / half_width), 0.0)
        taps = (2 * cutoff_hz / self.in_rate) * np.sinc(2 * cutoff_hz * offsets / self.in_rate) * window
        # (up, 1, width): one output channel per phase over a single input channel
        self.kernel = torch.from_numpy(taps).to(device=device, dtype=torch.float32).unsqueeze(1)

    def output_samples(self, samples: int) -> int:
        """Output length for ``samples`` input samples: ``samples * up / down``, rounded down."""
        return samples * self.up // self.down

    def _conv_geometry(self, samples: int) -> tuple[int, int]:
        """(right padding, conv outputs per phase) for an input of ``samples`` samples."""
        steps = -(-self.output_samples(samples) // self.up)  # ceil: outputs per phase
        pad_right = max(0, (steps - 1) * self.down + self.width - samples - self.pad_left)
        return pad_right, steps

    def __call__(self, audio: torch.Tensor) -> torch.Tensor:
        """(..., N) float -> (..., N * up // down) float32."""
        if self.identity:
            return audio.float()
        lead, samples = audio.shape[:-1], audio.shape[-1]
        pad_right, steps = self._conv_geometry(samples)
        x = F.pad(audio.reshape(-1, 1, samples).float(), (self.pad_left, pad_right))  # (R, 1, N + pads)
        y = F.conv1d(x, self.kernel, stride=self.down)[..., :steps]  # (R, up, steps)
        y = y.transpose(1, 2).reshape(y.shape[0], steps * self.up)  # interleave the phases
        return y[:, : self.output_samples(samples)].reshape(*lead, -1)

    def flops(self, samples: int, rows: int = 1) -> float:
        """FLOPs of one call on ``rows`` signals of ``samples`` samples, as ``FlopCounterMode``
        counts the convolution: ``2 * rows * outputs_per_phase * up * width``."""
        if self.identity:
            return 0.0
        pad_right, _ = self._conv_geometry(samples)
        conv_outputs = (samples + self.pad_left + pad_right - self.width) // self.down + 1
        return 2.0 * rows * conv_outputs * self.up * self.width
