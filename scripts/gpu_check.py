"""The GPU check: the ``gpu`` tests, then a paper-scale run, into one compact results folder.

    python scripts/gpu_check.py --out gpu-results            # about 5-10 minutes on one GPU

Steps (each with its own time limit, so the whole stays under ``--budget-s``, 540 s by default):
1. ``pytest -m gpu tests/gpu``: no host sync inside a step before its audio copy, CUDA-event phase
   times against a synchronised wall clock, bfloat16 streams of every regime, and
   ``--compile reduce-overhead`` (CUDA graphs) streams of the diffusion regimes against eager;
2. ``scripts/timer_cost.py``: the host's cost of one phase entry per timer (wall, CUDA events;
   for the CUDA timers also between two device synchronisations, the device's share included),
   then ``scripts/profiler_after_effect.py --interleave 2``: a launch's and an entry's cost before
   and after a profiled call, with host and with host and device activity (six processes);
3. ``run_all.py --workload paper --preset sao-small --device cuda --dtype bfloat16`` on both null
   generators (first: ``noise-phased`` gives the harness's cost per phase entry in a run), the
   three diffusion regimes and the LMM (last, the slowest cell),
   horizon shortened to ``--horizon-s`` (drift, continuation and the report skipped): per-block
   latency, RTF, phases, FLOPs, attainable times at paper scale;
4. the same diffusion regimes on stable-audio-tools' own SAO-small DiT (``dit.arch=sat``);
5. ``paper-compiled``: step 3's regimes with ``--compile reduce-overhead`` (CUDA graphs; last,
   since compiling takes minutes: 231 s for the diffusion regimes on the H200 of 2026-12-04,
   docs/gpu.md; the LMM last within it).

``--out`` receives: ``pytest.txt`` (the test log), ``timer_cost.txt``,
``profiler_after_effect.txt``, ``paper/``, ``paper-sat/`` and ``paper-compiled/`` (each run's
``summary.md``, its CSV tables and ``manifest.json``, and under ``cells/`` each cell's CSV tables
and ``status.json``, which is all a run cut off by the budget leaves; audio and parquet are left out),
and ``gpu_check.json`` (what ran, exit codes, seconds). ``--archive FILE`` also packs that folder
into one ``.tar.gz`` (the lent GPU machine's tool brings back at most 8 files). Exit status: 0 when
every step passed, 1 when one failed, 2 without a CUDA device (nothing run), 3 when a package the
steps import is missing (nothing run; the message names it).

Before anything runs, every package the steps import is imported once here, so that a machine
missing one fails in a second, naming it, instead of minutes into its time. On this project's lent
GPU machine (Python 3.12, its own PyTorch; no network) soundfile, its cffi and pycparser, and
pyloudnorm are missing: ``python scripts/gpu_wheels.py`` downloads them as wheels into ``.whl/``
where pip works (README, "GPU checks", has the whole command).

``--device cpu`` runs the same steps on the CPU (the ``gpu`` tests then skip): it checks this
script's plumbing, with ``--preset tiny --workload smoke --dtype float32``, and measures nothing.
"""

from __future__ import annotations

import argparse
import importlib
import json
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KEEP = ("summary.md", "manifest.json", "peak.json")
# what the steps import (run_all.py, the reports and tests/gpu), by import name
NEEDED = ("numpy", "scipy", "pandas", "pyarrow", "matplotlib", "tqdm", "safetensors", "soundfile", "pyloudnorm",
          "threadpoolctl", "pytest", "pytest_benchmark", "transformers")
RUNS = ("paper", "paper-sat", "paper-compiled")
PYTEST_SHARE = 0.40  # of --budget-s, at most, for the gpu tests (their CUDA-graph compiles included)


def missing_packages() -> list[str]:
    """The import names among :data:`NEEDED` that fail to import here, each with its error."""
    missing = []
    for name in NEEDED:
        try:
            importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - a broken install is as missing as an absent one
            missing.append(f"{name} ({type(exc).__name__}: {exc})")
    return missing


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
    """Copy a run folder's summary, manifest and CSV tables, and each cell's CSV tables and
    ``status.json`` (no audio, no parquet). The cells' own tables are what a run cut off by the
    budget leaves: its finished cells' blocks and phases come back without a summary."""
    dest.mkdir(parents=True, exist_ok=True)
    if not run_dir.is_dir():
        return
    for path in run_dir.iterdir():
        if path.name in KEEP or path.suffix == ".csv":
            shutil.copy2(path, dest / path.name)
    for cell in sorted((run_dir / "cells").glob("*")):
        kept = [path for path in cell.glob("*") if path.name == "status.json" or path.suffix == ".csv"]
        if kept:
            (dest / "cells" / cell.name).mkdir(parents=True, exist_ok=True)
        for path in kept:
            shutil.copy2(path, dest / "cells" / cell.name / path.name)


