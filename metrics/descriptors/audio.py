"""Audio in: the mono check every descriptor starts with, and RMS levels for energy gates.

Descriptors are defined on ONE channel: a multi-channel clip is an error (mix it down first), not
silently averaged, because a stereo mix-down can cancel out-of-phase material and change pitch and
onset readings. Validation reuses :func:`metrics.audio_io.validate_audio` (empty, NaN/inf,
non-positive sample rate, wrong shape), with silence allowed: silence is a valid input here and
must read as "no pitch, no onsets", not fail.

Levels are in dBFS relative to a full-scale square wave, ``10 log10(mean(x^2))`` (a full-scale
sine reads -3 dBFS), floored at -120 dBFS: the convention of :mod:`metrics.drift.signal_stats`.
"""

from __future__ import annotations

import numpy as np

from metrics.audio_io import AudioError, validate_audio

LEVEL_FLOOR_DBFS = -120.0


def mono_audio(audio: np.ndarray, sample_rate: int, *, source: str = "audio") -> np.ndarray:
    """Validate one clip for the descriptors and return it as (samples,) float32.

    Accepts float (samples,) or (1, samples). Raises :class:`~metrics.audio_io.AudioError` (a
    ``ValueError``) naming the problem for an empty clip, NaN/inf samples, a non-positive or
    non-integer sample rate, more than one channel, any other shape, or integer PCM samples.
    """
    raw = np.asarray(audio)
    if np.issubdtype(raw.dtype, np.integer) or raw.dtype == np.bool_:
        raise AudioError(
            f"{source}: integer audio (dtype {raw.dtype}); descriptors read float samples in [-1, 1] "
            f"(levels are in dBFS): convert first, for example int16 / 32768"
        )
    arr = validate_audio(raw, sample_rate, source=source, allow_silence=True)  # (C, T) float32
    if arr.shape[0] != 1:
        raise AudioError(
            f"{source}: descriptors need mono audio, got {arr.shape[0]} channels (shape {arr.shape}); "
            f"mix down first, for example audio.mean(axis=0)"
        )
    return np.ascontiguousarray(arr[0])


def level_dbfs(audio: np.ndarray) -> float:
    """RMS level of a whole clip in dBFS (floored at -120)."""
    x = np.asarray(audio, dtype=np.float64)
    if x.size == 0:
        return LEVEL_FLOOR_DBFS
    return _to_dbfs(float(np.mean(x * x)))


def frame_levels_dbfs(audio: np.ndarray, centres: np.ndarray, frame_samples: int) -> np.ndarray:
    """RMS level (dBFS) of a ``frame_samples`` frame centred on each sample index in ``centres``.

    audio: (T,); centres: (F,) int sample indices. Frames are clipped to the clip (a frame
    hanging over an edge averages only the samples that exist). Returns (F,) float64.
    """
    x = np.asarray(audio, dtype=np.float64)
    csum = np.concatenate([[0.0], np.cumsum(x * x)])  # (T+1,)
    half = max(1, int(frame_samples)) // 2
    lo = np.clip(np.asarray(centres, dtype=np.int64) - half, 0, x.shape[0])
    hi = np.clip(np.asarray(centres, dtype=np.int64) + half, 0, x.shape[0])
    count = np.maximum(hi - lo, 1)
    mean_square = np.maximum((csum[hi] - csum[lo]) / count, 0.0)  # round-off can dip below 0
    with np.errstate(divide="ignore"):
        return np.maximum(10.0 * np.log10(mean_square), LEVEL_FLOOR_DBFS)


def _to_dbfs(mean_square: float) -> float:
    if mean_square <= 0.0:
        return LEVEL_FLOOR_DBFS
    return max(10.0 * float(np.log10(mean_square)), LEVEL_FLOOR_DBFS)
