"""Measured against attainable: the diffusion regimes at several DiT widths, eager and compiled.

    python scripts/attainable_sweep.py --out runs/attainable-sweep          # ~10 min on 2 cores

For each width (the ``cpu`` preset's stream: 4 s context, 1 s blocks, 8 steps; random weights of
that width, heads = width / 48) and each mode (eager, ``--compile default``), one run of
outpaint, lmdm-encdec and lmdm-causal (12 s streams, the FLOPs pass with the attainable model on).
Prints, per width and mode: each pair's steady latency ratio, its attainable ratio and their
quotient (1.0 = the regimes differ exactly as their operations cost on this machine), and each
phase's share of its attainable time. The run folders stay under ``--out`` (their
``pairs.csv`` and ``phase_summary.csv`` hold the same numbers).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
REGIMES = "outpaint,lmdm-encdec,lmdm-causal"


def run_one(out: Path, width: int, mode: str, horizon_s: float, threads: int) -> Path:
    folder = out / f"w{width}-{mode}"
    cmd = [sys.executable, "run_all.py", "--generators", REGIMES, "--no-drift", "--no-continuation", "--no-report",
           "--progress", "off", "--threads", str(threads), "--set", f"dit.heads={width // 48}",
           "--set", f"dit.width={width}", "--set", "dit.weights=", "--set", f"workload.horizon_s={horizon_s:g}",
           "--out", str(folder)]
    if mode != "eager":
        cmd += ["--compile", mode]
    if not (folder / "pairs.csv").exists():
        subprocess.run(cmd, cwd=ROOT, check=True)
    return folder


def _markdown(df: pd.DataFrame, digits: int) -> str:
    """A Markdown table (floats to ``digits`` decimals), without extra dependencies."""
    rows = [[f"{v:.{digits}f}" if isinstance(v, float) else str(v) for v in row] for row in df.itertuples(index=False)]
    lines = ["| " + " | ".join(df.columns) + " |", "|" + "---|" * len(df.columns)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/attainable-sweep"))
    parser.add_argument("--widths", type=int, nargs="+", default=[192, 384, 768])
    parser.add_argument("--modes", nargs="+", default=["eager", "default"])
    parser.add_argument("--horizon-s", type=float, default=12.0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    pairs, phases = [], []
    for width in args.widths:
        for mode in args.modes:
            folder = run_one(args.out, width, mode, args.horizon_s, args.threads)
            p = pd.read_csv(folder / "pairs.csv").assign(width=width, mode=mode)
            s = pd.read_csv(folder / "phase_summary.csv").assign(width=width, mode=mode)
            pairs.append(p)
            phases.append(s[(s.block_kind == "steady") & (s.generator != "noise")])
    p, s = pd.concat(pairs), pd.concat(phases)
    cols = ["width", "mode", "a", "b", "latency_ratio", "attainable_ratio", "latency_over_attainable_ratio",
            "attainable_cold_ratio", "latency_over_attainable_cold_ratio"]
    print(_markdown(p[cols], 3))
    print()
    s = s.assign(pct_of_attainable=100 * s.attainable_fraction, pct_of_attainable_cold=100 * s.attainable_cold_fraction)
    print(_markdown(s[["width", "mode", "generator", "phase", "median_ms", "attainable_ms", "pct_of_attainable",
                       "attainable_cold_ms", "pct_of_attainable_cold"]], 1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
