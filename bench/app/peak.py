"""The machine's measured matmul peak: the denominator of "fraction of peak".

A square-matmul micro-benchmark at the run's device and dtype: for each size n, a few untimed
warm-up products, then repeated ``a @ b`` until ``min_time_s`` has passed; FLOP/s is
``2 n^3 / seconds per product``. The peak is the best size. On CUDA the products are timed with a
synchronisation before and after the timed loop. A vendor's datasheet peak is usually higher;
this is what the suite can actually reach with torch on this machine.

:func:`record_peak` is a run's use of it: measured before the cells and again after them (the
best counts), reused on ``--resume``, kept in ``<run>/peak.json``. Under Ray the cells run on
other machines, so each task measures its own node's peak after its cell (:func:`worker_peak`,
the best of that worker process's measurements counts) and the cell's ``status.json`` carries it
(``peak``): a cell's fraction of peak is then its node's.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from bench.app.runner import dtype_name
from bench.core.storage import read_json, write_json

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PeakResult:
    """The best square-matmul FLOP/s over the sizes tried, and every size's."""

    flops_per_s: float  # best measured FLOP/s
    size: int  # matmul size n (n x n @ n x n) that reached it
    device: str
    dtype: str
    per_size: dict[int, float]  # n -> FLOP/s
    method: str = "square matmul a @ b, best of sizes, 2 n^3 FLOPs per product"

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["per_size"] = {str(k): v for k, v in self.per_size.items()}
        return out


CPU_SIZES = (512, 1024, 2048)
# a GPU reaches its peak only on larger products (an H200 reaches ~790 TFLOP/s in bfloat16 at
# 8192^3, where a 2048^3 product lasts ~25 us), so on CUDA the sizes go on to 8192 (0.4 GB of
# operands and result in bfloat16, 0.8 GB in float32)
CUDA_SIZES = CPU_SIZES + (4096, 8192)


def measure_matmul_peak(
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    sizes: tuple[int, ...] | None = None,
    min_time_s: float = 0.2,
    warmup: int = 2,
) -> PeakResult:
    """Measure the best square-matmul FLOP/s over ``sizes`` (default: :data:`CPU_SIZES`, or
    :data:`CUDA_SIZES` on CUDA; see module docstring)."""
    device = torch.device(device)
    sizes = sizes or (CUDA_SIZES if device.type == "cuda" else CPU_SIZES)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda *_: None)
    gen = torch.Generator(device="cpu").manual_seed(0)
    per_size: dict[int, float] = {}
    for n in sizes:
        a = torch.randn(n, n, generator=gen).to(device=device, dtype=dtype)
        b = torch.randn(n, n, generator=gen).to(device=device, dtype=dtype)
        for _ in range(warmup):
            a @ b
        sync()
        reps, t0 = 0, time.perf_counter()
        while True:
            a @ b
            reps += 1
            if reps % 4 == 0 or device.type != "cuda":
                sync()
                elapsed = time.perf_counter() - t0
                if elapsed >= min_time_s:
                    break
        per_size[n] = 2.0 * n**3 * reps / elapsed
        log.debug("matmul %d x %d %s on %s: %.1f GFLOP/s", n, n, dtype, device, per_size[n] / 1e9)
    best = max(per_size, key=per_size.get)
    return PeakResult(per_size[best], best, str(device), dtype_name(dtype), per_size)


def record_peak(run_dir: Path, device: str, dtype: torch.dtype, *, measure: bool, reuse: bool,
                again: bool = False) -> dict[str, Any]:
    """The run's matmul peak, kept in ``run_dir/peak.json``: measured before the cells and (``again``)
    after them; the best measurement counts.

    Measuring twice guards against a peak taken while the machine was busy (which would make
    achieved FLOP/s exceed "peak"); every measurement is kept in ``peak.json``. ``reuse`` (``--resume``)
    takes a previous measurement at the same device and dtype instead of the first measurement;
    without ``measure`` (``--no-peak``) the peak is recorded as not measured.
    """
    path = Path(run_dir) / "peak.json"
    previous = read_json(path)
    same = bool(previous and previous.get("device") == device and previous.get("dtype") == dtype_name(dtype)
                and previous.get("flops_per_s"))
    if not again and reuse and same:
        log.info("reusing the measured peak from %s", path)
        return previous
    if not measure:
        result = {"flops_per_s": None, "device": device, "dtype": dtype_name(dtype), "note": "not measured: --no-peak"}
        if not again:
            write_json(path, {"kind": "peak", **result})
        return result
    result = measure_matmul_peak(device, dtype).to_dict()
    measurements = (previous.get("measurements", []) if same else []) + [result["flops_per_s"]]
    best = max(measurements)
    if best > result["flops_per_s"]:
        result = {**previous, "flops_per_s": best}
    result["measurements"] = measurements
    log.info("matmul peak on %s (%s): %.1f GFLOP/s (best of %d measurement(s))", device, result["dtype"],
             best / 1e9, len(measurements))
    write_json(path, {"kind": "peak", **result})
    return result


_WORKER_BEST: dict[tuple[str, str], dict[str, Any]] = {}  # (device, dtype) -> this process's best peak


def worker_peak(device: str, dtype: torch.dtype) -> dict[str, Any]:
    """The matmul peak of the node this process runs on, for the cell it just ran (a Ray task: the
    driver cannot measure another machine). Measured now; the best of this process's measurements
    at ``device`` and ``dtype`` counts (as a run's ``peak.json`` keeps the better of its two), with
    every measurement listed. Never raises: a failed measurement leaves the best earlier one, or a
    record saying "not measured" and why, and the cell's own numbers stand."""
    key = (str(device), dtype_name(dtype))
    previous = _WORKER_BEST.get(key)
    try:
        result = measure_matmul_peak(device, dtype).to_dict()
    except Exception as exc:  # noqa: BLE001 - a peak that cannot be measured must not fail the cell
        log.warning("matmul peak on %s (%s) could not be measured: %s: %s", device, key[1], type(exc).__name__, exc)
        if previous is not None:
            return {**previous, "measurements": list(previous["measurements"])}
        return {"flops_per_s": None, "device": key[0], "dtype": key[1],
                "note": f"not measured: {type(exc).__name__}: {exc}"}
    measurements = (previous["measurements"] if previous else []) + [result["flops_per_s"]]
    best = previous if previous is not None and previous["flops_per_s"] > result["flops_per_s"] else result
    _WORKER_BEST[key] = {**best, "measurements": measurements}
    return {**_WORKER_BEST[key], "measurements": list(measurements)}
