"""Tonality: a constant-Q chromagram and the Krumhansl-Schmuckler key estimate.

Chroma is ``librosa.feature.chroma_cqt``: a constant-Q transform with 36 bins per octave from C1
(32.7 Hz) over up to 7 octaves (fewer when the Nyquist frequency needs it), folded to 12 pitch
classes, tuning fixed at A4 = 440 Hz (no per-clip tuning estimate, so the bins do not move with
the material), magnitudes NOT normalised per frame (``norm=None``): the mean over frames is then
weighted by loudness, and quiet frames (decays, noise floors) cannot outvote the notes. A CQT
rather than an STFT chroma because its bins are a constant fraction of a semitone at every
octave: an STFT of 4096 points at 16 kHz resolves 3.9 Hz, wider than a semitone below ~130 Hz,
where bass lines and chord roots live.

Key (Krumhansl-Schmuckler): the Pearson correlation of the mean chroma vector with each of the 24
rotations of the Krumhansl-Kessler major and minor key profiles; the best is the key, its
correlation the key strength (in [-1, 1]). Chroma with no variation across pitch classes
(silence) has no key.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

from metrics import numba_cache
from metrics.descriptors.pitch import PITCH_CLASS_NAMES

MODES = ("major", "minor")  # key_mode: 0.0 = major, 1.0 = minor

# Probe-tone ratings of the 12 pitch classes (tonic first) in a major and a minor key context:
# Krumhansl, C. L. & Kessler, E. J. (1982). Tracing the dynamic changes in perceived tonal
# organization in a spatial representation of musical keys. Psychological Review 89(4), 334-368
# (the values as tabulated in Krumhansl, C. L. (1990), Cognitive Foundations of Musical Pitch).
KRUMHANSL_KESSLER_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
KRUMHANSL_KESSLER_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])

CHROMA_FMIN_HZ = 32.70319566257483  # C1
CHROMA_BINS_PER_OCTAVE = 36
CHROMA_MAX_OCTAVES = 7


@dataclass(frozen=True)
class ChromaTrack:
    """Per-frame chroma of one clip."""

    times_s: np.ndarray  # (F,) frame centres
    chroma: np.ndarray  # (12, F) CQT magnitude per pitch class, C first
    hop_s: float

    def window(self, start_s: float, end_s: float) -> "ChromaTrack":
        """The frames whose centres lie in [start_s, end_s)."""
        keep = (self.times_s >= start_s) & (self.times_s < end_s)
        return ChromaTrack(times_s=self.times_s[keep], chroma=self.chroma[:, keep], hop_s=self.hop_s)

    def mean(self) -> np.ndarray:
        """(12,) mean chroma over frames (zeros for no frames)."""
        if self.chroma.shape[1] == 0:
            return np.zeros(12)
        return self.chroma.mean(axis=1)


@dataclass(frozen=True)
class KeyEstimate:
    """A key: tonic pitch class (0 = C), mode and the correlation that chose it; None/NaN if none."""

    tonic: int | None
    mode: str | None  # "major" / "minor"
    strength: float  # Pearson r of the best profile, NaN when there is no key
    correlations: np.ndarray  # (24,) r for C major ... B major, C minor ... B minor (NaN if no key)

    @property
    def defined(self) -> bool:
        return self.tonic is not None

    @property
    def name(self) -> str:
        """``"C major"``, ``"A minor"``; ``"none"`` without a key."""
        return f"{PITCH_CLASS_NAMES[self.tonic]} {self.mode}" if self.tonic is not None else "none"

    @property
    def index(self) -> int | None:
        """0..23: tonic + 12 * mode index (C major = 0, A minor = 21)."""
        return None if self.tonic is None else self.tonic + 12 * MODES.index(self.mode or "major")


def chroma_octaves(sample_rate: int) -> int:
    """Octaves of chroma above C1 that fit under 0.45 x the sample rate (at most 7)."""
    octaves = int(math.floor(math.log2(0.45 * sample_rate / CHROMA_FMIN_HZ)))
    if octaves < 1:
        raise ValueError(f"sample rate {sample_rate} Hz is too low for chroma (needs at least one octave above C1)")
    return min(CHROMA_MAX_OCTAVES, octaves)


def chroma_hop_samples(sample_rate: int, hop_s: float) -> int:
    """``hop_s`` in samples, rounded to a multiple of the CQT's 2^(octaves-1) downsampling."""
    step = 2 ** (chroma_octaves(sample_rate) - 1)
    return max(1, int(round(hop_s * sample_rate / step))) * step


