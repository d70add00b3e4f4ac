"""frozen_startup_heap: what was alive at the start leaves the collector's walk, what the run makes
does not, and every freeze is undone (the host program's own freeze left in place)."""

from __future__ import annotations

import gc
import weakref

import pytest

from bench.app.gc_heap import frozen_startup_heap


class Node:
    """An object that can sit in a reference cycle and be watched by a weak reference."""

    def __init__(self) -> None:
        self.other: Node | None = None


def cycle() -> tuple[Node, weakref.ref]:
    a, b = Node(), Node()
    a.other, b.other = b, a
    return a, weakref.ref(a)


@pytest.fixture(autouse=True)
def nothing_frozen_before():
    assert gc.get_freeze_count() == 0, "another test left objects frozen"
    yield
    gc.unfreeze()  # whatever a failing assertion left behind


def test_objects_alive_at_the_start_leave_the_walk_until_the_end() -> None:
    before = len(gc.get_objects())
    with frozen_startup_heap():
        assert gc.get_freeze_count() > before // 2  # the startup heap is in the permanent generation
        walked = len(gc.get_objects(generation=2))
        assert walked < before // 10, (walked, before)  # a full collection now walks only new objects
    assert gc.get_freeze_count() == 0


def test_cycles_made_inside_are_collected_inside() -> None:
    with frozen_startup_heap():
        head, alive = cycle()
        del head
        gc.collect()
        assert alive() is None


def test_a_frozen_cycle_waits_for_the_end_of_the_block() -> None:
    head, alive = cycle()
    with frozen_startup_heap():
        del head
        gc.collect()
        assert alive() is not None  # frozen: the collector does not walk it
    gc.collect()
    assert alive() is None  # handed back at the end, then collected


def test_objects_frozen_are_still_freed_by_reference_counting() -> None:
    lone = Node()
    alive = weakref.ref(lone)
    with frozen_startup_heap():
        del lone
        assert alive() is None


MADE = 1000  # objects made between two blocks: a second freeze would add them all


def test_blocks_nest_and_only_the_outermost_unfreezes() -> None:
    # The frozen count can fall between two reads (reference counting frees frozen objects), so the
    # checks look for what a second freeze or an early unfreeze would do: add MADE, or drop to 0.
    with frozen_startup_heap():
        outer = gc.get_freeze_count()
        made = [[] for _ in range(MADE)]
        with frozen_startup_heap():
            assert gc.get_freeze_count() < outer + len(made)  # no second freeze
        assert gc.get_freeze_count() > outer // 2  # the inner block's end kept the freeze
    assert gc.get_freeze_count() == 0


def test_a_freeze_of_the_host_program_is_left_in_place() -> None:
    gc.freeze()
    host = gc.get_freeze_count()
    head, alive = cycle()
    made = [[] for _ in range(MADE)]
    with frozen_startup_heap():
        assert gc.get_freeze_count() < host + len(made)  # nothing more frozen
        del head
        gc.collect()
        assert alive() is None  # made after the host's freeze: collected as usual
    assert gc.get_freeze_count() > host // 2  # the host's freeze survives the block


def test_a_failure_inside_still_unfreezes() -> None:
    with pytest.raises(RuntimeError, match="boom"):
        with frozen_startup_heap():
            raise RuntimeError("boom")
    assert gc.get_freeze_count() == 0
    with frozen_startup_heap():  # and the next block freezes afresh
        assert gc.get_freeze_count() > 0


def test_a_run_collects_with_its_startup_heap_frozen(monkeypatch, tmp_path) -> None:
    """Every full collection the harness makes in a run (before each timed stream, after each cell)
    happens inside the freeze, and the run leaves nothing frozen."""
    import bench.app.cells as cells
    import bench.app.runner as runner
    from bench.app.cli import main
    from bench.app.clocks import FakeClock

    frozen_at: list[tuple[str, int]] = []

    class Recording:
        def __init__(self, where: str) -> None:
            self.where = where

        def __getattr__(self, name: str):  # noqa: ANN204 - everything but collect is the real gc
            return getattr(gc, name)

        def collect(self, *args, **kwargs) -> int:
            frozen_at.append((self.where, gc.get_freeze_count()))
            return gc.collect(*args, **kwargs)

    monkeypatch.setattr(runner, "gc", Recording("stream"))
    monkeypatch.setattr(cells, "gc", Recording("cell"))
    argv = ["--preset", "tiny", "--workload", "smoke", "--generators", "noise", "--out", str(tmp_path / "run"),
            "--no-peak", "--progress", "off", "-q", "--no-drift", "--no-continuation", "--no-report"]
    assert main(argv, clock=FakeClock(lambda phase, block, call: 1_000_000)) == 0
    assert {where for where, _ in frozen_at} == {"stream", "cell"}
    assert all(count > 0 for _, count in frozen_at), frozen_at
    assert gc.get_freeze_count() == 0
