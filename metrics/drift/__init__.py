"""Drift over long horizons: quality and signal statistics as a function of stream time.

Modules (one idea each):

- :mod:`metrics.drift.windows`: block-aligned windows over stream audio files, read streaming;
- :mod:`metrics.drift.signal_stats`: learned-model-free statistics per window (loudness, spectral
  centroid and flatness, silence and clipping ratios);
- :mod:`metrics.drift.windowed`: per-window quality against a reference set (KAD, FAD, CLAP score)
  and per-stream distance to the stream's first window;
- :mod:`metrics.drift.descriptor_windows`: music descriptors per stream window (pitch, key, onsets,
  tempo, key drift against the first window) and per-stream key and tempo stability; their column
  names in :mod:`metrics.drift.descriptor_columns` (importable without loading any model);
- :mod:`metrics.drift.summary`: slope per minute with a CI, time to degrade, last/first ratio;
- :mod:`metrics.drift.regression`: baseline files and the comparison that fails a regression;
- :mod:`bench.app.drift.pytest_plugin`: the ``drift_baseline`` fixture for users' own test suites.

Definitions and defaults are documented in ``docs/drift.md``.
"""
