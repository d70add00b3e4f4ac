"""Pitch descriptors: pure functions over a :class:`~metrics.descriptors.pesto_tracker.PitchTrack`.

A frame is **pitched** when PESTO's confidence exceeds ``confidence_threshold`` (default 0.5)
AND its RMS level (over ``gate_frame_s`` of the ORIGINAL audio) is at least ``gate_dbfs``
(default -60 dBFS, the silence threshold of the drift signal statistics). PESTO reads digital
silence as unpitched by itself (confidence about 0.11), but the tracker normalises the level it
feeds PESTO (up to +40 dB, see :mod:`metrics.descriptors.pesto_tracker`), which lifts a -65 dBFS
hum to a confidently pitched tone; the gate makes such near-silence count as silence, which is
how a listener hears it.

- ``pitched_fraction``: pitched frames / all frames, in [0, 1].
- ``pitch_range_semitones``: the 95th minus the 5th percentile of MIDI pitch over pitched frames
  (percentiles, not min/max, so a few octave errors do not set the range). NaN with fewer than
  ``min_pitched_frames`` pitched frames.
- ``pitch_median_midi``: median MIDI pitch over pitched frames (same NaN rule).
- ``pitch_class_histogram``: 12 bins (C=0 ... B=11, pitch class of the nearest semitone) over
  pitched frames, each frame weighted by its confidence (default) or counted once; normalised to
  sum 1; all NaN when no frame is pitched.
- ``pitch_class_entropy_bits``: Shannon entropy of that histogram, in [0, log2 12 = 3.585] bits:
  0 for one repeated pitch class, 2.81 for a uniform diatonic scale.
"""

from __future__ import annotations

import numpy as np

from metrics.descriptors.config import DEFAULT_CONFIG, DescriptorConfig
from metrics.descriptors.pesto_tracker import PitchTrack

PITCH_CLASS_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
PITCH_COLUMNS = ("pitched_fraction", "pitch_range_semitones", "pitch_median_midi", "pitch_class_entropy_bits")


def pitched_mask(track: PitchTrack, config: DescriptorConfig = DEFAULT_CONFIG) -> np.ndarray:
    """(F,) bool: confidence above the threshold and level at or above the gate."""
    return (track.confidence > config.confidence_threshold) & (track.level_dbfs >= config.gate_dbfs)


def pitched_fraction(track: PitchTrack, config: DescriptorConfig = DEFAULT_CONFIG) -> float:
    """Fraction of frames that are pitched (NaN for a track without frames)."""
    if len(track) == 0:
        return float("nan")
    return float(np.mean(pitched_mask(track, config)))


def pitch_range_semitones(track: PitchTrack, config: DescriptorConfig = DEFAULT_CONFIG) -> float:
    """High minus low percentile (``config.range_percentiles``) of MIDI pitch over pitched frames."""
    midi = track.midi[pitched_mask(track, config)]
    if midi.shape[0] < config.min_pitched_frames:
        return float("nan")
    low, high = np.percentile(midi, config.range_percentiles)
    return float(high - low)


def pitch_median_midi(track: PitchTrack, config: DescriptorConfig = DEFAULT_CONFIG) -> float:
    """Median MIDI pitch over pitched frames (NaN with too few)."""
    midi = track.midi[pitched_mask(track, config)]
    if midi.shape[0] < config.min_pitched_frames:
        return float("nan")
    return float(np.median(midi))


def pitch_class_histogram(track: PitchTrack, config: DescriptorConfig = DEFAULT_CONFIG) -> np.ndarray:
    """(12,) normalised pitch-class histogram of pitched frames (C = index 0); all NaN if none."""
    mask = pitched_mask(track, config)
    if not mask.any():
        return np.full(12, np.nan)
    classes = np.mod(np.rint(track.midi[mask]).astype(np.int64), 12)  # (P,)
    weights = track.confidence[mask] if config.histogram_weighting == "confidence" else None
    hist = np.bincount(classes, weights=weights, minlength=12).astype(np.float64)  # (12,)
    return hist / hist.sum()


def histogram_entropy_bits(histogram: np.ndarray) -> float:
    """Shannon entropy (bits) of a normalised histogram; NaN if it is NaN."""
    p = np.asarray(histogram, dtype=np.float64)
    if not np.all(np.isfinite(p)):
        return float("nan")
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


def pitch_descriptors(track: PitchTrack, config: DescriptorConfig = DEFAULT_CONFIG) -> dict[str, float]:
    """The scalar pitch descriptors of one track (keys as in :mod:`metrics.descriptors.info`)."""
    return {
        "pitched_fraction": pitched_fraction(track, config),
        "pitch_range_semitones": pitch_range_semitones(track, config),
        "pitch_median_midi": pitch_median_midi(track, config),
        "pitch_class_entropy_bits": histogram_entropy_bits(pitch_class_histogram(track, config)),
    }
