"""The machine's measured matmul peak: the denominator of "fraction of peak".

A square-matmul micro-benchmark at the run's device and dtype: for each size n, a few untimed
warm-up products, then repeated ``a @ b`` until ``min_time_s`` has passed; FLOP/s is
``2 n^3 / seconds per product``. The peak is the best size. On CUDA the products are timed with a
synchronisation before and after the timed loop. A vendor's datasheet peak is usually higher;
this is what the suite can actually reach with torch on this machine.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from typing import Any

import torch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PeakResult:
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


def measure_matmul_peak(
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    sizes: tuple[int, ...] = (512, 1024, 2048),
    min_time_s: float = 0.2,
    warmup: int = 2,
) -> PeakResult:
    """Measure the best square-matmul FLOP/s over ``sizes`` (see module docstring)."""
    device = torch.device(device)
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
    return PeakResult(per_size[best], best, str(device), str(dtype).replace("torch.", ""), per_size)
