"""Keeping Python's cyclic garbage collector off the objects that outlive a whole run.

The harness collects in full before every timed stream (so that no collection interrupts the
timed steps) and after every cell (so that a cell's model is freed before the next cell measures
its memory). A full collection walks every object the interpreter tracks: once torch, pandas,
matplotlib and librosa are imported that is about 340,000 objects (600,000 inside pytest), and one
full collection took 0.3-0.6 s on a 2-core test machine (2026-12-03), longer than many cells' work.
Nearly all of those objects (modules, functions, classes) live until the process ends.

:func:`frozen_startup_heap` collects once, then moves every object alive at that moment to the
permanent generation (:func:`gc.freeze`) for the duration of the run, so that later collections
walk only what the run itself made (models, tensors, tables), which they collect as before. Frozen
objects are still freed by reference counting as soon as nothing refers to them; only a reference
cycle among them waits for the end of the block, when :func:`gc.unfreeze` hands them back to the
collector.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from typing import Iterator

_LOCK = threading.Lock()
_depth = 0  # blocks of frozen_startup_heap open now (gc.get_freeze_count walks every frozen object)
_froze = False  # whether the outermost open block froze (False: the host program had frozen already)


@contextlib.contextmanager
def frozen_startup_heap() -> Iterator[None]:
    """Freeze the objects alive now out of the collector's walk until the block ends (module
    docstring). Re-entrant: an inner block changes nothing. When the host program has frozen
    objects itself (``gc.get_freeze_count() > 0`` at the outermost block), nothing is frozen and
    that freeze is left in place."""
    global _depth, _froze
    with _LOCK:
        if _depth == 0:
            _froze = gc.get_freeze_count() == 0
            if _froze:
                gc.collect()
                gc.freeze()
        _depth += 1
    try:
        yield
    finally:
        with _LOCK:
            _depth -= 1
            if _depth == 0 and _froze:
                gc.unfreeze()
