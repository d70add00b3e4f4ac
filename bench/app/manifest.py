"""The run manifest: provenance written before any work (results without one do not exist).

It records the code (git commit, dirty flag), the time (UTC), the software (Python, torch, CUDA,
driver, package versions read with ``importlib.metadata`` without importing the packages), the
machine (CPU and GPU models, thread counts), and the run (command line, seeds, preset and
workload fingerprints, the planned cells and their hashes, the schema version).
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGES = (
    "torch", "numpy", "pandas", "pyarrow", "scipy", "soundfile", "tqdm", "laion-clap",
    "frechet-audio-distance", "transformers", "torchaudio", "encodec", "live-music-bench",
)


def utc_now() -> str:
    """ISO-8601 UTC time with a Z suffix, second resolution."""
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _run(cmd: list[str], cwd: Path | None = None) -> str | None:
    try:
        out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def git_info(root: Path = REPO_ROOT) -> dict[str, Any]:
    """Commit, short sha, dirty flag (tracked files changed) and untracked-file count."""
    commit = _run(["git", "rev-parse", "HEAD"], root)
    if commit is None:
        return {"commit": None, "short": "nogit", "dirty": None, "untracked": None,
                "note": f"{root} is not a git checkout (or git is missing)"}
    tracked = _run(["git", "status", "--porcelain", "--untracked-files=no"], root) or ""
    untracked = _run(["git", "ls-files", "--others", "--exclude-standard"], root) or ""
    return {
        "commit": commit, "short": commit[:8], "dirty": bool(tracked.strip()),
        "untracked": len([line for line in untracked.splitlines() if line.strip()]),
    }


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    """Installed versions (None when a package is not installed); nothing is imported."""
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def cpu_model() -> str:
    """The CPU model name (``/proc/cpuinfo``, else what ``platform`` knows)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def thread_info() -> dict[str, Any]:
    """CPU counts, torch thread counts and the thread-count environment variables."""
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = None
    return {
        "os_cpu_count": os.cpu_count(), "affinity_cpus": affinity,
        "torch_threads": torch.get_num_threads(), "torch_interop_threads": torch.get_num_interop_threads(),
        "env": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")},
    }


def gpu_info() -> dict[str, Any]:
    """CUDA availability, GPU names and the driver version (through ``nvidia-smi``)."""
    info: dict[str, Any] = {"cuda_available": torch.cuda.is_available(), "torch_cuda": torch.version.cuda}
    if not info["cuda_available"]:
        info.update({"gpus": [], "driver": None, "note": "no CUDA device visible"})
        return info
    info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    driver = _run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"])
    info["driver"] = driver.splitlines()[0].strip() if driver else None
    if driver is None:
        info["note"] = "driver version not measured: nvidia-smi not available"
    return info


def build_manifest(run: dict[str, Any], schema_version: int) -> dict[str, Any]:
    """The manifest dictionary; ``run`` holds the run's own fields (argv, config, cells, seeds)."""
    return {
        "schema_version": schema_version,
        "kind": "manifest",
        "created_utc": utc_now(),
        "git": git_info(),
        "python": {"version": sys.version.split()[0], "implementation": platform.python_implementation(),
                   "executable": sys.executable},
        "torch": {"version": torch.__version__, "cuda": torch.version.cuda,
                  "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None},
        "platform": {"system": platform.platform(), "machine": platform.machine(), "hostname": socket.gethostname()},
        "cpu": {"model": cpu_model()},
        "gpu": gpu_info(),
        "threads": thread_info(),
        "packages": package_versions(),
        "env": {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "CUDA_VISIBLE_DEVICES")},
        "run": run,
    }
