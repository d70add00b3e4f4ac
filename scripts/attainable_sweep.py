"""Measured against attainable: the diffusion regimes at several DiT widths, eager and compiled.

    python scripts/attainable_sweep.py --out runs/attainable-sweep              # 3 repeats, ~6-9 min on 2 cores
    python scripts/attainable_sweep.py --out runs/attainable-sweep --repeats 5  # ~10-15 min

For each width (the ``cpu`` preset's stream: 4 s context, 1 s blocks, 8 steps; random weights of
that width, heads = width / 48) and each mode (eager, ``--compile default``), ``--repeats`` runs (3 by
default: on a shared machine one run's quotient can move by 0.5 from the next run's) of
outpaint, lmdm-encdec and lmdm-causal (12 s streams, the FLOPs pass with the attainable model on).
Each repeat runs the three regimes one after another, each repeat starting with the next regime
(a slow spell of a shared machine then falls on a different regime each time). Every run measures
its own latencies and replays its own attainable times.

Prints, per width and mode: each pair's steady latency ratio, its attainable ratio and their
quotient (1.0 = the regimes differ exactly as their operations cost on this machine) as the
median over the repeats, with the smallest and largest repeat beside it; then each phase's share
of its attainable time (medians over the repeats); then the range of the runs' own matmul peaks
(``peak.json``): on a shared machine whose speed changes during the sweep, a wide range says that
repeats taken minutes apart ran on a faster and a slower machine. The run folders stay under
``--out`` (``w{width}-{mode}`` for the first repeat, ``-r{k}`` appended for the others; their
``pairs.csv`` and ``phase_summary.csv`` hold each run's own numbers). A folder that already
holds ``pairs.csv`` is read, not run again.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pandas as pd

from bench.core.run_folder import read_run_json

ROOT = Path(__file__).resolve().parents[1]
REGIMES = ["outpaint", "lmdm-encdec", "lmdm-causal"]
# a/b ratios of a pairs.csv row; their b/a values are the reciprocals
RATIOS = ["latency_ratio", "attainable_ratio", "latency_over_attainable_ratio", "attainable_cold_ratio",
          "latency_over_attainable_cold_ratio"]
QUOTIENTS = {"latency_over_attainable_ratio": "quotient", "latency_over_attainable_cold_ratio": "quotient_cold"}


def regime_order(repeat: int) -> list[str]:
    """The regimes in the order repeat ``repeat`` runs them: rotated by one per repeat."""
    k = repeat % len(REGIMES)
    return REGIMES[k:] + REGIMES[:k]


def run_one(out: Path, width: int, mode: str, horizon_s: float, threads: int, repeat: int = 0) -> Path:
    folder = out / (f"w{width}-{mode}" + (f"-r{repeat}" if repeat else ""))
    cmd = [sys.executable, "run_all.py", "--generators", ",".join(regime_order(repeat)), "--no-drift",
           "--no-continuation", "--no-report", "--progress", "off", "--threads", str(threads),
           "--set", f"dit.heads={width // 48}", "--set", f"dit.width={width}", "--set", "dit.weights=",
           "--set", f"workload.horizon_s={horizon_s:g}", "--out", str(folder)]
    if mode != "eager":
        cmd += ["--compile", mode]
    if not (folder / "pairs.csv").exists():
        subprocess.run(cmd, cwd=ROOT, check=True)
    return folder


def oriented_pairs(pairs: pd.DataFrame) -> pd.DataFrame:
    """``pairs`` with every pair as ``a`` before ``b`` in :data:`REGIMES` (a run lists its pairs in
    the order it ran the regimes): a reversed row gets its ``a``/``b`` swapped and its ratios
    inverted. Other regimes' rows are dropped."""
    rank = {name: i for i, name in enumerate(REGIMES)}
    known = pairs[pairs.a.isin(rank) & pairs.b.isin(rank)].copy()
    flip = known.a.map(rank) > known.b.map(rank)
    known.loc[flip, ["a", "b"]] = known.loc[flip, ["b", "a"]].to_numpy()
    known.loc[flip, RATIOS] = 1.0 / known.loc[flip, RATIOS]
    return known


def pair_summary(pairs: pd.DataFrame) -> pd.DataFrame:
    """Oriented pairs of several repeats (columns ``width``, ``mode``, ``repeat``) -> per width, mode
    and pair: the number of repeats, the median latency and attainable ratios, and each quotient's
    median, smallest and largest over the repeats."""
    keys = ["width", "mode", "a", "b"]
    groups = pairs.groupby(keys, sort=False)
    out = groups.agg(repeats=("repeat", "nunique"), latency_ratio=("latency_ratio", "median"),
                     attainable_ratio=("attainable_ratio", "median"),
                     attainable_cold_ratio=("attainable_cold_ratio", "median"))
    for column, name in QUOTIENTS.items():
        out[name] = groups[column].median()
        out[f"{name}_min"] = groups[column].min()
        out[f"{name}_max"] = groups[column].max()
    return out.reset_index()


def peak_line(folders: list[Path]) -> str:
    """One line on the matmul peaks the runs in ``folders`` measured (their ``peak.json``): how many,
    median and range in GFLOP/s, and how many runs have none (``--no-peak`` or an older run)."""
    peaks = []
    for folder in folders:
        record = read_run_json(folder / "peak.json")
        if record is not None and record.get("flops_per_s"):
            peaks.append(float(record["flops_per_s"]) / 1e9)
    if not peaks:
        return f"Matmul peak: not measured (no peak.json in the {len(folders)} run folders)."
    s = pd.Series(peaks)
    others = "" if len(peaks) == len(folders) else "; the others have no peak.json"
    return (f"Matmul peak measured by {len(peaks)} of {len(folders)} runs (each its own micro-benchmark{others}): "
            f"median {s.median():.0f} GFLOP/s, range {s.min():.0f}-{s.max():.0f} ({s.max() / s.min():.2f}x).")


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
    parser.add_argument("--repeats", type=int, default=3, help="runs per width and mode (medians are reported)")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    pairs, phases, folders = [], [], []
    for repeat in range(args.repeats):  # repeats outermost: each width and mode's runs are spread in time
        for width in args.widths:
            for mode in args.modes:
                folder = run_one(args.out, width, mode, args.horizon_s, args.threads, repeat)
                folders.append(folder)
                tags = {"width": width, "mode": mode, "repeat": repeat}
                pairs.append(oriented_pairs(pd.read_csv(folder / "pairs.csv")).assign(**tags))
                s = pd.read_csv(folder / "phase_summary.csv").assign(**tags)
                phases.append(s[(s.block_kind == "steady") & s.generator.isin(REGIMES)])
    p = pair_summary(pd.concat(pairs))
    cols = ["width", "mode", "a", "b", "repeats", "latency_ratio", "attainable_ratio", "quotient", "quotient_min",
            "quotient_max", "attainable_cold_ratio", "quotient_cold", "quotient_cold_min", "quotient_cold_max"]
    print(_markdown(p[cols], 3))
    print()
    s = pd.concat(phases)
    s = s.assign(pct_of_attainable=100 * s.attainable_fraction, pct_of_attainable_cold=100 * s.attainable_cold_fraction)
    s = s.groupby(["width", "mode", "generator", "phase"], sort=False)[
        ["median_ms", "attainable_ms", "pct_of_attainable", "attainable_cold_ms", "pct_of_attainable_cold"]
    ].median().reset_index()
    print(_markdown(s, 1))
    print()
    print(peak_line(folders))
    return 0


if __name__ == "__main__":
    sys.exit(main())
