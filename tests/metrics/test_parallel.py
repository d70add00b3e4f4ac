import threading

import numpy as np
import pytest
from threadpoolctl import threadpool_info

from metrics.quality.parallel import available_cores, map_on_cores


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
