"""The GPU check: the ``gpu`` tests, then a paper-scale run, into one compact results folder.

    python scripts/gpu_check.py --out gpu-results            # about 5-10 minutes on one GPU

Steps (each with its own time limit, so the whole stays under ``--budget-s``, 540 s by default):
1. ``pytest -m gpu tests/gpu``: no host sync inside a step before its audio copy, CUDA-event phase
   times against a synchronised wall clock, bfloat16 streams of every regime;
2. ``run_all.py --workload paper --preset sao-small --device cuda --dtype bfloat16`` on the three
   diffusion regimes and the LMM, horizon shortened to ``--horizon-s`` (drift, continuation and
   the report skipped): per-block latency, RTF, phases, FLOPs, attainable times at paper scale;
3. the same diffusion regimes on stable-audio-tools' own SAO-small DiT (``dit.arch=sat``).

``--out`` receives: ``pytest.txt`` (the test log), ``paper/`` and ``paper-sat/`` (each run's
``summary.md``, its CSV tables and ``manifest.json``; the audio and parquet files are left out),
and ``gpu_check.json`` (what ran, exit codes, seconds). Without a CUDA device it says so and exits 2.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KEEP = ("summary.md", "manifest.json", "peak.json")


def _run(cmd: list[str], log: Path, timeout_s: float) -> dict:
    started = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=max(1.0, timeout_s))
        code, output = proc.returncode, proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as exc:
        code = 124
        output = f"{exc.stdout or ''}{exc.stderr or ''}\nTIMED OUT after {timeout_s:.0f} s"
    log.write_text(output if isinstance(output, str) else output.decode(errors="replace"))
    return {"cmd": cmd, "exit_code": code, "seconds": round(time.perf_counter() - started, 1), "log": log.name}


def _compact(run_dir: Path, dest: Path) -> None:
    """Copy a run folder's summary, manifest and CSV tables (no audio, no parquet)."""
    dest.mkdir(parents=True, exist_ok=True)
    if not run_dir.is_dir():
        return
    for path in run_dir.iterdir():
        if path.name in KEEP or path.suffix == ".csv":
            shutil.copy2(path, dest / path.name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("gpu-results"))
    parser.add_argument("--budget-s", type=float, default=540.0, help="all steps together (default: 540)")
    parser.add_argument("--horizon-s", type=float, default=30.0, help="stream length of the paper runs")
    args = parser.parse_args(argv)
    import torch  # after argparse: --help works anywhere

    args.out.mkdir(parents=True, exist_ok=True)
    if not torch.cuda.is_available():
        (args.out / "gpu_check.json").write_text(json.dumps({"cuda": False, "note": "no CUDA device: nothing run"}))
        print("no CUDA device here: nothing run (the README's GPU numbers stay 'not measured')")
        return 2
    deadline = time.perf_counter() + args.budget_s
    record = {"cuda": True, "device": torch.cuda.get_device_name(0), "torch": torch.__version__, "steps": []}
    python = sys.executable
    steps = [
        ("pytest", [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "gpu", "tests/gpu", "-rs"], 0.30),
    ]
    common = ["--workload", "paper", "--preset", "sao-small", "--device", "cuda", "--dtype", "bfloat16",
              "--no-drift", "--no-continuation", "--no-report", "--progress", "off",
              "--set", f"workload.horizon_s={args.horizon_s:g}"]
    runs = {"paper": ["--generators", "outpaint,lmdm-encdec,lmdm-causal,lmm"],
            "paper-sat": ["--generators", "outpaint,lmdm-encdec,lmdm-causal", "--set", "dit.arch=sat",
                          "--set", "dit.config=builtin:sao-small"]}
    for name, extra in runs.items():
        steps.append((name, [python, "run_all.py", *common, *extra, "--out", str(args.out / f"{name}-run")], 0.35))
    for name, cmd, share in steps:
        left = deadline - time.perf_counter()
        if left <= 5:
            record["steps"].append({"name": name, "skipped": "budget spent"})
            continue
        result = _run(cmd, args.out / f"{name}.txt", min(left, share * args.budget_s if name == "pytest" else left))
        record["steps"].append({"name": name, **result})
        if name != "pytest":
            _compact(args.out / f"{name}-run", args.out / name)
            shutil.rmtree(args.out / f"{name}-run", ignore_errors=True)
        print(f"{name}: exit {result['exit_code']} in {result['seconds']} s")
    (args.out / "gpu_check.json").write_text(json.dumps(record, indent=2))
    return 0 if all(s.get("exit_code") == 0 for s in record["steps"]) else 1


if __name__ == "__main__":
    sys.exit(main())
