"""The polyphase resampler: band-limited sines come out as the same sines, lengths are exact, and its
FLOP formula equals the counter's."""

import numpy as np
import pytest
import torch

from baselines.resampler import PolyphaseResampler
from bench.app.flops import count_flops


@pytest.mark.parametrize("rates", [(32000, 16000), (32000, 8000), (32000, 44100), (32000, 48000), (16000, 32000)])
def test_a_sine_is_resampled_to_the_same_sine(rates):
    in_rate, out_rate = rates
    resampler = PolyphaseResampler(in_rate, out_rate)
    t = np.arange(in_rate // 2) / in_rate  # 0.5 s
    x = torch.from_numpy(0.5 * np.sin(2 * np.pi * 440.0 * t)).float()
    y = resampler(x).numpy()
    assert y.shape == (in_rate // 2 * out_rate // in_rate,)
    expected = 0.5 * np.sin(2 * np.pi * 440.0 * np.arange(y.shape[0]) / out_rate)
    inner = slice(y.shape[0] // 8, -y.shape[0] // 8)  # away from the zero-padded edges
    assert np.abs(y[inner] - expected[inner]).max() < 1e-4


def test_content_above_the_new_nyquist_is_removed():
    resampler = PolyphaseResampler(32000, 8000)
    t = np.arange(16000) / 32000
    y = resampler(torch.from_numpy(np.sin(2 * np.pi * 6000.0 * t)).float()).numpy()  # 6 kHz > 4 kHz
    assert np.sqrt(np.mean(y[500:-500] ** 2)) < 1e-3


def test_batches_identity_and_flops():
    resampler = PolyphaseResampler(32000, 16000)
    x = torch.randn(3, 1, 6400)
    y = resampler(x)
    assert y.shape == (3, 1, 3200)
    assert torch.allclose(y[1, 0], resampler(x[1, 0]), atol=1e-6)
    for rates, samples in [((32000, 16000), 7040), ((32000, 44100), 6400), ((8000, 32000), 1000)]:
        r = PolyphaseResampler(*rates)
        assert count_flops(r, torch.randn(samples)) == r.flops(samples)
    same = PolyphaseResampler(16000, 16000)
    x = torch.randn(100)
    assert torch.equal(same(x), x) and same.flops(100) == 0.0
