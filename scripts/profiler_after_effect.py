"""Whether a ``torch.profiler`` session leaves a cost behind in the process that ran it.

    python scripts/profiler_after_effect.py none    # the control: no profiler in between
    python scripts/profiler_after_effect.py cpu     # host activity only (what the attention probe records)
    python scripts/profiler_after_effect.py cuda    # host and device activity (starts NVIDIA's CUPTI)
    python scripts/profiler_after_effect.py --interleave 3   # each mode 3 times, fresh processes

Every cell's first warm-up block runs under the profiler (``bench.app.runner.attention_probe``),
and the timed blocks, this cell's and the next cells' of the same process, come after it. This
script times, before and after one profiled call of ``scaled_dot_product_attention``, the host
cost of a small op (``add_`` on a 64 x 64 tensor, synchronised per loop on CUDA) and of a phase
entry of the run's clock (CUDA events on CUDA, the wall clock on the CPU), medians of repeated
loops, and prints one JSON line, with the SDPA events the profiler recorded. Compare ``after``
with ``before`` within a line: separate processes on a shared host differ more than the effect
(docs/gpu.md, "Machine 5"). ``--interleave N`` runs every mode this machine has (``cuda`` only
with a CUDA device) ``N`` times in fresh processes, rotating their order, prints each line, then
one line with each mode's median after / before ratios.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # timer_cost, beside this script


def _sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def op_cost_us(x: Any, device: str, ops: int = 2000, loops: int = 7) -> float:
    """Median host microseconds per ``x.add_(1.0)`` over ``loops`` loops of ``ops`` calls."""
    per_op = []
    for _ in range(loops):
        _sync(device)
        t0 = time.perf_counter()
        for _ in range(ops):
            x.add_(1.0)
        _sync(device)
        per_op.append((time.perf_counter() - t0) / ops * 1e6)
    return round(statistics.median(per_op), 3)


def entry_cost_us(device: str, entries: int = 113, repeats: int = 14) -> float:
    """Median host microseconds per empty phase entry of the run's clock on ``device``
    (:func:`timer_cost.entry_cost_us`, the loop of ``scripts/timer_cost.py``)."""
    from bench.app.clocks import CudaClock, WallClock
    from timer_cost import entry_cost_us as loop_cost_us

    clock = CudaClock() if device == "cuda" else WallClock()
    return loop_cost_us(lambda: clock.timer(0), entries, repeats)["median_us"]


def measure(mode: str) -> dict[str, Any]:
    """Costs before and after one profiled (``mode`` "cpu" or "cuda") or plain ("none") SDPA call."""
    import torch
    import torch.nn.functional as F

    device = "cuda" if torch.cuda.is_available() else "cpu"
    if mode == "cuda" and device != "cuda":
        raise SystemExit("mode 'cuda' needs a CUDA device")
    x = torch.randn(64, 64, device=device)
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    q = torch.randn(1, 8, 256, 64, device=device, dtype=dtype)  # (B, H, T, Dh)

    def attend() -> None:
        for _ in range(3):
            F.scaled_dot_product_attention(q, q, q)
        _sync(device)

    attend()
    before = {"op_us": op_cost_us(x, device), "entry_us": entry_cost_us(device)}
    sdpa_events: list[str] = []
    if mode == "none":
        attend()
    else:
        from torch.profiler import ProfilerActivity, profile

        from bench.app.runner import profiled_op_names

        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if mode == "cuda" else [])
        with profile(activities=activities) as prof:
            attend()
        sdpa_events = sorted(name for name in profiled_op_names(prof) if name.startswith("aten::")
                             and "scaled_dot_product" in name)
    after = {"op_us": op_cost_us(x, device), "entry_us": entry_cost_us(device)}
    return {"mode": mode, "device": device, "before": before, "after": after, "sdpa_events": sdpa_events}


def interleaved(rounds: int) -> list[dict[str, Any]]:
    """Every mode this machine has, ``rounds`` times, each in a fresh process, the order rotated
    each round; the lines as they came, then a summary of median after / before ratios per mode."""
    import torch

    modes = ["none", "cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    lines = []
    for r in range(rounds):
        for mode in modes[r % len(modes):] + modes[:r % len(modes)]:
            out = subprocess.run([sys.executable, __file__, mode], capture_output=True, text=True, check=True)
            line = json.loads(out.stdout.strip().splitlines()[-1])
            print(json.dumps(line), flush=True)
            lines.append(line)
    summary: dict[str, Any] = {"summary": "median after / before"}
    for mode in modes:
        rows = [x for x in lines if x["mode"] == mode]
        summary[mode] = {key: round(statistics.median(x["after"][key] / x["before"][key] for x in rows), 3)
                         for key in ("op_us", "entry_us")}
    return lines + [summary]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", nargs="?", choices=("none", "cpu", "cuda"))
    parser.add_argument("--interleave", type=int, default=0, metavar="N",
                        help="run every mode N times in fresh processes instead of one mode here")
    args = parser.parse_args(argv)
    if args.interleave > 0:
        print(json.dumps(interleaved(args.interleave)[-1]))
        return 0
    if args.mode is None:
        parser.error("give a mode (none, cpu, cuda) or --interleave N")
    print(json.dumps(measure(args.mode)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
