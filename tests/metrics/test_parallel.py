import threading

import numpy as np
import pytest
from threadpoolctl import threadpool_info

from metrics.quality.parallel import CorePool, available_cores, map_on_cores


def _blas_threads() -> list[int]:
    return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]


def test_results_keep_the_input_order_and_jobs_run_at_the_same_time():
    both = threading.Barrier(2, timeout=30)  # passes only when two jobs run at once

    def job(i: int) -> int:
        if i < 2:
            both.wait()
        np.linalg.eigvalsh(np.eye(64) * (i + 1))  # releases the GIL
        return i * i

    assert map_on_cores(job, range(40), workers=2) == [i * i for i in range(40)]
    assert map_on_cores(job, [], workers=2) == []
    assert map_on_cores(lambda i: i * i, range(3), workers=1) == [0, 1, 4]


def test_blas_runs_one_thread_per_worker_and_is_restored():
    before = _blas_threads()
    inside = map_on_cores(lambda _: _blas_threads(), range(4), workers=2)
    assert all(threads == [1] * len(before) for threads in inside)
    assert _blas_threads() == before


def test_an_exception_in_a_job_propagates():
    def job(i: int) -> int:
        if i == 5:
            raise np.linalg.LinAlgError("job 5 failed")
        return i

    with pytest.raises(np.linalg.LinAlgError, match="job 5"):
        map_on_cores(job, range(10), workers=2)


def test_available_cores_is_positive():
    assert available_cores() >= 1


def test_a_core_pool_keeps_its_threads_across_maps_and_limits_blas_until_it_closes():
    before = _blas_threads()
    local = threading.local()

    def job(_: int) -> tuple[int, int, list[int]]:
        local.calls = getattr(local, "calls", 0) + 1  # thread-local state survives between maps
        return threading.get_ident(), local.calls, _blas_threads()

    with CorePool(2) as pool:
        first = pool.map(job, range(6))
        second = pool.map(job, range(6))
    idents = {ident for ident, _, _ in first + second}
    assert threading.get_ident() not in idents and len(idents) <= 2
    assert sum(calls for _, calls, _ in second if calls > 1) > 0  # some thread ran jobs of both maps
    assert max(calls for _, calls, _ in second) > max(calls for _, calls, _ in first)
    assert all(threads == [1] * len(before) for _, _, threads in first + second)
    assert _blas_threads() == before


def test_a_one_worker_pool_runs_in_the_calling_thread_and_a_closed_pool_refuses_work():
    with CorePool(1) as pool:
        assert pool.map(lambda _: threading.get_ident(), range(3)) == [threading.get_ident()] * 3
    pool = CorePool(2)
    with pytest.raises(RuntimeError, match="outside its `with` block"):
        pool.map(lambda i: i, range(3))


def test_submitted_jobs_start_in_order_so_a_job_can_wait_on_an_earlier_one():
    """The bootstrap's pipeline: each job waits on a job queued before it; with two workers and a
    chain of waits this finishes only if jobs start in submission order."""
    order: list[int] = []

    def job(i: int, earlier) -> int:
        order.append(i)
        if earlier is not None:
            return earlier.result() + 1
        return 0

    with CorePool(2) as pool:
        futures = []
        for i in range(50):
            futures.append(pool.submit(job, i, futures[i - 2] if i >= 2 else None))
        results = [f.result(timeout=30) for f in futures]
    assert results == [i // 2 for i in range(50)]
    assert sorted(order) == list(range(50))


def test_submit_on_a_one_worker_pool_runs_now_and_carries_exceptions():
    with CorePool(1) as pool:
        done = pool.submit(lambda: threading.get_ident())
        assert done.done() and done.result() == threading.get_ident()
        failed = pool.submit(lambda: 1 / 0)
        assert failed.done()
        with pytest.raises(ZeroDivisionError):
            failed.result()
    with pytest.raises(RuntimeError, match="outside its `with` block"):
        CorePool(2).submit(lambda: 0)
