"""Music-aware descriptors: what a musician hears drift as, per clip or per window of a stream.

Learned-embedding distances (FAD, KAD) say "different from the reference"; these say what changed:

- pitch (PESTO, pretrained, offline): pitched-frame fraction, pitch range, pitch-class histogram
  (:mod:`~metrics.descriptors.pesto_tracker`, :mod:`~metrics.descriptors.pitch`);
- tonality: CQT chroma and the Krumhansl-Schmuckler key (:mod:`~metrics.descriptors.tonality`);
- rhythm: onset rate and tempo (librosa) (:mod:`~metrics.descriptors.rhythm`);
- stability over a stream: key agreement and changes, tempo and onset-rate variation
  (:mod:`~metrics.descriptors.stability`);
- continuation fidelity: chroma of continuations vs their own contexts against shuffled contexts,
  with a bootstrap CI (:mod:`~metrics.descriptors.continuation`).

One call: :func:`describe` (a clip -> flat dict of floats) and :func:`describe_windows` (a stream ->
one row per window); names, units and directions in :data:`DESCRIPTOR_INFO`. Inputs are mono
float audio at any sample rate; bad audio raises ``ValueError``
(:class:`~metrics.audio_io.AudioError`). Importing this package loads neither torch nor librosa:
they are imported when a feature is first computed. Definitions: ``docs/descriptors.md``.
"""

from __future__ import annotations

from metrics.descriptors.config import DEFAULT_CONFIG, DescriptorConfig
from metrics.descriptors.continuation import ContinuationFidelity, continuation_fidelity, fidelity_from_chroma
from metrics.descriptors.describe import describe, describe_windows
from metrics.descriptors.info import (
    CONTINUATION_COLUMNS, DESCRIPTOR_COLUMNS, DESCRIPTOR_INFO, STABILITY_COLUMNS, DescriptorInfo,
)
from metrics.descriptors.pesto_tracker import PitchTrack, PitchTracker
from metrics.descriptors.pitch import pitch_class_histogram, pitch_range_semitones, pitched_fraction
from metrics.descriptors.stability import KeyStability, key_stability, stability
from metrics.descriptors.tonality import KeyEstimate, chroma_cqt, estimate_key

__all__ = [
    "CONTINUATION_COLUMNS", "DEFAULT_CONFIG", "DESCRIPTOR_COLUMNS", "DESCRIPTOR_INFO", "STABILITY_COLUMNS",
    "ContinuationFidelity", "DescriptorConfig", "DescriptorInfo", "KeyEstimate", "KeyStability", "PitchTrack",
    "PitchTracker", "chroma_cqt", "continuation_fidelity", "describe", "describe_windows", "estimate_key",
    "fidelity_from_chroma", "key_stability", "pitch_class_histogram", "pitch_range_semitones", "pitched_fraction",
    "stability",
]
