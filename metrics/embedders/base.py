"""The embedder contract: audio in, frames of features out, with a full pipeline identity.

An :class:`Embedder` is cheap to construct (no weights, no heavy imports). ``load()`` reads
weights from an explicit local path (embedders without weights load nothing). ``embed(audio,
sample_rate)`` validates the clip, converts channels and sample rate the documented way, and
returns ``(frames, features)`` float32. ``identity`` is a string naming everything that changes
the numbers: model, checkpoint sha256, window, hop, pooling, resampling, channel handling and
loudness normalisation. Embedding caches and reference statistics are keyed by it, and reports
print it next to every score.

Channel handling is the same for every built-in embedder: multi-channel audio is averaged to
mono ("mean"). Resampling uses ``scipy.signal.resample_poly`` (polyphase, Kaiser window, the
rational ratio reduced by the gcd), which is deterministic and needs no extra package.
"""

from __future__ import annotations

import math
import os
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np

from metrics.audio_io import AudioError, validate_audio

RESAMPLER = "scipy.signal.resample_poly(kaiser5)"


class EmbedderError(RuntimeError):
    """An embedder used wrongly (not loaded, bad configuration); the message says what to do."""


def require_offline_hub(library: str) -> None:
    """Refuse to import a library that reaches for the Hugging Face hub unless the process is
    offline: laion-clap's import alone retries tokenizer downloads for over 10 minutes when
    ``HF_HUB_OFFLINE`` is unset. Embedders here never use the hub, so offline loses nothing."""
    if os.environ.get("HF_HUB_OFFLINE", "") not in ("1", "true", "TRUE", "yes", "YES"):
        raise EmbedderError(
            f"set HF_HUB_OFFLINE=1 (and TRANSFORMERS_OFFLINE=1) before starting Python: importing {library} "
            f"otherwise spends minutes retrying Hugging Face downloads. The Makefile and .ci/run set both; "
            f"embedders only read local files"
        )


def resample(audio: np.ndarray, sample_rate: int, target_rate: int) -> np.ndarray:
    """(C, T) float at ``sample_rate`` -> (C, T') float64 at ``target_rate`` (polyphase)."""
    if int(sample_rate) == int(target_rate):
        return np.asarray(audio, dtype=np.float64)
    from scipy.signal import resample_poly  # lazy: about 1 s to import, and only resampling needs it

    g = math.gcd(int(sample_rate), int(target_rate))
    up, down = int(target_rate) // g, int(sample_rate) // g
    return resample_poly(np.asarray(audio, dtype=np.float64), up, down, axis=-1, window=("kaiser", 5.0))


def to_mono(audio: np.ndarray) -> np.ndarray:
    """(C, T) -> (T,) by averaging channels."""
    return np.asarray(audio, dtype=np.float64).mean(axis=0)


class Embedder(ABC):
    """Base class of every embedder. Subclasses set the class attributes and implement
    :meth:`_embed_mono` (or override :meth:`embed`).

    Attributes:
        name: registry name; says what the features are (``logmel``, ``clap-laion-music``...).
        sample_rate: the native rate (Hz) audio is resampled to before embedding.
        feature_dim: features per frame.
        channels: how channels are handled ("mean": averaged to mono).
        pretrained: True when the features come from a learned model (reports must not call a
            weight-free embedder's FAD a pretrained-model FAD).
        needs_weights: True when :meth:`load` must be given (or find) a weights file.
    """

    name: ClassVar[str] = ""
    sample_rate: int = 16000
    feature_dim: int = 0
    channels: str = "mean"
    pretrained: ClassVar[bool] = False
    needs_weights: ClassVar[bool] = False
    min_samples: int = 1  # shortest clip (at the native rate) that yields at least one frame

    def __init__(self) -> None:
        self._loaded = not self.needs_weights
        self.checkpoint_sha256: str | None = None

    # ----------------------------------------------------------------------------- contract
    @property
    def loaded(self) -> bool:
        return self._loaded

    def load(self, path: Any = None) -> "Embedder":
        """Load weights from an explicit local ``path`` (weight-free embedders: nothing to do)."""
        self._loaded = True
        return self

    @property
    @abstractmethod
    def identity(self) -> str:
        """The full pipeline identity (see module docstring)."""

    def embed(self, audio: np.ndarray, sample_rate: int, *, source: str = "audio") -> np.ndarray:
        """(C, T) or (T,) audio at ``sample_rate`` -> (frames, feature_dim) float32."""
        self._require_loaded()
        mono = self.prepare(audio, sample_rate, source=source)  # (T',) float64 at self.sample_rate
        if mono.shape[0] < self.min_samples:
            raise AudioError(
                f"{source}: {mono.shape[0] / self.sample_rate:.3f} s is too short for {self.name}: it needs "
                f"at least {self.min_samples / self.sample_rate:.3f} s to produce one frame"
            )
        frames = self._embed_mono(mono)
        frames = np.ascontiguousarray(frames, dtype=np.float32)
        if frames.ndim != 2 or frames.shape[1] != self.feature_dim or frames.shape[0] < 1:
            raise EmbedderError(
                f"{self.name} produced shape {frames.shape}, expected (frames >= 1, {self.feature_dim})"
            )
        if not np.isfinite(frames).all():
            raise EmbedderError(f"{source}: {self.name} produced non-finite features (check the weights)")
        return frames

    # ----------------------------------------------------------------------------- helpers
    def prepare(self, audio: np.ndarray, sample_rate: int, *, source: str = "audio") -> np.ndarray:
        """Validate, average channels, resample: -> (T',) float64 at the native rate."""
        arr = validate_audio(audio, sample_rate, source=source)
        return resample(to_mono(arr)[None, :], int(sample_rate), self.sample_rate)[0]

    def _embed_mono(self, mono: np.ndarray) -> np.ndarray:
        """(T,) float64 mono at the native rate -> (frames, feature_dim)."""
        raise NotImplementedError

    def _require_loaded(self) -> None:
        if not self._loaded:
            raise EmbedderError(
                f"embedder {self.name!r} has no weights loaded: call .load(path) with a local weights file "
                f"(see `python -m metrics.weights list`)"
            )

    def _identity(self, **fields: Any) -> str:
        """Compose an identity string: name, then ``key=value`` fields in the given order."""
        parts = [self.name] + [f"{k}={v}" for k, v in fields.items()]
        return "|".join(parts)


class TorchEmbedder(Embedder):
    """An embedder whose features come from a torch model loaded by :meth:`load` onto ``device``."""

    def __init__(self, device: str = "cpu") -> None:
        super().__init__()
        self.device = device
        self.model: Any = None
