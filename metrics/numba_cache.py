"""librosa, imported with its numba functions compiled by one process at a time.

librosa compiles its numba functions with ``cache=True``: at import for those with explicit
signatures (``guvectorize``), at first call for the others, and writes each to an on-disk cache
beside its source. numba's cache is not safe for concurrent writers: two processes that compile
at once can each pick the same data file for different signatures, and the index that survives
then points a signature at the other's machine code. Every later process that loads it crashes
with a segmentation fault, until the cache files are deleted. This happened on a fresh install:
the drift stage's two worker processes imported librosa at the same moment (both crashed, and so
did every run after). Two processes doing so corrupted it in 1 of 3 tries on the venv's cache and 4
of 4 on an empty one (NUMBA_CACHE_DIR). The test
suite's pytest-xdist workers race the same way.

:func:`librosa` takes an advisory lock shared by this user's processes (``fcntl.flock`` on a
file in the temporary folder; where it cannot be opened, a warning, and no lock) before this
process's first import of librosa, imports it, makes every librosa call of the descriptors once on
a short synthetic clip (compiling the lazily compiled functions for the dtypes the descriptors
pass), and releases the lock. The descriptors and the embedders that import
librosa (CLAP, PANNs) import it through here. A process that waited then finds a complete
cache and only reads it. Later calls return the module at once. Where ``fcntl`` does not exist
(Windows) there is no lock and the race remains possible.

    python -m metrics.numba_cache      # compile librosa's cache now (idempotent)
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import threading
import time
from pathlib import Path
from types import ModuleType
from typing import Iterator

import numpy as np

log = logging.getLogger(__name__)

LOCK_FILE_STEM = "live-music-bench-numba-cache"
WARM_SAMPLE_RATE = 22050
WARM_DURATION_S = 3.0

_guard = threading.Lock()  # one thread of this process imports and warms up
_module: ModuleType | None = None


def lock_path() -> Path:
    """The lock file every process of this user takes before its first librosa import (one per
    user: on a shared machine another user's lock file would not be writable)."""
    user = os.getuid() if hasattr(os, "getuid") else 0
    return Path(tempfile.gettempdir()) / f"{LOCK_FILE_STEM}-{user}.lock"


@contextlib.contextmanager
def exclusive(path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``path`` (created if missing) for the block."""
    try:
        import fcntl
    except ImportError:  # Windows: no advisory file locks here
        yield
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path, "a+b")
    except OSError as exc:  # an unwritable temporary folder must not stop the descriptors
        log.warning("cannot open the lock file %s (%s): librosa's numba cache is compiled without it; if two "
                    "processes compile at once it can be corrupted (docs/drift.md)", path, exc)
        handle = None
    if handle is None:
        yield
        return
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def warm_up_clip(sample_rate: int = WARM_SAMPLE_RATE, duration_s: float = WARM_DURATION_S) -> np.ndarray:
    """(samples,) float32: a 220 Hz tone with a click every 0.5 s (onsets, beats and chroma exist)."""
    t = np.arange(int(sample_rate * duration_s)) / sample_rate
    clip = 0.3 * np.sin(2 * np.pi * 220.0 * t)
    clicks = (np.arange(t.shape[0]) % (sample_rate // 2)) < sample_rate // 200
    return (clip + 0.5 * clicks).astype(np.float32)


def _warm_up(module: ModuleType) -> None:
    """Every librosa call of :mod:`metrics.descriptors` (rhythm, tonality), once, with the dtypes
    they pass: float32 audio, float64 onset envelopes."""
    clip = warm_up_clip()
    hop = 256
    strength = module.onset.onset_strength(y=clip, sr=WARM_SAMPLE_RATE, hop_length=hop).astype(np.float64)
    module.onset.onset_detect(onset_envelope=strength, sr=WARM_SAMPLE_RATE, hop_length=hop, units="frames")
    module.beat.beat_track(onset_envelope=strength, sr=WARM_SAMPLE_RATE, hop_length=hop, start_bpm=120.0,
                           units="frames")
    module.feature.chroma_cqt(y=clip, sr=WARM_SAMPLE_RATE, hop_length=512, tuning=0.0, norm=None)


def librosa() -> ModuleType:
    """The librosa module; this process's first call imports it and compiles what the descriptors
    use under the lock shared by this user's processes (module docstring)."""
    global _module
    with _guard:
        if _module is not None:
            return _module
        started = time.perf_counter()
        with exclusive(lock_path()):
            waited_s = time.perf_counter() - started
            import librosa as module

            _warm_up(module)
            _module = module
        log.debug("librosa ready in %.2f s (%.2f s waiting for another process's compile)",
                  time.perf_counter() - started, waited_s)
        return _module


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    t0 = time.perf_counter()
    librosa()
    log.info("librosa %s and its numba cache ready in %.1f s", _module.__version__, time.perf_counter() - t0)
