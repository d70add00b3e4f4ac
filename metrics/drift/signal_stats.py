"""Signal statistics per window that expose collapse without any learned model.

Each statistic is a plain function of the window's samples (numpy, float64 arithmetic):

- ``loudness_lufs``: integrated loudness, ITU-R BS.1770-4 (K-weighting, 400 ms gating blocks with
  75 % overlap, absolute gate -70 LUFS, relative gate -10 LU) through ``pyloudnorm``. A window in
  which every gating block is below the absolute gate has no defined loudness; it reports the
  gate, ``-70.0`` (the floor), so slopes and bands stay finite.
- ``spectral_centroid_hz``: power-weighted mean frequency of the window's Welch power spectrum
  (mono mix-down, Hann segments of about ``spectrum_frame_s`` rounded up to a power of two, 50 %
  overlap, DC bin excluded). Higher = brighter.
- ``spectral_flatness``: geometric mean / arithmetic mean of that same Welch spectrum (Wiener
  entropy, in [0, 1]): about 1 for white noise, near 0 for a few sustained partials.
  Centroid and flatness are NaN for a window whose RMS is below the silence threshold (a silent
  spectrum has no shape; NaN windows are skipped by the summaries).
- ``silence_ratio``: fraction of non-overlapping ``silence_frame_s`` frames whose RMS (over all
  channels) is below ``silence_dbfs`` (dB relative to a full-scale square wave: a full-scale sine is
  -3 dBFS). In [0, 1]; 1 = silent window.
- ``clipping_ratio``: fraction of samples (all channels) with ``|x| >= clip_level``. In [0, 1].
- ``rms_dbfs``: RMS level of the whole window in dBFS (floored at -120).
- ``nonfinite_ratio``: fraction of samples that are NaN or infinite. They are counted, then
  replaced by 0 for every other statistic, so a generator that emits NaN is reported, not crashed on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import signal as sps

from bench.core.errors import ConfigError

SIGNAL_STAT_COLUMNS: tuple[str, ...] = (
    "loudness_lufs",
    "spectral_centroid_hz",
    "spectral_flatness",
    "silence_ratio",
    "clipping_ratio",
    "rms_dbfs",
    "nonfinite_ratio",
)

RMS_FLOOR_DBFS = -120.0


@dataclass(frozen=True)
class SignalStatsConfig:
    """Parameters of the signal statistics (documented defaults; recorded with every table)."""

    silence_dbfs: float = -60.0  # a frame quieter than this is silent
    silence_frame_s: float = 0.05  # frame length of the silence ratio
    clip_level: float = 0.999  # |x| at or above this counts as clipped
    spectrum_frame_s: float = 0.032  # Welch segment length (rounded up to a power of two samples)
    loudness_floor_lufs: float = -70.0  # reported when BS.1770 gating leaves no block (silence)

    def __post_init__(self) -> None:
        if not (self.silence_frame_s > 0 and self.spectrum_frame_s > 0):
            raise ConfigError("silence_frame_s and spectrum_frame_s must be > 0 seconds")
        if not (0 < self.clip_level <= 1.0):
            raise ConfigError(f"clip_level must be in (0, 1], got {self.clip_level}")

    @property
    def identity(self) -> str:
        """A string naming every parameter (stored beside the tables)."""
        return (
            f"signal-stats(bs1770-4 pyloudnorm floor={self.loudness_floor_lufs}LUFS; welch hann "
            f"{self.spectrum_frame_s * 1000:g}ms 50%; silence<{self.silence_dbfs}dBFS per "
            f"{self.silence_frame_s * 1000:g}ms; clip>={self.clip_level})"
        )


DEFAULT_SIGNAL_STATS = SignalStatsConfig()


def as_channels_first(audio: np.ndarray) -> np.ndarray:
    """``(samples,)`` or ``(channels, samples)`` -> ``(channels, samples)`` float64."""
    x = np.asarray(audio)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2:
        raise ValueError(f"audio must have shape (samples,) or (channels, samples), got {x.shape}")
    return x.astype(np.float64, copy=False)


def _dbfs(mean_square: np.ndarray | float) -> np.ndarray:
    # dB relative to a full-scale square wave (mean square 1)
    with np.errstate(divide="ignore"):
        return np.maximum(10.0 * np.log10(mean_square), RMS_FLOOR_DBFS)


def silence_ratio(audio: np.ndarray, sample_rate: int, config: SignalStatsConfig = DEFAULT_SIGNAL_STATS) -> float:
    """Fraction of ``silence_frame_s`` frames below ``silence_dbfs`` (see module docstring)."""
    x = as_channels_first(audio)
    frame = max(1, int(round(config.silence_frame_s * sample_rate)))
    n_frames = x.shape[1] // frame
    if n_frames == 0:  # window shorter than one frame: judge it as a single frame
        return float(_dbfs(np.mean(x**2)) < config.silence_dbfs)
    frames = x[:, : n_frames * frame].reshape(x.shape[0], n_frames, frame)  # (C, F, S)
    level = _dbfs(np.mean(frames**2, axis=(0, 2)))  # (F,)
    return float(np.mean(level < config.silence_dbfs))


def clipping_ratio(audio: np.ndarray, config: SignalStatsConfig = DEFAULT_SIGNAL_STATS) -> float:
    """Fraction of samples with ``|x| >= clip_level``."""
    x = as_channels_first(audio)
    return float(np.mean(np.abs(x) >= config.clip_level))


def welch_power(
    audio: np.ndarray, sample_rate: int, config: SignalStatsConfig = DEFAULT_SIGNAL_STATS
) -> tuple[np.ndarray, np.ndarray]:
    """(frequencies_hz, power) of the mono mix-down's Welch spectrum, DC bin excluded."""
    mono = as_channels_first(audio).mean(axis=0)
    nperseg = 1 << max(3, math.ceil(math.log2(config.spectrum_frame_s * sample_rate)))
    nperseg = min(nperseg, mono.shape[0])
    freqs, power = sps.welch(
        mono, fs=sample_rate, window="hann", nperseg=nperseg, noverlap=nperseg // 2,
        detrend=False, scaling="spectrum",
    )
    return freqs[1:], power[1:]


