"""Column names of the drift stage's music-descriptor tables (computed by
:mod:`metrics.drift.descriptor_windows`). Names only: importing this loads no model, so the
report (which never imports torch) reads the tables by these names."""

from __future__ import annotations

from metrics.descriptors.info import DESCRIPTOR_COLUMNS

# Key drift against the stream's first window (NaN in window 0, the anchor).
ANCHOR_COLUMNS: tuple[str, ...] = ("key_same_as_first", "chroma_corr_first")
# Added to each (stream, window) row: every descriptor, the key's name, the key-drift pair.
STREAM_WINDOW_COLUMNS: tuple[str, ...] = (*DESCRIPTOR_COLUMNS, "key", *ANCHOR_COLUMNS)
# Averaged over streams per window (with a bootstrap CI) and summarised over time. Not averaged:
# key_tonic / key_mode (categories), pitch_median_midi (register), level_dbfs (= rms_dbfs).
WINDOW_MEAN_COLUMNS: tuple[str, ...] = (
    "pitched_fraction", "pitch_range_semitones", "pitch_class_entropy_bits", "key_strength", "onset_rate_hz",
    "tempo_bpm", *ANCHOR_COLUMNS,
)
# One row per (generator, stream) in drift/stream_stability (generator first, the seed after the stream).
STABILITY_TABLE_COLUMNS: tuple[str, ...] = (
    "stream", "n_windows", "n_windows_with_key", "modal_key", "key_agreement_fraction", "key_changes",
    "first_key_change_s", "key_change_times_s", "tempo_cv", "onset_rate_cv", "modal_key_tonic", "modal_key_mode",
)

__all__ = ["ANCHOR_COLUMNS", "STABILITY_TABLE_COLUMNS", "STREAM_WINDOW_COLUMNS", "WINDOW_MEAN_COLUMNS"]
