"""PESTO's encoder in faster CPU layouts computes what PESTO as shipped computes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from metrics.descriptors.pesto_layers import ChannelsLastConv1d, ToeplitzMatmul, use_fast_layers
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
    assert replaced == kinds.count("ChannelsLastConv1d") + kinds.count("ToeplitzMatmul") == 4
    assert "ToeplitzLinear" not in kinds
    assert all(m.kernel_size[0] == 1 for m in model.encoder.modules() if type(m) is nn.Conv1d)
    assert type(model.confidence.conv) is nn.Conv1d  # only the encoder is touched


def test_identity_says_which_layers_ran() -> None:
    assert "Toeplitz layer as matmul" in PitchTracker().identity
    assert "Toeplitz" not in PitchTracker(fast_layers=False).identity
