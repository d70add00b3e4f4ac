"""One call for all descriptors of a clip, or of each window of a stream.

Frame-level features are computed ONCE over the whole audio (PESTO pitch track, chromagram,
onset envelope); a window takes the frames whose centres fall inside it, so overlapping windows
cost nothing extra and no window sees edge effects of being cut out. Per window:

- pitch descriptors from its pitch frames (:mod:`metrics.descriptors.pitch`);
- the key from its mean chroma (:mod:`metrics.descriptors.tonality`);
- onset rate and tempo from its envelope frames (:mod:`metrics.descriptors.rhythm`);
- ``level_dbfs``, the RMS level of its samples. A window below ``gate_dbfs`` is silence: no key
  (NaN), no onsets (0) and no tempo (NaN), whatever its noise floor would otherwise give.

Keys, units and directions: :data:`metrics.descriptors.info.DESCRIPTOR_INFO`.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from bench.core.errors import ConfigError
from metrics.descriptors.audio import level_dbfs, mono_audio
from metrics.descriptors.config import DEFAULT_CONFIG, DescriptorConfig
from metrics.descriptors.info import DESCRIPTOR_COLUMNS
from metrics.descriptors.pesto_tracker import PitchTrack, PitchTracker, default_tracker
from metrics.descriptors.pitch import PITCH_CLASS_NAMES, PITCH_COLUMNS, pitch_descriptors
from metrics.descriptors.rhythm import OnsetEnvelope, onset_envelope, onset_rate_hz, tempo_bpm
from metrics.descriptors.tonality import MODES, ChromaTrack, KeyEstimate, chroma_cqt, estimate_key

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClipFeatures:
    """Frame-level features of one mono clip, computed once."""

    audio: np.ndarray  # (T,) float32, validated
    sample_rate: int
    pitch: PitchTrack | None  # None when config.with_pitch is False
    chroma: ChromaTrack
    onsets: OnsetEnvelope

    @property
    def duration_s(self) -> float:
        return self.audio.shape[0] / self.sample_rate


def clip_features(
    audio: np.ndarray,
    sample_rate: int,
    *,
    config: DescriptorConfig = DEFAULT_CONFIG,
    tracker: PitchTracker | None = None,
    source: str = "audio",
) -> ClipFeatures:
    """Validate a mono clip and compute its frame-level features."""
    x = mono_audio(audio, sample_rate, source=source)
    sr = int(sample_rate)
    pitch = (tracker or default_tracker()).track(x, sr) if config.with_pitch else None
    return ClipFeatures(
        audio=x, sample_rate=sr, pitch=pitch, chroma=chroma_cqt(x, sr, config.chroma_hop_s),
        onsets=onset_envelope(x, sr, config.onset_hop_s),
    )


def summarise(
    features: ClipFeatures, start_s: float, end_s: float, config: DescriptorConfig = DEFAULT_CONFIG
) -> dict[str, float]:
    """Descriptors of the frames centred in [start_s, end_s) (``end_s = inf``: to the end)."""
    sr = features.sample_rate
    a = max(0, int(round(start_s * sr)))
    b = features.audio.shape[0] if math.isinf(end_s) else min(features.audio.shape[0], int(round(end_s * sr)))
    duration_s = (b - a) / sr
    level = level_dbfs(features.audio[a:b])
    out: dict[str, float] = {}
    if features.pitch is not None:
        out.update(pitch_descriptors(features.pitch.window(start_s, end_s), config))
    else:
        out.update({k: float("nan") for k in PITCH_COLUMNS})
    audible = level >= config.gate_dbfs and duration_s > 0
    key = window_key(features.chroma, level, start_s, end_s, config)
    envelope = features.onsets.window(start_s, end_s)
    out["key_tonic"] = float(key.tonic) if key is not None and key.defined else float("nan")
    out["key_mode"] = float(MODES.index(key.mode)) if key is not None and key.defined else float("nan")
    out["key_strength"] = key.strength if key is not None else float("nan")
    out["onset_rate_hz"] = onset_rate_hz(envelope, duration_s) if audible else 0.0
    out["tempo_bpm"] = tempo_bpm(envelope, config.start_bpm, config.min_beats) if audible else float("nan")
    out["level_dbfs"] = level
    return {k: out[k] for k in DESCRIPTOR_COLUMNS}


def window_key(
    chroma: ChromaTrack, level: float, start_s: float, end_s: float, config: DescriptorConfig = DEFAULT_CONFIG
) -> KeyEstimate | None:
    """Key of the chroma frames centred in [start_s, end_s); None for a window whose ``level``
    (dBFS) is below the gate."""
    if level < config.gate_dbfs:
        return None
    return estimate_key(chroma.window(start_s, end_s).mean())


def describe(
    audio: np.ndarray,
    sample_rate: int,
    *,
    config: DescriptorConfig = DEFAULT_CONFIG,
    tracker: PitchTracker | None = None,
) -> dict[str, float]:
    """All descriptors of one mono clip as a flat dict of floats (keys: ``DESCRIPTOR_COLUMNS``).

    audio: (samples,) or (1, samples), any sample rate. ``tracker`` defaults to the process-wide
    PESTO tracker. NaN marks a descriptor that is undefined for this clip (no key in silence, no
    pitch range without pitched frames, no tempo without beats).
    """
    features = clip_features(audio, sample_rate, config=config, tracker=tracker)
    return summarise(features, 0.0, math.inf, config)


def window_bounds(n_samples: int, sample_rate: int, window_s: float, hop_s: float) -> list[tuple[int, int]]:
    """[start, end) sample bounds of the full windows of ``window_s`` every ``hop_s`` seconds."""
    if not (0 < window_s < math.inf and 0 < hop_s < math.inf):
        raise ConfigError(f"window_s and hop_s must be finite and > 0 seconds, got window_s={window_s}, hop_s={hop_s}")
    window = int(round(window_s * sample_rate))
    hop = max(1, int(round(hop_s * sample_rate)))
    if window < 1 or n_samples < window:
        raise ValueError(
            f"audio of {n_samples / sample_rate:.3f} s is shorter than one window of {window_s} s; "
            f"use a shorter window_s or describe() for the whole clip"
        )
    return [(s, s + window) for s in range(0, n_samples - window + 1, hop)]


def describe_windows(
    audio: np.ndarray,
    sample_rate: int,
    window_s: float,
    hop_s: float,
    *,
    config: DescriptorConfig = DEFAULT_CONFIG,
    tracker: PitchTracker | None = None,
) -> "pd.DataFrame":
    """Descriptors of each full window of ``window_s`` seconds every ``hop_s`` seconds.

    One row per window: ``window`` (index), ``start_s``, ``end_s``, the ``DESCRIPTOR_COLUMNS`` and
    ``key`` (the key's name, e.g. ``"C major"``, or ``"none"``). A trailing partial window is
    dropped; audio shorter than one window is an error.
    """
    import pandas as pd

    x = mono_audio(audio, sample_rate)
    bounds = window_bounds(x.shape[0], int(sample_rate), window_s, hop_s)  # fail before any model runs
    features = clip_features(x, sample_rate, config=config, tracker=tracker)
    sr = features.sample_rate
    rows = []
    for i, (a, b) in enumerate(bounds):
        row: dict[str, float | int | str] = {"window": i, "start_s": a / sr, "end_s": b / sr}
        values = summarise(features, a / sr, b / sr, config)
        row.update(values)
        tonic, mode = values["key_tonic"], values["key_mode"]
        row["key"] = "none" if math.isnan(tonic) else f"{PITCH_CLASS_NAMES[int(tonic)]} {MODES[int(mode)]}"
        rows.append(row)
    log.debug("described %d windows of %g s every %g s", len(rows), window_s, hop_s)
    return pd.DataFrame(rows, columns=["window", "start_s", "end_s", *DESCRIPTOR_COLUMNS, "key"])
