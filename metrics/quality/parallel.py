"""Run independent numeric jobs on every core, one BLAS thread each.

Bootstrap replicates are many small linear-algebra problems (a 512 x 512 Cholesky, two matrix
products, an eigenvalue solve): a multithreaded BLAS gains little on one of them, while running
one per core nearly divides the wall time by the core count. numpy's LAPACK and BLAS calls and
its large elementwise loops release the GIL, so a thread pool is enough. The BLAS thread limit
applies only inside :func:`map_on_cores` or a :class:`CorePool` (threadpoolctl, restored on exit).

A caller with many batches (a bootstrap) keeps one :class:`CorePool` open for all of them: its
threads live as long as the pool, so thread-local workspaces (LAPACK work arrays, scratch
matrices, ~6 MB per thread for 512-dimensional embeddings) are allocated and first touched
once per thread, not once per batch.

Jobs can also be queued one by one (:meth:`CorePool.submit`) and wait on each other: the pool
starts them in submission order, so a job may wait on any job submitted before it (a pipeline:
the bootstrap queues each batch's sums ahead of the replicates that read them, so no core idles
at a batch boundary).

A library loaded after the pool opened (scipy's LAPACK is imported lazily) is not covered by its
BLAS limit: load it before entering the pool.
"""

from __future__ import annotations

import os
from contextlib import ExitStack
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Iterable, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask; the OS count where there is none)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class CorePool:
    """``workers`` threads (default: every core) that stay alive across :meth:`map` calls, with
    the BLAS limited to one thread each while the pool is open. Use as a context manager.

    With one worker, :meth:`map` runs in the calling thread (and the BLAS keeps its threads)."""

    def __init__(self, workers: int | None = None) -> None:
        self.workers = max(1, workers or available_cores())
        self._stack: ExitStack | None = None
        self._executor: ThreadPoolExecutor | None = None

    def __enter__(self) -> "CorePool":
        if self.workers > 1:
            from threadpoolctl import threadpool_limits  # a dependency of the metrics only

            with ExitStack() as stack:
                stack.enter_context(threadpool_limits(limits=1, user_api="blas"))
                self._executor = stack.enter_context(ThreadPoolExecutor(max_workers=self.workers))
                self._stack = stack.pop_all()
        return self

    def __exit__(self, *exc: object) -> None:
        stack, self._stack, self._executor = self._stack, None, None
        if stack is not None:
            stack.close()  # joins the threads, then restores the BLAS thread count

    def submit(self, fn: Callable[..., R], *args: object) -> "Future[R]":
        """Queue ``fn(*args)`` and return its Future. Jobs start in submission order, so a job may
        wait on the Future of any job submitted BEFORE it (that one has started by then); waiting
        on a later one can deadlock. With one worker the job runs now, in the calling thread."""
        if self._executor is not None:
            return self._executor.submit(fn, *args)
        if self.workers > 1:
            raise RuntimeError("CorePool.submit called outside its `with` block")
        done: Future[R] = Future()
        try:
            done.set_result(fn(*args))
        except BaseException as exc:  # the Future carries it, as the executor's would
            done.set_exception(exc)
        return done

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
        """``[fn(item) for item in items]``, in order; exceptions propagate as in the serial loop."""
        jobs = list(items)
        if self._executor is None or len(jobs) <= 1:
            if self.workers > 1 and self._stack is None:
                raise RuntimeError("CorePool.map called outside its `with` block")
            return [fn(job) for job in jobs]
        return list(self._executor.map(fn, jobs))


def map_on_cores(fn: Callable[[T], R], items: Iterable[T], workers: int | None = None) -> list[R]:
    """``[fn(item) for item in items]``, in order, on ``workers`` threads (default: every core)
    with the BLAS limited to one thread each. Exceptions propagate as in the serial loop."""
    jobs = list(items)
    with CorePool(min(max(len(jobs), 1), workers or available_cores())) as pool:
        return pool.map(fn, jobs)


__all__ = ["CorePool", "available_cores", "map_on_cores"]
