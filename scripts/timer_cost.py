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


def entry_cost_us(make_timer: Callable[[], Any], entries: int, repeats: int) -> dict[str, float]:
    """Host microseconds per empty phase entry: median, min and max over ``repeats`` loops."""
    per_entry = []
    for _ in range(repeats + 1):  # the first loop warms the event pool and the caches
        timer = make_timer()
        t0 = time.perf_counter_ns()
        for _ in range(entries):
            with timer.phase("depth"):
                pass
        per_entry.append((time.perf_counter_ns() - t0) / entries / 1e3)
        timer.resolve()
    kept = per_entry[1:]
    return {"median_us": round(statistics.median(kept), 3), "min_us": round(min(kept), 3),
            "max_us": round(max(kept), 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=11)
    args = parser.parse_args(argv)
    import torch

    from bench.app.clocks import CudaClock, CudaTimer, WallClock

    timers: dict[str, Callable[[], Any]] = {"wall": lambda: WallClock().timer(0)}
    if torch.cuda.is_available():
        clock = CudaClock()
        timers["cuda-events"] = lambda: clock.timer(0)
        timers["cuda-events-current"] = lambda: CudaTimer(clock._pool)  # noqa: SLF001 - the same pool
    for name, make_timer in timers.items():
        cost = entry_cost_us(make_timer, args.entries, args.repeats)
        print(json.dumps({"timer": name, "entries": args.entries, "repeats": args.repeats, **cost}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
