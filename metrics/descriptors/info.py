"""Names, units and directions of every descriptor (the metadata tables and figures read).

``higher_is_better`` is None where the direction depends on the music (a drum loop has no pitch,
a ballad few onsets): compare those with a reference or the stream's own context instead.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DescriptorInfo:
    name: str
    unit: str
    higher_is_better: bool | None
    description: str


_WINDOW = (
    DescriptorInfo("pitched_fraction", "fraction", None,
                   "frames with PESTO confidence > threshold and level >= gate, over all frames"),
    DescriptorInfo("pitch_range_semitones", "semitones", None,
                   "95th minus 5th percentile of MIDI pitch over pitched frames"),
    DescriptorInfo("pitch_median_midi", "MIDI note", None, "median MIDI pitch over pitched frames (A4 = 69)"),
    DescriptorInfo("pitch_class_entropy_bits", "bits", None,
                   "entropy of the confidence-weighted pitch-class histogram (0 .. 3.585)"),
    DescriptorInfo("key_tonic", "pitch class", None, "Krumhansl-Schmuckler tonic, 0 = C ... 11 = B"),
    DescriptorInfo("key_mode", "mode", None, "0 = major, 1 = minor"),
    DescriptorInfo("key_strength", "Pearson r", True,
                   "correlation of the mean chroma with the best key profile (clearer tonality)"),
    DescriptorInfo("onset_rate_hz", "Hz", None, "onsets per second (librosa onset detection)"),
    DescriptorInfo("tempo_bpm", "bpm", None, "tempo from librosa's beat tracker, refined over the tracked beats"),
    DescriptorInfo("level_dbfs", "dBFS", None, "RMS level of the clip or window (the gates read it)"),
)

_STABILITY = (
    DescriptorInfo("key_agreement_fraction", "fraction", True,
                   "windows whose key is the modal key, over windows with a key"),
    DescriptorInfo("key_changes", "count", False, "consecutive windows (with a key) whose keys differ"),
    DescriptorInfo("modal_key_tonic", "pitch class", None, "tonic of the most frequent window key"),
    DescriptorInfo("modal_key_mode", "mode", None, "mode of the most frequent window key (0 major, 1 minor)"),
    DescriptorInfo("tempo_cv", "ratio", False,
                   "coefficient of variation (sample std / mean) of tempo_bpm over windows"),
    DescriptorInfo("onset_rate_cv", "ratio", False, "coefficient of variation of onset_rate_hz over windows"),
)

_CONTINUATION = (
    DescriptorInfo("chroma_fidelity_paired", "Pearson r", True,
                   "mean correlation of a continuation's mean chroma with its own context's"),
    DescriptorInfo("chroma_fidelity_shuffled", "Pearson r", None,
                   "mean correlation of a continuation's mean chroma with other pairs' contexts"),
    DescriptorInfo("chroma_fidelity_difference", "Pearson r", True, "paired minus shuffled"),
)

DESCRIPTOR_COLUMNS: tuple[str, ...] = tuple(d.name for d in _WINDOW)
STABILITY_COLUMNS: tuple[str, ...] = tuple(d.name for d in _STABILITY)
CONTINUATION_COLUMNS: tuple[str, ...] = tuple(d.name for d in _CONTINUATION)
DESCRIPTOR_INFO: dict[str, DescriptorInfo] = {d.name: d for d in (*_WINDOW, *_STABILITY, *_CONTINUATION)}