def spectral_shape(
    audio: np.ndarray, sample_rate: int, config: SignalStatsConfig = DEFAULT_SIGNAL_STATS
) -> tuple[float, float]:
    """(spectral centroid in Hz, spectral flatness in [0, 1]); (NaN, NaN) for a silent window."""
    x = as_channels_first(audio)
    if _dbfs(np.mean(x**2)) < config.silence_dbfs:
        return math.nan, math.nan
    freqs, power = welch_power(x, sample_rate, config)
    total = float(power.sum())
    if not total > 0:
        return math.nan, math.nan
    centroid = float((freqs * power).sum() / total)
    tiny = np.finfo(np.float64).tiny
    flatness = float(np.exp(np.mean(np.log(np.maximum(power, tiny)))) / np.mean(power))
    return centroid, min(flatness, 1.0)


def integrated_loudness_lufs(
    audio: np.ndarray, sample_rate: int, config: SignalStatsConfig = DEFAULT_SIGNAL_STATS
) -> float:
    """BS.1770-4 integrated loudness (pyloudnorm), floored at ``loudness_floor_lufs``."""
    import pyloudnorm  # lazy: it imports scipy.signal (about 1 s), and only this statistic needs it

    x = as_channels_first(audio)
    if x.shape[1] < int(0.4 * sample_rate):
        raise ValueError(
            f"integrated loudness needs at least one 400 ms gating block: the window has "
            f"{x.shape[1] / sample_rate:.3f} s; use windows of at least 0.4 s"
        )
    if x.shape[0] > 5:
        raise ValueError(f"BS.1770 loudness supports at most 5 channels, got {x.shape[0]}")
    lufs = pyloudnorm.Meter(sample_rate).integrated_loudness(x.T)
    if not np.isfinite(lufs):
        return float(config.loudness_floor_lufs)
    return float(max(lufs, config.loudness_floor_lufs))


def signal_stats(
    audio: np.ndarray, sample_rate: int, config: SignalStatsConfig = DEFAULT_SIGNAL_STATS
) -> dict[str, float]:
    """Every statistic of :data:`SIGNAL_STAT_COLUMNS` for one window ``(channels, samples)``."""
    x = as_channels_first(audio)
    if x.shape[1] == 0:
        raise ValueError("signal statistics need a non-empty window (got 0 samples)")
    finite = np.isfinite(x)
    nonfinite = float(1.0 - finite.mean())
    if nonfinite > 0:
        x = np.where(finite, x, 0.0)
    centroid, flatness = spectral_shape(x, sample_rate, config)
    return {
        "loudness_lufs": integrated_loudness_lufs(x, sample_rate, config),
        "spectral_centroid_hz": centroid,
        "spectral_flatness": flatness,
        "silence_ratio": silence_ratio(x, sample_rate, config),
        "clipping_ratio": clipping_ratio(x, config),
        "rms_dbfs": float(_dbfs(np.mean(x**2))),
        "nonfinite_ratio": nonfinite,
    }
