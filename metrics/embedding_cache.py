"""Embedding cache keyed by the full pipeline identity and the audio content.

    key = sha256(embedder.identity + "\\n" + audio content hash)
    path = <root>/<key[:2]>/<key>.npy        (float32, (frames, features))

The audio content hash covers the sample rate, shape, and the exact float32 samples, so a
changed file, a changed checkpoint, or a changed window/hop/resampler never hits a stale entry
(unlike caches keyed by model and file name). The root is the run's output folder or a user
cache directory (``$LMB_EMBEDDING_CACHE``, default ``~/.cache/live-music-bench/embeddings``),
never the folder holding the user's audio. Writes are atomic (temporary file + rename); an
unreadable entry is treated as a miss and rewritten.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from metrics.audio_io import AudioError, read_audio

log = logging.getLogger(__name__)

CACHE_ENV = "LMB_EMBEDDING_CACHE"
DEFAULT_CACHE_DIR = Path("~/.cache/live-music-bench/embeddings")


def default_cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV, str(DEFAULT_CACHE_DIR))).expanduser()


def audio_content_hash(audio: np.ndarray, sample_rate: int) -> str:
    """sha256 of (sample rate, shape, float32 C-order samples) of one clip."""
    arr = np.ascontiguousarray(np.asarray(audio, dtype=np.float32))
    h = hashlib.sha256()
    h.update(f"sr={int(sample_rate)};shape={arr.shape};float32-le;".encode())
    h.update(arr.astype("<f4", copy=False).tobytes())
    return h.hexdigest()


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    repaired: int = 0


class EmbeddingCache:
    """A directory of cached embeddings (see module docstring)."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root).expanduser() if root is not None else default_cache_dir()
        self.stats = CacheStats()

    @staticmethod
    def key(identity: str, content_hash: str) -> str:
        return hashlib.sha256(f"{identity}\n{content_hash}".encode()).hexdigest()

    def path(self, identity: str, content_hash: str) -> Path:
        k = self.key(identity, content_hash)
        return self.root / k[:2] / f"{k}.npy"

    def get(self, identity: str, content_hash: str) -> np.ndarray | None:
        p = self.path(identity, content_hash)
        if not p.is_file():
            return None
        try:
            arr = np.load(p, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            log.warning("embedding cache entry %s is unreadable (%s); recomputing", p, exc)
            self.stats.repaired += 1
            return None
        if arr.ndim != 2 or arr.dtype != np.float32:
            log.warning("embedding cache entry %s has shape %s dtype %s; recomputing", p, arr.shape, arr.dtype)
            self.stats.repaired += 1
            return None
        return arr

    def put(self, identity: str, content_hash: str, embedding: np.ndarray) -> Path:
        p = self.path(identity, content_hash)
        p.parent.mkdir(parents=True, exist_ok=True)
        arr = np.ascontiguousarray(embedding, dtype=np.float32)
        fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.stem}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                np.save(fh, arr, allow_pickle=False)
            os.replace(tmp, p)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return p

    def embed(
        self, embedder: Any, audio: np.ndarray, sample_rate: int, *, source: str = "audio",
        content_hash: str | None = None,
    ) -> np.ndarray:
        """``embedder.embed(audio, sample_rate)``, from the cache when possible."""
        content = content_hash or audio_content_hash(audio, sample_rate)
        identity = embedder.identity
        hit = self.get(identity, content)
        if hit is not None:
            self.stats.hits += 1
            return hit
        self.stats.misses += 1
        emb = embedder.embed(audio, sample_rate, source=source)
        self.put(identity, content, emb)
        return np.ascontiguousarray(emb, dtype=np.float32)


@dataclass
class EmbeddedFiles:
    """Embeddings of a list of files, in the given order."""

    paths: list[Path]
    embeddings: list[np.ndarray]  # (frames_i, D) each
    sample_rates: dict[str, int] = field(default_factory=dict)
    content_hashes: dict[str, str] = field(default_factory=dict)

    def stacked(self) -> tuple[np.ndarray, np.ndarray]:
        """((sum frames, D) float32 frames, (sum frames,) clip index of each frame)."""
        frames = np.concatenate(self.embeddings, axis=0)
        groups = np.concatenate([np.full(e.shape[0], i) for i, e in enumerate(self.embeddings)])
        return frames, groups


class AudioBatchError(AudioError):
    """Some files of a batch failed; the good ones were embedded and cached."""

    def __init__(self, failures: dict[str, str], done: int) -> None:
        self.failures = failures
        lines = "\n".join(f"  - {msg}" for msg in failures.values())
        super().__init__(
            f"{len(failures)} audio file(s) could not be embedded ({done} others were embedded and cached, so a "
            f"re-run after fixing these does not redo them):\n{lines}"
        )


def embed_files(
    paths: Iterable[str | Path],
    embedder: Any,
    cache: EmbeddingCache | None = None,
    *,
    allow_silence: bool = False,
) -> EmbeddedFiles:
    """Read, validate and embed every file; raise :class:`AudioBatchError` listing ALL bad files
    after the good ones are embedded (and cached), so nothing computed is lost."""
    files = [Path(p) for p in paths]
    if cache is not None:
        cache_root = cache.root.resolve()
        for f in files:
            if f.parent.resolve() == cache_root:
                raise ValueError(
                    f"the embedding cache {cache.root} is the folder of the audio file {f}; use the run's output "
                    f"folder or {DEFAULT_CACHE_DIR} so nothing is written next to your audio"
                )
    out = EmbeddedFiles(paths=[], embeddings=[])
    failures: dict[str, str] = {}
    for f in files:
        try:
            audio = read_audio(f, allow_silence=allow_silence)
            content = audio_content_hash(audio.samples, audio.sample_rate)
            if cache is not None:
                emb = cache.embed(embedder, audio.samples, audio.sample_rate, source=str(f), content_hash=content)
            else:
                emb = embedder.embed(audio.samples, audio.sample_rate, source=str(f))
        except AudioError as exc:
            failures[str(f)] = str(exc)
            continue
        out.paths.append(f)
        out.embeddings.append(emb)
        out.sample_rates[str(f)] = audio.sample_rate
        out.content_hashes[str(f)] = content
    if failures:
        raise AudioBatchError(failures, done=len(out.paths))
    return out
