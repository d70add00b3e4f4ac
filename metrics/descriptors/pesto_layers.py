"""Faster CPU layouts for the layers of a loaded PESTO encoder, with the same weights.

PESTO's encoder spends most of its time in two places on a CPU (measured on a 2-core AVX2 machine,
one 10 s clip at 16 kHz and a 40 ms step, 251 frames, 2026-12-03): its 1-D convolutions over the
219 CQT bins (kernel 39), and its ``ToeplitzLinear`` output layer, a single-channel convolution
with a 1040-tap kernel that is a product with a fixed (657, 384) Toeplitz matrix.
:func:`use_fast_layers` replaces, in one model instance (never PESTO's classes):

- the two 40 -> 40 channel convolutions (the ``prefilt`` layers, 6.9 GFLOP each per clip) by
  :class:`FFTConv1d`, a product of spectra: one real FFT per frame and channel, one (40 x 40)
  complex product per frequency, one inverse FFT; about 0.5 GFLOP instead of 6.9;
- the 1 -> 40 input convolution by :class:`ChannelsLastConv1d` (a channels-last ``conv2d``,
  which oneDNN runs about 1.7x faster than ``conv1d``; with one input channel the spectra would
  not pay);
- the Toeplitz layer by :class:`ToeplitzMatmul`.

214 ms -> 123 ms per clip with channels-last convolutions everywhere (2026-12-03). On
2026-12-04, on the same machine under other load, three interleaved rounds over 9 windows of generated
music: 271 ms per clip as shipped, 181 ms channels-last, 106 ms with the spectral convolutions
(``docs/drift.md``).

The arithmetic is the same up to float32 rounding: the confidence is bitwise equal (it never
reads the encoder), pitch differs by under 1e-3 semitones (tested; under 1e-4 measured).
"""

from __future__ import annotations

from typing import Any

import torch
from scipy.fft import next_fast_len
from torch import nn
from torch.nn import functional as F


def _check_plain(conv: nn.Conv1d) -> None:
    if conv.stride != (1,) or conv.dilation != (1,) or conv.groups != 1 or conv.padding_mode != "zeros" \
            or not isinstance(conv.padding, tuple):
        raise ValueError(f"only stride-1, undilated, ungrouped, zero-padded convolutions convert; got {conv}")


class ChannelsLastConv1d(nn.Module):
    """A stride-1, zero-padded ``nn.Conv1d`` run as a channels-last ``conv2d`` of height 1."""

    def __init__(self, conv: nn.Conv1d) -> None:
        super().__init__()
        _check_plain(conv)
        weight = conv.weight.detach().unsqueeze(2)  # (out, in, 1, kernel)
        self.register_buffer("weight", weight.contiguous(memory_format=torch.channels_last))
        self.register_buffer("bias", None if conv.bias is None else conv.bias.detach().clone())
        self.padding = int(conv.padding[0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C_in, L) -> (B, C_out, L')
        x = x.unsqueeze(2).contiguous(memory_format=torch.channels_last)  # (B, C_in, 1, L)
        return F.conv2d(x, self.weight, self.bias, padding=(0, self.padding)).squeeze(2)


class FFTConv1d(nn.Module):
    """A stride-1, undilated, ungrouped, zero-padded ``nn.Conv1d`` as a product of spectra.

    ``conv1d`` is a cross-correlation: ``y[o, t] = b[o] + sum_i sum_k w[o, i, k] x[i, t + k - P]``,
    which is sample ``t + K - 1 - P`` of the full linear convolution of ``x`` with the kernel
    flipped. With FFTs of ``n >= L + K - 1`` points that convolution is exact (no wrap-around):
    ``irfft(sum_i rfft(x_i) rfft(flip(w_oi)))``. The kernels' spectra are computed once per ``n``
    (in float64, then cast to the input's precision).
    """

    def __init__(self, conv: nn.Conv1d) -> None:
        super().__init__()
        _check_plain(conv)
        self.register_buffer("weight", conv.weight.detach().clone())  # (out, in, K)
        self.register_buffer("bias", None if conv.bias is None else conv.bias.detach().clone())
        self.padding = int(conv.padding[0])
        self.kernel = int(conv.kernel_size[0])
        if self.padding > self.kernel - 1:
            raise ValueError(f"padding {self.padding} wider than kernel - 1 ({self.kernel - 1}) does not convert")
        self._spectra: dict[tuple[int, torch.dtype, torch.device], torch.Tensor] = {}

    def _spectrum(self, n: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        key = (n, dtype, device)
        if key not in self._spectra:
            flipped = self.weight.to(torch.float64).flip(-1)  # (out, in, K)
            spectrum = torch.fft.rfft(flipped, n=n).permute(2, 1, 0)  # (F, in, out)
            complex_dtype = torch.complex128 if dtype == torch.float64 else torch.complex64
            self._spectra[key] = spectrum.to(device=device, dtype=complex_dtype).contiguous()
        return self._spectra[key]

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C_in, L) -> (B, C_out, L')
        length = x.shape[-1]
        out_length = length + 2 * self.padding - self.kernel + 1
        n = next_fast_len(length + self.kernel - 1, real=True)  # 5-smooth: pocketfft's fast sizes
        spectra = torch.fft.rfft(x, n=n).permute(2, 0, 1).contiguous()  # (F, B, C_in)
        mixed = torch.bmm(spectra, self._spectrum(n, x.dtype, x.device))  # (F, B, C_out)
        full = torch.fft.irfft(mixed.permute(1, 2, 0), n=n)  # (B, C_out, n)
        start = self.kernel - 1 - self.padding
        y = full[..., start:start + out_length]
        return y.contiguous() if self.bias is None else y + self.bias[:, None]


class ToeplitzMatmul(nn.Module):
    """PESTO's ``ToeplitzLinear`` (``y[j] = sum_i x[i] w[i + n_out - 1 - j]``) as ``x @ T``."""

    def __init__(self, layer: nn.Conv1d) -> None:
        super().__init__()
        taps = layer.weight.detach()[0, 0]  # (n_in + n_out - 1,)
        n_out = int(layer.padding[0]) + 1
        n_in = taps.shape[0] - n_out + 1
        rows = torch.arange(n_in)[:, None]
        cols = torch.arange(n_out)[None, :]
        self.register_buffer("matrix", taps[rows + n_out - 1 - cols].contiguous())  # (n_in, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, n_in) -> (B, n_out)
        return x @ self.matrix


def use_fast_layers(model: Any) -> int:
    """Replace, in ``model.encoder``, every convolution over CQT bins wider than one tap by an
    :class:`FFTConv1d` (more than one input channel) or a :class:`ChannelsLastConv1d` (one input
    channel), and its ``fc`` Toeplitz layer by a :class:`ToeplitzMatmul`.

    Returns how many layers were replaced. Kernel-1 convolutions are left alone (no gain measured).
    """
    encoder = model.encoder
    replaced = 0
    for parent in encoder.modules():
        for name, child in list(parent.named_children()):
            if type(child) is nn.Conv1d and child.kernel_size[0] > 1:
                fast = FFTConv1d(child) if child.in_channels > 1 else ChannelsLastConv1d(child)
                setattr(parent, name, fast)
                replaced += 1
    fc = getattr(encoder, "fc", None)
    if fc is not None and type(fc).__name__ == "ToeplitzLinear":
        encoder.fc = ToeplitzMatmul(fc)
        replaced += 1
    return replaced


__all__ = ["ChannelsLastConv1d", "FFTConv1d", "ToeplitzMatmul", "use_fast_layers"]
