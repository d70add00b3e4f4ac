"""Signal statistics against closed forms (BS.1770 calibration, sine centroids, known ratios)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from metrics.drift.signal_stats import (
    SIGNAL_STAT_COLUMNS, SignalStatsConfig, clipping_ratio, integrated_loudness_lufs, signal_stats, silence_ratio,
    spectral_shape,
)


def sine(freq_hz: float, seconds: float, sample_rate: int, amplitude: float = 1.0) -> np.ndarray:
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    return amplitude * np.sin(2 * np.pi * freq_hz * t)


def test_bs1770_calibration_full_scale_997hz_sine_is_minus_3_lufs() -> None:
    # BS.1770-4: a 0 dBFS 997 Hz sine in one channel reads -3.01 LKFS (the K-filter is ~0 dB at 1 kHz)
    lufs = integrated_loudness_lufs(sine(997.0, 5.0, 48000), 48000)
    assert lufs == pytest.approx(-3.01, abs=0.05)
    # 20 dB down reads 20 LU lower (gating keeps every block of a steady tone)
    assert integrated_loudness_lufs(sine(997.0, 5.0, 48000, 0.1), 48000) == pytest.approx(lufs - 20.0, abs=0.01)


def test_rms_dbfs_of_full_scale_sine() -> None:
    stats = signal_stats(sine(440.0, 2.0, 16000), 16000)
    assert stats["rms_dbfs"] == pytest.approx(10 * math.log10(0.5), abs=1e-3)


def test_silence_reads_the_loudness_floor_and_has_no_spectral_shape() -> None:
    stats = signal_stats(np.zeros((2, 16000)), 16000)
    assert stats["loudness_lufs"] == -70.0
    assert stats["silence_ratio"] == 1.0
    assert math.isnan(stats["spectral_centroid_hz"]) and math.isnan(stats["spectral_flatness"])
    assert stats["rms_dbfs"] == -120.0
    assert set(stats) == set(SIGNAL_STAT_COLUMNS)


@pytest.mark.parametrize("freq_hz", [250.0, 1000.0, 3000.0])
def test_centroid_of_a_sine_is_its_frequency(freq_hz: float) -> None:
    centroid, flatness = spectral_shape(sine(freq_hz, 2.0, 16000, 0.5), 16000)
    assert centroid == pytest.approx(freq_hz, rel=0.02)
    assert flatness < 0.01


def test_centroid_of_two_equal_sines_is_their_mean() -> None:
    x = sine(500.0, 2.0, 16000, 0.3) + sine(2500.0, 2.0, 16000, 0.3)
    centroid, _ = spectral_shape(x, 16000)
    assert centroid == pytest.approx(1500.0, rel=0.02)


def test_white_noise_is_flat_and_centred() -> None:
    rng = np.random.default_rng(0)
    centroid, flatness = spectral_shape(0.1 * rng.standard_normal(16000 * 4), 16000)
    assert flatness > 0.95
    assert centroid == pytest.approx(4000.0, rel=0.03)  # mean of a flat spectrum on (0, 8000) Hz


def test_silence_ratio_counts_silent_frames() -> None:
    sr = 16000
    x = np.concatenate([sine(440.0, 1.0, sr, 0.5), np.zeros(3 * sr)])  # 1 s tone, 3 s silence
    assert silence_ratio(x, sr) == pytest.approx(0.75)
    quiet = sine(440.0, 1.0, sr, 10 ** (-70 / 20))  # -73 dBFS RMS: below the -60 dBFS threshold
    assert silence_ratio(quiet, sr) == 1.0
    assert silence_ratio(quiet, sr, SignalStatsConfig(silence_dbfs=-80.0)) == 0.0


def test_clipping_ratio_counts_full_scale_samples() -> None:
    x = np.full((2, 1000), 0.5)
    x[0, :30] = 1.0
    x[1, :20] = -1.0
    assert clipping_ratio(x) == pytest.approx(50 / 2000)


def test_nonfinite_samples_are_counted_not_crashed_on() -> None:
    x = sine(440.0, 1.0, 16000, 0.5)
    x[:1600] = np.nan
    stats = signal_stats(x, 16000)
    assert stats["nonfinite_ratio"] == pytest.approx(0.1)
    assert np.isfinite(stats["loudness_lufs"]) and np.isfinite(stats["spectral_centroid_hz"])


def test_loudness_needs_one_gating_block() -> None:
    with pytest.raises(ValueError, match="400 ms"):
        integrated_loudness_lufs(np.ones(1000) * 0.1, 16000)