def _archive(folder: Path, archive: Path) -> None:
    """``folder`` packed into the .tar.gz ``archive`` (written beside, then renamed: atomic)."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    partial = archive.with_name(archive.name + ".partial")
    own = {partial.resolve(), archive.resolve()}  # an archive written inside the folder leaves itself out

    def leave_own_out(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        return None if (folder.parent / info.name).resolve() in own else info

    with tarfile.open(partial, "w:gz") as tar:
        tar.add(folder, arcname=folder.name, filter=leave_own_out)
    partial.replace(archive)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("gpu-results"))
    parser.add_argument("--archive", type=Path, default=None, help="also pack --out into this .tar.gz")
    parser.add_argument("--budget-s", type=float, default=540.0, help="all steps together (default: 540)")
    parser.add_argument("--horizon-s", type=float, default=30.0, help="stream length of the paper runs")
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"),
                        help="cpu: check this script's plumbing only (the gpu tests skip; nothing is measured)")
    parser.add_argument("--preset", default="sao-small")
    parser.add_argument("--workload", default="paper")
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--runs", nargs="+", default=list(RUNS), choices=RUNS, help="which runs (default: all)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    record: dict = {"device_arg": args.device, "steps": []}

    def finish(code: int) -> int:
        (args.out / "gpu_check.json").write_text(json.dumps(record, indent=2))
        if args.archive is not None:
            _archive(args.out, args.archive)
        return code

    missing = missing_packages()
    if missing:
        record["missing_packages"] = missing
        print("missing packages, nothing run: " + "; ".join(missing) + ". Carry them as wheels: "
              "python scripts/gpu_wheels.py (README, 'GPU checks')")
        return finish(3)
    import torch  # after argparse and the package check: both work without torch

    record["torch"] = torch.__version__
    if args.device == "cuda":
        if not torch.cuda.is_available():
            record.update(cuda=False, note="no CUDA device: nothing run")
            print("no CUDA device here: nothing run (the README's GPU numbers stay 'not measured')")
            return finish(2)
        record.update(cuda=True, device=torch.cuda.get_device_name(0))
    deadline = time.perf_counter() + args.budget_s
    python = sys.executable
    steps = [("pytest", [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "gpu", "tests/gpu", "-rs"]),
             ("timer_cost", [python, "scripts/timer_cost.py"]),
             ("profiler_after_effect", [python, "scripts/profiler_after_effect.py", "--interleave", "2"])]
    common = ["--workload", args.workload, "--preset", args.preset, "--device", args.device, "--dtype", args.dtype,
              "--no-drift", "--no-continuation", "--no-report", "--progress", "off",
              "--set", f"workload.horizon_s={args.horizon_s:g}"]
    # the null generators first and the LMM (the slowest cell) last: a run cut off by the budget
    # keeps the cells that measure the harness's overhead
    runs = {"paper": ["--generators", "noise,noise-phased,outpaint,lmdm-encdec,lmdm-causal,lmm"],
            "paper-sat": ["--generators", "outpaint,lmdm-encdec,lmdm-causal", "--set", "dit.arch=sat",
                          "--set", "dit.config=builtin:sao-small"],
            "paper-compiled": ["--generators", "noise,noise-phased,outpaint,lmdm-encdec,lmdm-causal,lmm",
                               "--compile", "reduce-overhead"]}
    for name in args.runs:
        steps.append((name, [python, "run_all.py", *common, *runs[name], "--out", str(args.out / f"{name}-run")]))
    for name, cmd in steps:
        left = deadline - time.perf_counter()
        if left <= 5:
            record["steps"].append({"name": name, "skipped": "budget spent"})
            continue
        limit_s = min(left, PYTEST_SHARE * args.budget_s) if name == "pytest" else left  # the runs take the rest
        result = _run(cmd, args.out / f"{name}.txt", limit_s)
        record["steps"].append({"name": name, **result})
        if name in RUNS:
            _compact(args.out / f"{name}-run", args.out / name)
            shutil.rmtree(args.out / f"{name}-run", ignore_errors=True)
        print(f"{name}: exit {result['exit_code']} in {result['seconds']} s")
    return finish(0 if all(s.get("exit_code") == 0 for s in record["steps"]) else 1)


if __name__ == "__main__":
    sys.exit(main())
