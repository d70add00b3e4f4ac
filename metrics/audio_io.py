"""Reading and validating audio for the quality metrics.

Every audio array the metrics see goes through :func:`validate_audio`, so bad input fails early
with a message that names the file (or array), the problem and the fix:

- a missing, unreadable or empty file (:class:`AudioError`);
- NaN or infinite samples;
- silence (peak below ``silence_peak``, default -120 dBFS: an embedding of digital silence says
  nothing about quality, and FAD over silent clips is meaningless);
- a sample rate other than the one expected.

Shapes: audio is ``(channels, samples)`` float32 (a 1-D ``(samples,)`` array is read as mono).
Files are read with ``soundfile`` and never modified or written next to.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
import soundfile as sf

SILENCE_PEAK = 1e-6  # -120 dBFS: below this peak amplitude a clip counts as silent

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".aiff", ".aif", ".mp3", ".opus")


class AudioError(ValueError):
    """Audio that cannot be used: the message names the source, the problem and the fix."""


@dataclass(frozen=True)
class Audio:
    """Validated audio: ``samples`` is (channels, samples) float32."""

    samples: np.ndarray  # (C, T) float32
    sample_rate: int
    source: str  # file path or a caller-given label

    @property
    def duration_s(self) -> float:
        return self.samples.shape[-1] / self.sample_rate


def as_channels_first(audio: np.ndarray, source: str = "audio") -> np.ndarray:
    """(samples,) or (channels, samples) -> (channels, samples); anything else is an error."""
    arr = np.asarray(audio)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise AudioError(
            f"{source}: expected audio shaped (samples,) or (channels, samples), got shape {arr.shape}"
        )
    if arr.shape[0] > 16 and arr.shape[1] <= 16:
        raise AudioError(
            f"{source}: shape {arr.shape} looks like (samples, channels); pass (channels, samples) "
            f"(for example audio.T)"
        )
    return arr


def validate_audio(
    audio: np.ndarray,
    sample_rate: int,
    *,
    source: str = "audio",
    expected_sample_rate: int | None = None,
    silence_peak: float = SILENCE_PEAK,
    allow_silence: bool = False,
) -> np.ndarray:
    """Check one clip and return it as (channels, samples) float32.

    Raises :class:`AudioError` for an empty clip, NaN/inf samples, silence (unless
    ``allow_silence``), a non-positive sample rate, or a sample rate different from
    ``expected_sample_rate``.
    """
    if not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise AudioError(f"{source}: sample_rate must be a positive integer in Hz, got {sample_rate!r}")
    if expected_sample_rate is not None and int(sample_rate) != int(expected_sample_rate):
        raise AudioError(
            f"{source}: sample rate {sample_rate} Hz does not match the expected {expected_sample_rate} Hz; "
            f"resample it first or score it in a set of its own sample rate"
        )
    arr = as_channels_first(audio, source)
    if arr.shape[1] == 0 or arr.shape[0] == 0:
        raise AudioError(f"{source}: the clip is empty (shape {arr.shape}); nothing to embed")
    if not np.issubdtype(arr.dtype, np.floating) and not np.issubdtype(arr.dtype, np.integer):
        raise AudioError(f"{source}: audio must be numeric, got dtype {arr.dtype}")
    arr = arr.astype(np.float32, copy=False)
    finite = np.isfinite(arr)
    if not finite.all():
        bad = int((~finite).sum())
        first = int(np.argwhere(~finite)[0][1])
        raise AudioError(
            f"{source}: {bad} NaN/inf samples (first at sample {first}, {first / sample_rate:.3f} s); "
            f"the generator or file is broken, fix it before scoring"
        )
    peak = float(np.max(np.abs(arr)))
    if not allow_silence and peak < silence_peak:
        level = "-inf" if peak == 0 else f"{20 * np.log10(peak):.1f}"
        raise AudioError(
            f"{source}: the clip is silent (peak {level} dBFS, threshold "
            f"{20 * np.log10(silence_peak):.0f} dBFS); silent audio has no meaningful embedding. "
            f"Drop it from the set, or pass allow_silence=True if silence is intended"
        )
    return arr


def read_audio(
    path: str | Path,
    *,
    expected_sample_rate: int | None = None,
    allow_silence: bool = False,
) -> Audio:
    """Read and validate one file with soundfile. Returns :class:`Audio` (channels first)."""
    p = Path(path)
    if not p.exists():
        raise AudioError(f"{p}: no such file")
    if not p.is_file():
        raise AudioError(f"{p}: not a regular file")
    if p.stat().st_size == 0:
        raise AudioError(f"{p}: the file is empty (0 bytes)")
    try:
        data, sr = sf.read(str(p), dtype="float32", always_2d=True)  # (T, C)
    except Exception as exc:  # soundfile raises LibsndfileError / RuntimeError / TypeError
        raise AudioError(
            f"{p}: unreadable as audio ({type(exc).__name__}: {exc}); convert it to WAV or FLAC"
        ) from exc
    if data.shape[0] == 0:
        raise AudioError(f"{p}: the file has a header but no samples; nothing to embed")
    samples = validate_audio(
        data.T, int(sr), source=str(p), expected_sample_rate=expected_sample_rate, allow_silence=allow_silence
    )
    return Audio(samples=np.ascontiguousarray(samples), sample_rate=int(sr), source=str(p))


def list_audio_files(folder: str | Path, extensions: Iterable[str] = AUDIO_EXTENSIONS) -> list[Path]:
    """Audio files directly inside ``folder``, sorted by name (deterministic order)."""
    root = Path(folder)
    if not root.is_dir():
        raise AudioError(f"{root}: not a directory")
    exts = {e.lower() for e in extensions}
    files = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in exts)
    if not files:
        raise AudioError(f"{root}: no audio files ({', '.join(sorted(exts))}) in this folder")
    return files


def common_sample_rate(rates: dict[str, int]) -> int:
    """The one sample rate shared by all sources; an error listing the groups otherwise."""
    if not rates:
        raise AudioError("no audio given")
    distinct = sorted(set(rates.values()))
    if len(distinct) == 1:
        return distinct[0]
    groups = {sr: sorted(k for k, v in rates.items() if v == sr) for sr in distinct}
    desc = "; ".join(
        f"{sr} Hz: {', '.join(names[:3])}{' ...' if len(names) > 3 else ''}" for sr, names in groups.items()
    )
    raise AudioError(
        f"mismatched sample rates in one set ({desc}); resample to one rate before scoring"
    )
