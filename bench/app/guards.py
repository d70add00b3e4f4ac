"""What keeps one bad generator from sinking a run: checks of every block a generator returns (run
outside the timed region), a per-step time limit, and telling the user's Ctrl-C apart from a
``KeyboardInterrupt`` raised by generator code.

The time limit uses ``signal.setitimer`` on the main thread (POSIX): when a step has not returned
within the limit, the timer's handler raises :class:`StepTimeout` in that thread. Limitation: a
step blocked inside C code that does not return to the interpreter (a native call that retries
on EINTR, a deadlocked extension) is only interrupted once it comes back to Python; off the main
thread, or where ``setitimer`` does not exist (Windows), there is no time limit (logged once).
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from typing import Any, Iterator

import numpy as np

log = logging.getLogger("bench")
_SIGINT = {"received": False}
_WARNED = {"no_timer": False}


class BlockOutputError(RuntimeError):
    """A generator returned a block the harness cannot use (non-finite, wrong shape or length)."""


class StepTimeout(RuntimeError):
    """A generator's step did not return within the run's step time limit."""


class ContainedInterrupt(RuntimeError):
    """A ``BaseException`` (SystemExit, KeyboardInterrupt, GeneratorExit) raised by generator code,
    turned into an ordinary error of its cell."""


def check_block(audio: Any, spec: Any, block_index: int) -> None:
    """Raise :class:`BlockOutputError` naming block ``block_index`` and the problem when ``audio`` is
    not a finite float array of shape ``(spec.channels, spec.block_samples)``."""
    where = f"block {block_index}"
    if not isinstance(audio, np.ndarray):
        raise BlockOutputError(f"{where}: the generator returned {type(audio).__name__}, not a numpy array of shape "
                               f"(channels, samples); convert the audio to host numpy float32 in step()")
    if audio.ndim != 2:
        raise BlockOutputError(f"{where}: audio has {audio.ndim} dimension(s), shape {audio.shape}; the contract "
                               f"wants (channels={spec.channels}, samples={spec.block_samples})")
    channels, samples = audio.shape
    if channels != spec.channels:
        raise BlockOutputError(f"{where}: audio has {channels} channel(s), the generator's stream spec says "
                               f"{spec.channels} (shape {audio.shape}; the contract wants (channels, samples))")
    if samples != spec.block_samples:
        problem = "zero-length" if samples == 0 else f"{samples} samples"
        raise BlockOutputError(f"{where}: {problem} audio, the stream spec says {spec.block_samples} samples per block "
                               f"({spec.block_s:g} s at {spec.sample_rate} Hz); every block must have the spec's length")
    if not np.issubdtype(audio.dtype, np.floating):
        raise BlockOutputError(f"{where}: audio of dtype {audio.dtype}; the contract wants float32 samples")
    finite = np.isfinite(audio)
    if not finite.all():
        bad = np.flatnonzero(~finite.all(axis=0))
        raise BlockOutputError(
            f"{where}: {int((~finite).sum())} of {audio.size} samples are NaN/inf (first at sample {int(bad[0])}): "
            "the generator produced non-finite audio; check its weights (NaN parameters?), its dtype (float16 "
            "overflow?) and its decoder")


def _raise_timeout(signum: int, frame: Any) -> None:  # noqa: ARG001 - a signal handler's signature
    raise StepTimeout("time limit")


@contextlib.contextmanager
def step_deadline(limit_s: float | None, what: str,
                  limit_name: str = "the step time limit, --step-timeout") -> Iterator[None]:
    """Raise :class:`StepTimeout` ("``what`` did not return within ...") when the block takes longer than
    ``limit_s`` seconds (None or 0: no limit). Arming and disarming happen outside the caller's clock
    readings when the caller reads its clock inside the block."""
    usable = bool(limit_s) and hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if not usable:
        if limit_s and not _WARNED["no_timer"]:
            _WARNED["no_timer"] = True
            log.warning("no step time limit here (not the main thread, or no setitimer on this platform)")
        yield
        return
    previous = signal.signal(signal.SIGALRM, _raise_timeout)
    signal.setitimer(signal.ITIMER_REAL, float(limit_s))
    try:
        yield
    except StepTimeout:
        raise StepTimeout(f"{what} did not return within {limit_s:g} s ({limit_name}); "
                          "the generator hangs or is far too slow for this workload") from None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def limited_step(what: str, step_timeout_s: float | None, cell_deadline: float | None,
                 cell_timeout_s: float | None) -> contextlib.AbstractContextManager[None]:
    """The time limit of one step: the step limit, or what is left of the cell's limit (which ends at
    ``time.perf_counter() == cell_deadline``) when that is shorter. A cell already out of time fails
    before the step starts."""
    if cell_deadline is None:
        return step_deadline(step_timeout_s, what)
    left_s = cell_deadline - time.perf_counter()
    if left_s <= 0:
        raise StepTimeout(f"the cell ran out of time before {what}: building, warming up and running it took "
                          f"longer than {cell_timeout_s:g} s (the cell time limit, --cell-timeout)")
    if step_timeout_s and step_timeout_s <= left_s:
        return step_deadline(step_timeout_s, what)
    return step_deadline(left_s, what, f"the {cell_timeout_s:g} s cell time limit, --cell-timeout")


def contain(exc: BaseException) -> BaseException:
    """``exc`` when it is an ordinary error; a :class:`ContainedInterrupt` for a ``BaseException``
    raised by generator code. A Ctrl-C the process received (:func:`sigint_received`) is re-raised."""
    if isinstance(exc, Exception):
        return exc
    if isinstance(exc, KeyboardInterrupt) and sigint_received():
        raise exc
    return ContainedInterrupt(f"the generator raised {type(exc).__name__}({exc}) inside a step; "
                              "a plug-in must raise an Exception, never end the process")


def sigint_received() -> bool:
    """Whether the user pressed Ctrl-C (SIGINT) since :func:`watch_sigint` began."""
    return _SIGINT["received"]


def _on_sigint(signum: int, frame: Any) -> None:  # noqa: ARG001
    _SIGINT["received"] = True
    raise KeyboardInterrupt


@contextlib.contextmanager
def watch_sigint() -> Iterator[None]:
    """Inside the block a real SIGINT sets a flag before raising KeyboardInterrupt, so a
    KeyboardInterrupt raised by generator code can be told apart (and contained to its cell)."""
    _SIGINT["received"] = False
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, _on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
