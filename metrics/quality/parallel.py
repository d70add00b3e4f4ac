"""Run independent numeric jobs on every core, one BLAS thread each.

Bootstrap replicates are many small linear-algebra problems (a 512 x 512 Cholesky, two matrix
products, an eigenvalue solve): a multithreaded BLAS gains little on one of them, while running
one per core nearly divides the wall time by the core count. numpy's LAPACK and BLAS calls and
its large elementwise loops release the GIL, so a thread pool is enough. The BLAS thread limit
applies only inside :func:`map_on_cores` (threadpoolctl, restored on exit).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask; the OS count where there is none)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def map_on_cores(fn: Callable[[T], R], items: Iterable[T], workers: int | None = None) -> list[R]:
    """``[fn(item) for item in items]``, in order, on ``workers`` threads (default: every core)
    with the BLAS limited to one thread each. Exceptions propagate as in the serial loop."""
    from threadpoolctl import threadpool_limits  # a dependency of the metrics only

    jobs = list(items)
    count = min(len(jobs), workers or available_cores())
    if count <= 1:
        return [fn(job) for job in jobs]
    with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(fn, jobs))


__all__ = ["available_cores", "map_on_cores"]