def chroma_cqt(audio: np.ndarray, sample_rate: int, hop_s: float = 0.032) -> ChromaTrack:
    """Chromagram of a mono clip (samples,) float32 (validated by the caller). See module docstring."""
    librosa = numba_cache.librosa()  # compiled by one process at a time

    from metrics.descriptors import cqt_filters

    cqt_filters.install()  # the filter bases are built once per process, not once per clip
    octaves = chroma_octaves(sample_rate)
    hop = chroma_hop_samples(sample_rate, hop_s)
    with warnings.catch_warnings():
        # clips of a few seconds: the CQT's most downsampled octave is shorter than its FFT and
        # librosa warns about its internal signal; the chroma is still defined (zero-padded)
        warnings.filterwarnings("ignore", message=r"n_fft=\d+ is too large for input signal", category=UserWarning)
        chroma = librosa.feature.chroma_cqt(
            y=np.asarray(audio, dtype=np.float32), sr=sample_rate, hop_length=hop, fmin=CHROMA_FMIN_HZ,
            n_octaves=octaves, bins_per_octave=CHROMA_BINS_PER_OCTAVE, tuning=0.0, norm=None,
        ).astype(np.float64)  # (12, F)
    times = np.arange(chroma.shape[1]) * hop / sample_rate
    return ChromaTrack(times_s=times, chroma=chroma, hop_s=hop / sample_rate)


def key_profiles() -> np.ndarray:
    """(24, 12): the major profile rotated to each tonic C..B, then the minor profile likewise."""
    major = np.stack([np.roll(KRUMHANSL_KESSLER_MAJOR, t) for t in range(12)])
    minor = np.stack([np.roll(KRUMHANSL_KESSLER_MINOR, t) for t in range(12)])
    return np.concatenate([major, minor])


def pearson_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, M) Pearson correlation of every row of a (N, K) with every row of b (M, K).

    A constant row has no correlation: its entries are NaN.
    """
    a = np.atleast_2d(np.asarray(a, dtype=np.float64))
    b = np.atleast_2d(np.asarray(b, dtype=np.float64))
    ac = a - a.mean(axis=1, keepdims=True)
    bc = b - b.mean(axis=1, keepdims=True)
    na = np.linalg.norm(ac, axis=1)
    nb = np.linalg.norm(bc, axis=1)
    scale = np.outer(na, nb)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (ac @ bc.T) / scale
    # relative tolerance: a "constant" row is one whose spread is round-off
    r[na <= 1e-12 * (np.abs(a).max(axis=1) + 1e-300), :] = np.nan
    r[:, nb <= 1e-12 * (np.abs(b).max(axis=1) + 1e-300)] = np.nan
    return np.clip(r, -1.0, 1.0)


def estimate_key(mean_chroma: np.ndarray) -> KeyEstimate:
    """Krumhansl-Schmuckler key of a (12,) chroma vector (C first); ties go to the lower index."""
    v = np.asarray(mean_chroma, dtype=np.float64)
    if v.shape != (12,):
        raise ValueError(f"a chroma vector has 12 pitch classes, got shape {v.shape}")
    if not np.all(np.isfinite(v)) or v.max() <= 0.0:
        return KeyEstimate(None, None, float("nan"), np.full(24, np.nan))
    r = pearson_rows(v, key_profiles())[0]  # (24,)
    if not np.all(np.isfinite(r)):
        return KeyEstimate(None, None, float("nan"), np.full(24, np.nan))
    best = int(np.argmax(r))
    return KeyEstimate(tonic=best % 12, mode=MODES[best // 12], strength=float(r[best]), correlations=r)
