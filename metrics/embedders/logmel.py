"""The weight-free default embedder: log-mel spectrogram frames.

It needs no downloaded weights, is deterministic (numpy FFT, float64 internally, float32 out),
and makes the default run and CI always have a Frechet distance to report. It is NOT a learned
embedding: report its distance as ``fad_logmel`` (never as a bare ``fad``), and never compare
its numbers with published FADs of pretrained models.

Fixed parameters (part of the identity):

- 16 kHz mono (channels averaged; ``scipy.signal.resample_poly``), no loudness normalisation;
- frames of 1024 samples (64 ms), periodic Hann window, hop 512 samples (32 ms, 31.25 frames/s),
  no centring/padding: frame ``i`` covers samples ``[512 i, 512 i + 1024)``;
- power spectrum (|rfft|^2), 64 triangular mel bands on the HTK mel scale from 0 to 8000 Hz
  (unnormalised triangles, as ``librosa.filters.mel(htk=True, norm=None)``);
- features: ``10 log10(mel power + 1e-10)`` in dB, one 64-d vector per frame (no pooling).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from metrics.embedders.base import RESAMPLER, Embedder

SAMPLE_RATE = 16000
N_FFT = 1024
HOP = 512
N_MELS = 64
F_MIN_HZ = 0.0
F_MAX_HZ = 8000.0
LOG_FLOOR = 1e-10


def hz_to_mel_htk(f_hz: np.ndarray | float) -> np.ndarray:
    """HTK mel scale: 2595 log10(1 + f / 700)."""
    return 2595.0 * np.log10(1.0 + np.asarray(f_hz, dtype=np.float64) / 700.0)


def mel_to_hz_htk(mel: np.ndarray | float) -> np.ndarray:
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, f_min: float, f_max: float) -> np.ndarray:
    """(n_mels, n_fft // 2 + 1) triangular filters, peaks at mel-spaced centres, height 1."""
    bin_hz = np.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1)  # (F,)
    edges_hz = mel_to_hz_htk(np.linspace(hz_to_mel_htk(f_min), hz_to_mel_htk(f_max), n_mels + 2))  # (M+2,)
    lo, centre, hi = edges_hz[:-2, None], edges_hz[1:-1, None], edges_hz[2:, None]  # (M, 1) each
    rising = (bin_hz[None, :] - lo) / (centre - lo)
    falling = (hi - bin_hz[None, :]) / (hi - centre)
    return np.maximum(0.0, np.minimum(rising, falling))  # (M, F)


def periodic_hann(n: int) -> np.ndarray:
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)


def power_frames(mono: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """(T,) -> (frames, n_fft // 2 + 1) power spectra of Hann-windowed, uncentred frames."""
    n_frames = 1 + (mono.shape[0] - n_fft) // hop
    idx = np.arange(n_fft)[None, :] + hop * np.arange(n_frames)[:, None]  # (N, n_fft)
    frames = mono[idx] * periodic_hann(n_fft)[None, :]
    spec = np.fft.rfft(frames, n=n_fft, axis=1)
    return spec.real**2 + spec.imag**2


class LogMelEmbedder(Embedder):
    """Log-mel frames (see module docstring). Weight-free; ``pretrained`` is False."""

    name: ClassVar[str] = "logmel"
    pretrained: ClassVar[bool] = False
    needs_weights: ClassVar[bool] = False
    sample_rate = SAMPLE_RATE
    feature_dim = N_MELS
    min_samples = N_FFT

    def __init__(self) -> None:
        super().__init__()
        self._filters = mel_filterbank(SAMPLE_RATE, N_FFT, N_MELS, F_MIN_HZ, F_MAX_HZ)  # (64, 513)

    @property
    def identity(self) -> str:
        return self._identity(
            model="logmel-v1(no weights)",
            ckpt_sha256="none",
            sr=SAMPLE_RATE,
            window=f"hann{N_FFT}",
            hop=HOP,
            mels=f"{N_MELS}htk{F_MIN_HZ:g}-{F_MAX_HZ:g}",
            features="10log10(mel_power+1e-10)",
            pooling="none(frames)",
            channels=self.channels,
            resample=RESAMPLER,
            loudness="none",
        )

    def _embed_mono(self, mono: np.ndarray) -> np.ndarray:
        power = power_frames(mono, N_FFT, HOP)  # (N, 513)
        mel = power @ self._filters.T  # (N, 64)
        return 10.0 * np.log10(mel + LOG_FLOOR)
