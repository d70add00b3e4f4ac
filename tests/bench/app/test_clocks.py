"""Clocks and per-step phase timers."""

from __future__ import annotations

import time

import pytest

from bench.app.clocks import FakeClock, PhaseTiming, WallClock, make_clock


def test_fake_timer_accumulates_programmed_durations():
    clock = FakeClock({"step": 3, "decode": 5}, start_ns=100)
    timer = clock.timer(block_index=0)
    for _ in range(4):
        with timer.phase("step"):
            pass
    with timer.phase("decode"):
        pass
    with timer.phase("other"):  # not programmed: 0 ns
        pass
    assert clock.now_ns() == 100 + 4 * 3 + 5
    assert timer.resolve() == {"step": PhaseTiming(4, 12), "decode": PhaseTiming(1, 5), "other": PhaseTiming(1, 0)}


def test_fake_duration_function_sees_block_and_call_index():
    seen = []
    clock = FakeClock(lambda phase, block, call: seen.append((phase, block, call)) or 10 * (call + 1))
    timer = clock.timer(block_index=7)
    for _ in range(3):
        with timer.phase("depth"):
            pass
    assert seen == [("depth", 7, 0), ("depth", 7, 1), ("depth", 7, 2)]
    assert timer.resolve()["depth"] == PhaseTiming(3, 10 + 20 + 30)


def test_fake_clock_sleeps_and_never_goes_back():
    clock = FakeClock()
    clock.advance(50)
    clock.sleep_until_ns(80)
    clock.sleep_until_ns(10)  # in the past: no wait
    assert clock.now_ns() == 80 and clock.sleeps_ns == [30, 0]
    with pytest.raises(ValueError):
        clock.advance(-1)
    with pytest.raises(ValueError):
        FakeClock({"step": -5}).timer(0).phase("step").__exit__(None, None, None)


def test_wall_timer_measures_at_least_the_time_spent():
    clock = WallClock()
    timer = clock.timer(0)
    with timer.phase("sleep"):
        time.sleep(0.002)
    with timer.phase("sleep"):
        time.sleep(0.001)
    timing = timer.resolve()["sleep"]
    assert timing.calls == 2 and timing.total_ns >= 3_000_000


def test_wall_timer_times_nested_entries_of_one_name_each_on_its_own(monkeypatch):
    ticks = iter(range(0, 1000, 10))  # every clock read is 10 ns after the previous one
    monkeypatch.setattr(time, "perf_counter_ns", lambda: next(ticks))
    timer = WallClock().timer(0)
    with timer.phase("depth"):  # enters at 0
        with timer.phase("depth"):  # enters at 10
            with timer.phase("temporal"):  # 20 .. 30
                pass
        # the inner depth exits at 40: 30 ns; the outer at 50: 50 ns
    with timer.phase("depth"):  # 60 .. 70, the same name again after the nest
        pass
    assert timer.marks == [("temporal", 20, 30), ("depth", 10, 40), ("depth", 0, 50), ("depth", 60, 70)]
    assert timer.resolve() == {"depth": PhaseTiming(3, 30 + 50 + 10), "temporal": PhaseTiming(1, 10)}
    with pytest.raises(RuntimeError):  # an entry that raises is still timed, and the next starts clean
        with timer.phase("decode"):  # 80 .. 90
            raise RuntimeError("boom")
    with timer.phase("decode"):  # 100 .. 110
        pass
    assert timer.marks[-2:] == [("decode", 80, 90), ("decode", 100, 110)]


def test_wall_sleep_until_reaches_the_target():
    clock = WallClock()
    target = clock.now_ns() + 3_000_000
    clock.sleep_until_ns(target)
    assert clock.now_ns() >= target


def test_make_clock_on_cpu_is_wall():
    assert isinstance(make_clock("cpu"), WallClock)


def test_cuda_timer_reuses_its_events_across_steps(monkeypatch):
    """CUDA phase events come from the clock's pool: a step with many phase entries constructs
    events only the first time (checked with a stand-in event class: no GPU needed)."""
    import bench.app.clocks as clocks

    made = []

    class FakeEvent:
        def __init__(self, enable_timing: bool = False) -> None:
            assert enable_timing
            made.append(self)
            self.t = 0.0

        def record(self, stream: object = None) -> None:
            self.t = float(len(made))
            self.stream = stream

        def synchronize(self) -> None:
            pass

        def elapsed_time(self, end: "FakeEvent") -> float:
            return 1.0  # ms

    monkeypatch.setattr(clocks.torch.cuda, "Event", FakeEvent)
    pool = clocks._EventPool()
    for step in range(3):
        timer = clocks.CudaTimer(pool)
        for _ in range(5):
            with timer.phase("depth"):
                pass
        timings = timer.resolve()
        assert timings["depth"].calls == 5 and timings["depth"].total_ns == 5_000_000
    assert len(made) == 10  # 5 phases x (start, end), made in the first step only
    assert len(pool.free) == 10
    assert all(event.stream is None for event in made)  # no stream given: the current one at each record
    stream = object()  # CudaClock passes the step's stream, looked up once per step
    timer = clocks.CudaTimer(pool, stream)
    with timer.phase("depth"):
        pass
    assert [event.stream for _, start, end in timer.marks for event in (start, end)] == [stream, stream]
    assert timer.resolve()["depth"].calls == 1
