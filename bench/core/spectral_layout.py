"""The band axis of the log-magnitude codec, as plain arithmetic (no torch), so presets can
derive the latent dimension where torch may not be imported.

The codec (``baselines/spectral_codec.py``, docs/codec.md) analyses frames of ``2 * hop``
samples, so its DFT bins are ``sample_rate / (2 * hop)`` Hz apart; it keeps bins ``0 .. max_hz``.
Bands are single bins up to ``linear_below_hz`` (bin ``k_b``), then widen in proportion to
frequency (one bin wide at ``k_b``), with the ratio chosen so the last centre is the last bin.
"""

from __future__ import annotations

import math


def bin_hz(sample_rate: int, hop: int) -> float:
    """Spacing of the DFT bins in Hz (sample_rate / window, window = 2 * hop)."""
    return sample_rate / (2 * hop)


def kept_bins(sample_rate: int, hop: int, max_hz: float) -> int:
    """DFT bins kept: 0 .. max_hz."""
    return int(math.floor(max_hz / bin_hz(sample_rate, hop) + 1e-9)) + 1


def band_layout(sample_rate: int, hop: int, max_hz: float, linear_below_hz: float) -> tuple[int, int]:
    """(k_b, steps): single-bin bands at bins ``0 .. k_b``, then ``steps`` geometric ones."""
    last = kept_bins(sample_rate, hop, max_hz) - 1
    k_b = max(1, min(last, int(round(linear_below_hz / bin_hz(sample_rate, hop)))))
    if k_b >= last:
        return last, 0
    return k_b, math.ceil(math.log(last / k_b) / math.log1p(1.0 / k_b) - 1e-9)


def band_count(sample_rate: int, hop: int, max_hz: float, linear_below_hz: float) -> int:
    """Bands per channel (the codec's latent values per channel)."""
    k_b, steps = band_layout(sample_rate, hop, max_hz, linear_below_hz)
    return k_b + 1 + steps
