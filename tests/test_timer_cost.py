"""scripts/timer_cost.py: the host's cost of one phase entry, per timer (here: the wall timer)."""

import json

import pytest

from tests.script_loader import loaded_script


@pytest.fixture(scope="module")
def timer_cost():  # noqa: ANN201
    yield from loaded_script("timer_cost")


def test_entry_cost_counts_every_entry_and_divides_by_them(timer_cost):
    made, entered = [], []

    class CountingTimer:
        def __init__(self) -> None:
            made.append(self)
            self.resolved = False

        def phase(self, name):  # noqa: ANN001, ANN202
            entered.append(name)
            import contextlib
            return contextlib.nullcontext()

        def resolve(self) -> dict:
            self.resolved = True
            return {}

    cost = timer_cost.entry_cost_us(CountingTimer, entries=50, repeats=3)
    assert len(made) == 4 and all(t.resolved for t in made)  # a warm-up loop, then the 3 timed
    assert len(entered) == 200
    assert 0 < cost["min_us"] <= cost["median_us"] <= cost["max_us"]


def test_barrier_brackets_every_loop_and_its_wait_is_counted_in_the_synced_cost(timer_cost):
    import contextlib
    import time

    events = []

    class LoggingTimer:
        def phase(self, name):  # noqa: ANN001, ANN202
            events.append("entry")
            return contextlib.nullcontext()

        def resolve(self) -> dict:
            events.append("resolve")
            return {}

    def slow_barrier() -> None:  # a device that still has 2 ms of work when the loop ends
        events.append("barrier")
        time.sleep(0.002)

    cost = timer_cost.entry_cost_us(LoggingTimer, entries=10, repeats=2, barrier=slow_barrier)
    one_loop = ["barrier"] + ["entry"] * 10 + ["barrier", "resolve"]
    assert events == one_loop * 3  # a warm-up loop, then the 2 timed, each between two barriers
    # the closing barrier's wait (>= 2 ms over 10 entries) is in the synced figure, not the host one
    assert cost["synced_median_us"] >= 200.0 > cost["median_us"]
    assert "synced_median_us" not in timer_cost.entry_cost_us(LoggingTimer, entries=10, repeats=2)


def test_main_prints_one_json_line_per_timer(timer_cost, capsys):
    import torch

    assert timer_cost.main(["--entries", "100", "--repeats", "3"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    expected = {"wall"} | ({"cuda-events", "cuda-events-current"} if torch.cuda.is_available() else set())
    assert {row["timer"] for row in rows} == expected
    assert all(row["entries"] == 100 and row["median_us"] > 0 for row in rows)
    # the device's share is measured for the CUDA event timers only (the wall timer has no device)
    assert all(("synced_median_us" in row) == row["timer"].startswith("cuda") for row in rows)
