"""PESTO's encoder in faster CPU layouts computes what PESTO as shipped computes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from metrics.descriptors.pesto_layers import ChannelsLastConv1d, FFTConv1d, ToeplitzMatmul, use_fast_layers
from metrics.descriptors.pesto_tracker import PitchTracker
from tests.metrics.descriptor_audio import SAMPLE_RATE, c_major_scale_midis, sequence, white_noise


def test_channels_last_conv_equals_conv1d() -> None:
    torch.manual_seed(0)
    conv = nn.Conv1d(5, 7, kernel_size=9, padding=4)
    x = torch.randn(3, 5, 40)
    np.testing.assert_allclose(ChannelsLastConv1d(conv)(x).detach().numpy(), conv(x).detach().numpy(),
                               rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="stride-1"):
        ChannelsLastConv1d(nn.Conv1d(5, 7, kernel_size=9, stride=2))


@pytest.mark.parametrize("channels_in, channels_out, kernel, padding, length", [
    (40, 40, 39, 19, 219),  # PESTO's prefilt layers
    (3, 5, 9, 4, 17),  # odd kernel, "same" padding
    (2, 3, 8, 0, 30),  # even kernel, no padding (output shorter than input)
    (4, 2, 5, 4, 12),  # padding K - 1 (output longer than input)
])
def test_fft_conv_equals_conv1d(channels_in: int, channels_out: int, kernel: int, padding: int, length: int) -> None:
    torch.manual_seed(0)
    conv = nn.Conv1d(channels_in, channels_out, kernel_size=kernel, padding=padding).double()
    x = torch.randn(6, channels_in, length, dtype=torch.float64)
    with torch.no_grad():
        expected = conv(x).numpy()
        got = FFTConv1d(conv)(x)
    assert got.shape == expected.shape and got.dtype == torch.float64
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-10, atol=1e-10)  # float64: exact up to rounding
    with torch.no_grad():  # float32, as PESTO runs: the error of a direct float32 convolution
        got32 = FFTConv1d(conv.float())(x.float()).double().numpy()
    assert np.max(np.abs(got32 - expected)) < 1e-5 * max(1.0, np.max(np.abs(expected)))
    no_bias = nn.Conv1d(channels_in, channels_out, kernel_size=kernel, padding=padding, bias=False).double()
    with torch.no_grad():
        np.testing.assert_allclose(FFTConv1d(no_bias)(x).numpy(), no_bias(x).numpy(), rtol=1e-10, atol=1e-10)


def test_fft_conv_refuses_what_it_does_not_compute() -> None:
    with pytest.raises(ValueError, match="stride-1"):
        FFTConv1d(nn.Conv1d(2, 2, kernel_size=3, dilation=2))
    with pytest.raises(ValueError, match="padding 5 wider"):
        FFTConv1d(nn.Conv1d(2, 2, kernel_size=3, padding=5))


def test_toeplitz_matmul_equals_the_toeplitz_convolution() -> None:
    from pesto.model import ToeplitzLinear

    torch.manual_seed(0)
    layer = ToeplitzLinear(11, 6)  # 16 taps
    x = torch.randn(4, 11)
    expected = layer(x).detach().numpy()  # (4, 6)
    np.testing.assert_allclose(ToeplitzMatmul(layer)(x).numpy(), expected, rtol=1e-5, atol=1e-6)
    # the closed form: y[j] = sum_i x[i] w[i + n_out - 1 - j]
    w = layer.weight.detach()[0, 0].numpy()
    by_hand = np.array([[sum(x[b, i].item() * w[i + 5 - j] for i in range(11)) for j in range(6)] for b in range(4)])
    np.testing.assert_allclose(expected, by_hand, rtol=1e-5, atol=1e-6)


def test_the_tracker_with_fast_layers_reads_the_same_pitch_and_confidence() -> None:
    audio = np.concatenate([sequence(c_major_scale_midis(), 240.0), white_noise(2.0, rms=0.1)])
    plain = PitchTracker(step_ms=40.0, fast_layers=False).track(audio, SAMPLE_RATE)
    fast = PitchTracker(step_ms=40.0).track(audio, SAMPLE_RATE)
    np.testing.assert_array_equal(fast.confidence, plain.confidence)  # the confidence never reads the encoder
    assert np.max(np.abs(fast.midi - plain.midi)) < 1e-3  # semitones


def test_use_fast_layers_replaces_the_wide_convolutions_and_the_toeplitz_layer() -> None:
    import pesto

    model = pesto.load_model("mir-1k_g7", 40.0, sampling_rate=SAMPLE_RATE)
    replaced = use_fast_layers(model)
    kinds = [type(m).__name__ for m in model.encoder.modules()]
    assert replaced == 4 and kinds.count("ToeplitzMatmul") == 1
    assert kinds.count("FFTConv1d") == 2 and kinds.count("ChannelsLastConv1d") == 1  # 40 -> 40 spectral; 1 -> 40 not
    assert "ToeplitzLinear" not in kinds
    assert all(m.kernel_size[0] == 1 for m in model.encoder.modules() if type(m) is nn.Conv1d)
    assert type(model.confidence.conv) is nn.Conv1d  # only the encoder is touched


def test_identity_says_which_layers_ran() -> None:
    assert "Toeplitz layer as matmul" in PitchTracker().identity and "spectral" in PitchTracker().identity
    assert "Toeplitz" not in PitchTracker(fast_layers=False).identity
