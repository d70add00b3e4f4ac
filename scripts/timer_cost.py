"""What one phase entry costs the host, for each phase timer this machine can run.

    python scripts/timer_cost.py                 # wall timer; CUDA event timers too where CUDA is
    python scripts/timer_cost.py --entries 2000 --repeats 15

Each timer times ``--entries`` empty phases in a row (as the ``noise-phased`` null generator
does inside a step), ``--repeats`` times; the median host time per entry is printed as one JSON
line per timer, with the spread (min, max). Timers: ``wall`` (the CPU clock's), ``cuda-events``
(the CUDA clock's, recording on the stream looked up once per step) and ``cuda-events-current``
(recording on ``torch.cuda.current_stream()`` looked up at every event, as
``torch.cuda.Event.record()`` without an argument does). The events' resolution (one
synchronisation at the end) is outside the timed loop, as it is outside a timed step.

A CUDA event is also work for the device: each one is a timestamp the GPU writes in stream
order. So the CUDA timers' lines add ``synced_median_us``: the same loop started after a device
synchronisation and ended by one, as a timed step starts after the clock's barrier and ends with
its host copy, divided by the entries. Where the device takes longer per event than the host
takes to record it, the host loop alone under-counts what a run's block pays; this column shows it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def entry_cost_us(make_timer: Callable[[], Any], entries: int, repeats: int,
                  barrier: Callable[[], None] | None = None) -> dict[str, float]:
    """Host microseconds per empty phase entry: median, min and max over ``repeats`` loops. With a
    ``barrier`` (a device synchronisation), also ``synced_median_us``: each loop from a barrier
    before it to a barrier after it, per entry (the device's share included)."""
    per_entry, synced = [], []
    for _ in range(repeats + 1):  # the first loop warms the event pool and the caches
        timer = make_timer()
        if barrier is not None:
            barrier()
        t0 = time.perf_counter_ns()
        for _ in range(entries):
            with timer.phase("depth"):
                pass
        t1 = time.perf_counter_ns()
        if barrier is not None:
            barrier()
            synced.append((time.perf_counter_ns() - t0) / entries / 1e3)
        per_entry.append((t1 - t0) / entries / 1e3)
        timer.resolve()
    kept = per_entry[1:]
    cost = {"median_us": round(statistics.median(kept), 3), "min_us": round(min(kept), 3),
            "max_us": round(max(kept), 3)}
    if barrier is not None:
        cost["synced_median_us"] = round(statistics.median(synced[1:]), 3)
    return cost


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=11)
    args = parser.parse_args(argv)
    import torch

    from bench.app.clocks import CudaClock, CudaTimer, WallClock

    timers: dict[str, Callable[[], Any]] = {"wall": lambda: WallClock().timer(0)}
    barriers: dict[str, Callable[[], None]] = {}
    if torch.cuda.is_available():
        clock = CudaClock()
        timers["cuda-events"] = lambda: clock.timer(0)
        timers["cuda-events-current"] = lambda: CudaTimer(clock._pool)  # noqa: SLF001 - the same pool
        barriers = {"cuda-events": clock.barrier, "cuda-events-current": clock.barrier}
    for name, make_timer in timers.items():
        cost = entry_cost_us(make_timer, args.entries, args.repeats, barriers.get(name))
        print(json.dumps({"timer": name, "entries": args.entries, "repeats": args.repeats, **cost}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
