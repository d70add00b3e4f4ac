"""The run manifest: provenance written before any work (results without one do not exist).

It records the code (git commit, dirty flag), the time (UTC), the software (Python, torch, CUDA,
driver, package versions read with ``importlib.metadata`` without importing the packages), the
machine (CPU and GPU models, thread counts), and the run (command line, seeds, preset and
workload fingerprints, the planned cells and their hashes, the schema version).

The machine part (:func:`machine_info`) is also gathered where each cell runs (:func:`node_record`,
inside the Ray task on a cluster) and kept in the cell's ``status.json``; after the cells the
manifest gets every node's record (:func:`nodes_section`).
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


def machine_info() -> dict[str, Any]:
    """This machine's software and hardware: the manifest's machine part, also what every node of a
    distributed run reports for the cells it timed (:func:`node_record`)."""
    return {
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
    }


def hardware_label(machine: dict[str, Any], device: str) -> str:
    """What a cell's timing depends on, in one line: CPU model, logical CPUs, torch threads and, on a
    CUDA device, the GPU's name (two cells with different labels were timed on different hardware)."""
    threads = machine["threads"]
    label = (f"{machine['cpu']['model']} ({threads['os_cpu_count']} CPUs, "
             f"{threads['torch_threads']} torch threads)")
    if torch.device(device).type == "cuda":
        label += f"; GPU {torch.cuda.get_device_name(torch.device(device))}"
    return label


def node_record(device: str, executor: str, ray: dict[str, Any] | None = None) -> dict[str, Any]:
    """The node that times a cell, as its ``status.json`` records it: an id (the host name, plus the Ray
    node id's first 8 characters under Ray), the executor, the hardware label and :func:`machine_info`.
    Call it where the cell runs (inside a Ray task for a Ray worker), with the cell's thread settings
    in effect."""
    machine = machine_info()
    host = machine["platform"]["hostname"]
    node_id = f"{host}/{ray['node_id'][:8]}" if ray else host
    return {"id": node_id, "executor": executor, "hardware": hardware_label(machine, device),
            **({"ray": ray} if ray else {}), "machine": machine}


def nodes_section(statuses: list[dict[str, Any]]) -> dict[str, Any]:
    """The manifest's ``nodes`` (each node's machine info, once) and ``cell_nodes`` (which cell ran on
    which node and hardware), from the cells' statuses; cells without a node record are left out."""
    nodes: dict[str, Any] = {}
    cells = []
    for s in statuses:
        node = s.get("node")
        if not node:
            continue
        nodes.setdefault(node["id"], {k: v for k, v in node.items() if k != "id"})
        cells.append({"generator": s["generator"], "workload": s["workload"], "node": node["id"],
                      "hardware": node.get("hardware")})
    return {"nodes": nodes, "cell_nodes": cells}


def build_manifest(run: dict[str, Any], schema_version: int) -> dict[str, Any]:
    """The manifest dictionary; ``run`` holds the run's own fields (argv, config, cells, seeds)."""
    return {
        "schema_version": schema_version,
        "kind": "manifest",
        "created_utc": utc_now(),
        "git": git_info(),
        **machine_info(),
        "run": run,
    }
