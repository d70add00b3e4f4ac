"""An in-memory memo of librosa's constant-Q filter bases, so chroma stops rebuilding them per clip.

``librosa.cqt`` (and so ``librosa.feature.chroma_cqt``) builds the frequency-domain filter basis of
every octave on every call: wavelets, their FFTs and a sparsification, in librosa's private
``librosa.core.constantq.__vqt_filter_fft``. The basis depends only on the sample rate and the
transform's parameters, never on the audio. Measured on a 2-core machine (py-spy over one default
``run_all.py``, 2026-12-03): 39 s of a 404 s run, 0.13 s of the 0.16 s chroma of a 10 s window, and
85% of the continuation stage's chroma time (short clips). librosa decorates that function with its
own cache, but that cache is a joblib DISK cache enabled only by ``LIBROSA_CACHE_DIR`` before
librosa is imported; this module keeps the bases in memory instead.

:func:`install` wraps the function once per process (idempotent, thread-safe). The wrapper keys
each call by its exact arguments (arrays by dtype, shape and bytes), keeps at most
``MAX_ENTRIES`` bases, and returns COPIES: librosa rescales the returned basis in place. Results
are bitwise those of the unwrapped function (tested). A librosa without that function (a future
release) runs uncached, with one warning: only speed depends on it.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from typing import Any, Callable

import numpy as np

from metrics import numba_cache

log = logging.getLogger(__name__)

MAX_ENTRIES = 64  # one entry per (octave, sample rate, parameters); 7 octaves per chroma setting
_FUNCTION_NAME = "__vqt_filter_fft"
_lock = threading.Lock()
_warned = False  # the missing-function warning was logged


def _key_part(value: Any) -> Any:
    """A hashable, exact stand-in for one argument (None when it has none)."""
    if isinstance(value, np.ndarray):
        return ("ndarray", value.dtype.str, value.shape, value.tobytes())
    if isinstance(value, (np.generic, np.dtype, type)):
        return ("scalar", repr(value))
    if value is None or isinstance(value, (str, int, float, bool)):
        return (type(value).__name__, value)
    if isinstance(value, tuple):
        parts = tuple(_key_part(v) for v in value)
        return None if None in parts else ("tuple", parts)
    return None  # a callable window, a list, ...: not memoised


def _copy_result(result: Any) -> Any:
    """A copy of ``(basis, n_fft, lengths)`` whose arrays the caller may modify."""
    if isinstance(result, tuple):
        return tuple(_copy_result(v) for v in result)
    copy = getattr(result, "copy", None)
    return copy() if callable(copy) else result


class FilterMemo:
    """Memoising wrapper of a filter-building function (see module docstring)."""

    def __init__(self, build: Callable[..., Any], max_entries: int = MAX_ENTRIES) -> None:
        self.build = build
        self.max_entries = int(max_entries)
        self.entries: OrderedDict[Any, Any] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        arg_parts = tuple(_key_part(a) for a in args)
        kwarg_parts = tuple((k, _key_part(v)) for k, v in sorted(kwargs.items()))
        if any(p is None for p in arg_parts) or any(p is None for _, p in kwarg_parts):
            return self.build(*args, **kwargs)
        parts = (arg_parts, kwarg_parts)
        with _lock:
            cached = self.entries.get(parts)
            if cached is not None:
                self.entries.move_to_end(parts)
                self.hits += 1
                return _copy_result(cached)
        result = self.build(*args, **kwargs)
        with _lock:
            self.misses += 1
            self.entries[parts] = _copy_result(result)
            while len(self.entries) > self.max_entries:
                self.entries.popitem(last=False)
        return result


def install() -> FilterMemo | None:
    """Wrap librosa's filter builder in a :class:`FilterMemo` (once per process); the memo, or
    None when this librosa has no such function (warned once per process)."""
    librosa = numba_cache.librosa()  # compiled by one process at a time
    from librosa.core import constantq

    global _warned
    with _lock:
        current = getattr(constantq, _FUNCTION_NAME, None)
        if isinstance(current, FilterMemo):
            return current
        if current is None:
            if not _warned:
                log.warning("librosa %s has no %s: constant-Q filters are rebuilt on every call (slower, same "
                            "values)", librosa.__version__, _FUNCTION_NAME)
                _warned = True
            return None
        memo = FilterMemo(current)
        setattr(constantq, _FUNCTION_NAME, memo)
        return memo


__all__ = ["FilterMemo", "MAX_ENTRIES", "install"]
