"""Clocks: how the runner reads time, and per-step phase timers.

Three clocks share one small interface:

- :class:`WallClock`: ``time.perf_counter_ns``; phase timers append raw integers.
- :class:`CudaClock`: wall time for block latency (a CUDA step ends with its audio copy to the
  host, which synchronises), ``torch.cuda.Event`` pairs per phase, resolved with
  ``elapsed_time`` only AFTER the step returned; :meth:`barrier` synchronises the device outside
  timed regions.
- :class:`FakeClock`: time advances only when told (programmed phase durations, ``advance``,
  ``sleep_until_ns``): tests get exact, closed-form latencies.

A phase timer is the ``recorder`` a generator's ``step`` receives. Inside the step it only
appends integers (or records events); :meth:`StepTimer.resolve` turns them into
``{phase: PhaseTiming}`` after the step, outside the timed region.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Protocol

import torch

__all__ = [
    "PhaseTiming", "StepTimer", "Clock", "WallClock", "CudaClock", "FakeClock", "make_clock",
]


@dataclass(frozen=True)
class PhaseTiming:
    """Accumulated time of one phase within one step."""

    calls: int
    total_ns: int


class StepTimer(Protocol):
    """A phase recorder for one step; ``resolve`` is called once, after the step returned."""

    def phase(self, name: str) -> Any: ...

    def resolve(self) -> dict[str, PhaseTiming]: ...


class Clock(Protocol):
    """What the runner needs from a clock."""

    name: str

    def now_ns(self) -> int: ...

    def barrier(self) -> None:
        """Wait for outstanding device work (never called inside a timed region)."""
        ...

    def timer(self, block_index: int) -> StepTimer: ...

    def sleep_until_ns(self, t_ns: int) -> None: ...


def _accumulate(marks: list[tuple[str, int, int]]) -> dict[str, PhaseTiming]:
    calls: dict[str, int] = {}
    total: dict[str, int] = {}
    for name, t0, t1 in marks:
        calls[name] = calls.get(name, 0) + 1
        total[name] = total.get(name, 0) + (t1 - t0)
    return {name: PhaseTiming(calls[name], total[name]) for name in calls}


class _WallMark:
    """Context manager for the entries of one phase name: two perf_counter_ns reads and one list
    append per entry. One per name and timer, reused by every entry (no object made per entry);
    entries of one name may nest, as each entry's start is pushed on a stack and popped at its exit."""

    __slots__ = ("marks", "name", "starts")

    def __init__(self, marks: list, name: str) -> None:
        self.marks = marks
        self.name = name
        self.starts: list[int] = []

    def __enter__(self) -> None:
        self.starts.append(time.perf_counter_ns())

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        t1 = time.perf_counter_ns()
        self.marks.append((self.name, self.starts.pop(), t1))


class WallTimer:
    """Phase timer on ``perf_counter_ns`` (host wall time)."""

    def __init__(self) -> None:
        self.marks: list[tuple[str, int, int]] = []
        self._by_name: dict[str, _WallMark] = {}

    def phase(self, name: str) -> _WallMark:
        mark = self._by_name.get(name)
        if mark is None:
            mark = self._by_name[name] = _WallMark(self.marks, name)
        return mark

    def resolve(self) -> dict[str, PhaseTiming]:
        return _accumulate(self.marks)


def _sleep_until_wall(t_ns: int) -> None:
    remaining = t_ns - time.perf_counter_ns()
    if remaining > 2_000_000:
        time.sleep((remaining - 1_000_000) / 1e9)  # coarse sleep, then a short spin
    while time.perf_counter_ns() < t_ns:
        pass


class WallClock:
    """Host wall clock (``time.perf_counter_ns``)."""

    name = "wall"

    def now_ns(self) -> int:
        return time.perf_counter_ns()

    def barrier(self) -> None:
        return None

    def timer(self, block_index: int) -> WallTimer:
        return WallTimer()

    def sleep_until_ns(self, t_ns: int) -> None:
        _sleep_until_wall(t_ns)


class _EventPool:
    """CUDA timing events reused across steps: a step with many phase entries (the LMM: about
    two per frame) records events taken from here instead of constructing two new ones per entry inside
    the timed step. Events go back once their step is resolved (synchronised)."""

    def __init__(self) -> None:
        self.free: list[Any] = []

    def take(self) -> Any:
        return self.free.pop() if self.free else torch.cuda.Event(enable_timing=True)

    def give(self, events: list[Any]) -> None:
        self.free.extend(events)


class _CudaMark:
    __slots__ = ("timer", "name", "start")

    def __init__(self, timer: "CudaTimer", name: str) -> None:
        self.timer = timer
        self.name = name

    def __enter__(self) -> None:
        self.start = self.timer.pool.take()
        self.timer.record(self.start)

    def __exit__(self, *exc: Any) -> None:
        end = self.timer.pool.take()
        self.timer.record(end)
        self.timer.marks.append((self.name, self.start, end))


