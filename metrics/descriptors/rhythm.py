"""Rhythm: onset rate and tempo from librosa's onset-strength envelope.

The envelope (``librosa.onset.onset_strength``: positive log-mel spectral flux, mean over 128 mel
bands, hop ``onset_hop_s``, centred frames) is computed once per clip; windows take its frames.

- ``onset_rate_hz``: onsets per second. Onsets are librosa's peak picking
  (``librosa.onset.onset_detect`` on the window's envelope, normalised to [0, 1] within the
  window, its default thresholds: 30 ms local maximum, 100 ms mean + 0.07, 30 ms minimum gap).
- ``tempo_bpm``: beats per minute from librosa's dynamic-programming beat tracker
  (``librosa.beat.beat_track``, Ellis 2007; its tempo prior is log-normal around ``start_bpm``),
  refined from the tracked beats: the global tempo estimate is quantised to whole envelope frames
  (at 16 kHz and a 16 ms hop, 117.2 or 121.0 bpm but never 120), so the tempo reported is
  ``60 / period`` with ``period = sum(inter-beat intervals) / sum(k_i)``, ``k_i`` the number of
  beat periods each interval spans (``round(interval / median interval)``, which absorbs a skipped
  beat). NaN with fewer than ``min_beats`` beats. Octave errors (half or double tempo) are the
  tracker's and are not corrected.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from metrics import numba_cache


@dataclass(frozen=True)
class OnsetEnvelope:
    """Onset strength per frame of one clip."""

    times_s: np.ndarray  # (F,) frame centres
    strength: np.ndarray  # (F,) onset strength (arbitrary units)
    hop_length: int  # samples between frames
    sample_rate: int

    def window(self, start_s: float, end_s: float) -> "OnsetEnvelope":
        """The frames whose centres lie in [start_s, end_s)."""
        keep = (self.times_s >= start_s) & (self.times_s < end_s)
        return OnsetEnvelope(self.times_s[keep], self.strength[keep], self.hop_length, self.sample_rate)


def onset_envelope(audio: np.ndarray, sample_rate: int, hop_s: float = 0.016) -> OnsetEnvelope:
    """Onset-strength envelope of a mono clip (samples,) float32 (validated by the caller)."""
    librosa = numba_cache.librosa()  # compiled by one process at a time

    hop = max(1, int(round(hop_s * sample_rate)))
    strength = librosa.onset.onset_strength(y=np.asarray(audio, dtype=np.float32), sr=sample_rate, hop_length=hop)
    strength = np.asarray(strength, dtype=np.float64)  # (F,)
    return OnsetEnvelope(np.arange(strength.shape[0]) * hop / sample_rate, strength, hop, int(sample_rate))


def onset_times_s(envelope: OnsetEnvelope) -> np.ndarray:
    """(N,) onset times in seconds (peak picking within this envelope)."""
    librosa = numba_cache.librosa()  # compiled by one process at a time

    if envelope.strength.shape[0] < 3:
        return np.zeros(0)
    frames = librosa.onset.onset_detect(
        onset_envelope=envelope.strength, sr=envelope.sample_rate, hop_length=envelope.hop_length, units="frames",
    )
    return envelope.times_s[np.asarray(frames, dtype=np.int64)]


def onset_rate_hz(envelope: OnsetEnvelope, duration_s: float) -> float:
    """Onsets per second over a window of ``duration_s`` seconds."""
    if not duration_s > 0:
        raise ValueError(f"duration_s must be > 0, got {duration_s}")
    return float(onset_times_s(envelope).shape[0] / duration_s)


def beat_times_s(envelope: OnsetEnvelope, start_bpm: float = 120.0) -> np.ndarray:
    """(B,) beat times in seconds from librosa's beat tracker on this envelope."""
    librosa = numba_cache.librosa()  # compiled by one process at a time

    if envelope.strength.shape[0] < 3 or not envelope.strength.any():
        return np.zeros(0)
    _, beats = librosa.beat.beat_track(
        onset_envelope=envelope.strength, sr=envelope.sample_rate, hop_length=envelope.hop_length,
        start_bpm=start_bpm, units="frames",
    )
    return envelope.times_s[np.asarray(beats, dtype=np.int64)]


def tempo_from_beats(beats_s: np.ndarray, min_beats: int = 4) -> float:
    """Tempo (bpm) from beat times: ``60 / (sum of intervals / sum of whole periods spanned)``."""
    beats = np.asarray(beats_s, dtype=np.float64)
    if beats.shape[0] < max(2, min_beats):
        return float("nan")
    intervals = np.diff(beats)  # (B-1,)
    if not np.all(intervals > 0):
        return float("nan")
    periods = np.maximum(1.0, np.rint(intervals / np.median(intervals)))  # (B-1,)
    return float(60.0 * periods.sum() / intervals.sum())


def tempo_bpm(envelope: OnsetEnvelope, start_bpm: float = 120.0, min_beats: int = 4) -> float:
    """Tempo of an envelope's window in bpm (see module docstring); NaN without enough beats."""
    return tempo_from_beats(beat_times_s(envelope, start_bpm), min_beats)