class CudaTimer:
    """Phase timer on CUDA events (from the clock's pool); nothing is synchronised until
    :meth:`resolve`, which hands the events back.

    ``stream``: where the events are recorded (the step's stream, looked up once per step by
    :class:`CudaClock`); None records on the current stream at each entry, which constructs a
    Python stream object per event (``torch.cuda.Event.record()`` without an argument)."""

    def __init__(self, pool: _EventPool | None = None, stream: Any = None) -> None:
        self.pool = pool or _EventPool()
        self.stream = stream
        self.marks: list[tuple[str, Any, Any]] = []

    def record(self, event: Any) -> None:
        """Record ``event`` on this timer's stream."""
        if self.stream is None:
            event.record()
        else:
            event.record(self.stream)

    def phase(self, name: str) -> _CudaMark:
        return _CudaMark(self, name)

    def resolve(self) -> dict[str, PhaseTiming]:
        if self.marks:
            self.marks[-1][2].synchronize()  # stream order: every earlier event has completed too
        as_ns = [(name, 0, int(round(start.elapsed_time(end) * 1e6))) for name, start, end in self.marks]
        self.pool.give([event for _, start, end in self.marks for event in (start, end)])
        self.marks = []
        return _accumulate(as_ns)


class CudaClock:
    """Wall time around steps (they end with a host copy), CUDA events inside them."""

    name = "cuda"

    def __init__(self, device: Any = "cuda") -> None:
        if not torch.cuda.is_available():
            raise RuntimeError("CudaClock needs a CUDA device; use WallClock on the CPU")
        self.device = torch.device(device)
        self._pool = _EventPool()

    def now_ns(self) -> int:
        return time.perf_counter_ns()

    def barrier(self) -> None:
        torch.cuda.synchronize(self.device)

    def timer(self, block_index: int) -> CudaTimer:
        return CudaTimer(self._pool, torch.cuda.current_stream(self.device))

    def sleep_until_ns(self, t_ns: int) -> None:
        _sleep_until_wall(t_ns)


DurationFn = Callable[[str, int, int], int]  # (phase, block_index, call_index within step) -> ns


class _FakeMark:
    __slots__ = ("timer", "name", "t0")

    def __init__(self, timer: "FakeTimer", name: str) -> None:
        self.timer = timer
        self.name = name

    def __enter__(self) -> None:
        self.t0 = self.timer.clock.now_ns()

    def __exit__(self, *exc: Any) -> None:
        timer = self.timer
        call_index = timer.calls.get(self.name, 0)
        timer.calls[self.name] = call_index + 1
        timer.clock.advance(timer.clock.duration_ns(self.name, timer.block_index, call_index))
        timer.marks.append((self.name, self.t0, timer.clock.now_ns()))


class FakeTimer:
    """Phase timer of a :class:`FakeClock`: each phase exit advances fake time by its duration."""

    def __init__(self, clock: "FakeClock", block_index: int) -> None:
        self.clock = clock
        self.block_index = block_index
        self.calls: dict[str, int] = {}
        self.marks: list[tuple[str, int, int]] = []

    def phase(self, name: str) -> _FakeMark:
        return _FakeMark(self, name)

    def resolve(self) -> dict[str, PhaseTiming]:
        return _accumulate(self.marks)


class FakeClock:
    """A clock for tests: time moves only by programmed phase durations, ``advance`` and sleeps.

    ``phase_ns`` is either a mapping phase -> nanoseconds (the same every call) or a function
    ``(phase, block_index, call_index) -> nanoseconds``. ``timer(block_index)`` passes the block
    index of the step; warm-up steps use the same indices as the timed ones, so a test that wants
    to tell them apart counts calls in its function.
    """

    name = "fake"

    def __init__(self, phase_ns: Mapping[str, int] | DurationFn | None = None, start_ns: int = 0) -> None:
        self._t = int(start_ns)
        if phase_ns is None:
            self._fn: DurationFn = lambda phase, block, call: 0
        elif callable(phase_ns):
            self._fn = phase_ns
        else:
            table = dict(phase_ns)
            self._fn = lambda phase, block, call: int(table.get(phase, 0))
        self.sleeps_ns: list[int] = []  # how long each sleep_until_ns waited (for tests)

    def duration_ns(self, phase: str, block_index: int, call_index: int) -> int:
        ns = int(self._fn(phase, block_index, call_index))
        if ns < 0:
            raise ValueError(f"fake duration of phase {phase!r} must be >= 0 ns, got {ns}")
        return ns

    def now_ns(self) -> int:
        return self._t

    def advance(self, ns: int) -> None:
        if ns < 0:
            raise ValueError(f"a clock cannot go backwards (advance by {ns} ns)")
        self._t += int(ns)

    def barrier(self) -> None:
        return None

    def timer(self, block_index: int) -> FakeTimer:
        return FakeTimer(self, block_index)

    def sleep_until_ns(self, t_ns: int) -> None:
        waited = max(0, int(t_ns) - self._t)
        self.sleeps_ns.append(waited)
        self._t += waited


def make_clock(device: Any) -> WallClock | CudaClock:
    """The measuring clock for ``device``: CUDA events on a CUDA device, wall time otherwise."""
    device = torch.device(device)
    return CudaClock(device) if device.type == "cuda" else WallClock()
