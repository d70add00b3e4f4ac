import numpy as np
import pytest

from metrics.quality.bootstrap import bootstrap_generic
from metrics.quality.fad import fad, fad_from_stats
import metrics.quality.frechet_bootstrap as fb
from metrics.quality.frechet import frechet_distance, gaussian_stats
from metrics.quality.frechet_bootstrap import _packing, bootstrap_frechet
from metrics.quality.lapack import SymmetricSolver


def test_packed_triangle_round_trips_a_symmetric_matrix():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((7, 7))
    a = a + a.T
    packed = np.empty(28)
    SymmetricSolver(7).pack(a, packed)
    assert np.array_equal(packed, a[np.triu_indices(7)])  # row by row, diagonal included
    assert np.array_equal(_packing(7).full(packed), a)


def test_table_path_equals_direct_path_equals_generic_resampling(sets):
    x, y, gx, gy = sets
    ci_t, reps_t = bootstrap_frechet(x, y, groups_reference=gx, groups_evaluated=gy, n_boot=40, seed=5)
    ci_d, reps_d = bootstrap_frechet(x, y, groups_reference=gx, groups_evaluated=gy, n_boot=40, seed=5, table_bytes=0)
    np.testing.assert_allclose(reps_t, reps_d, rtol=1e-9)

    def statistic(ref_rows, ev_rows):
        a, b = gaussian_stats(x[ref_rows]), gaussian_stats(y[ev_rows])
        return frechet_distance(a.mu, a.cov, b.mu, b.cov).value

    _, reps_g = bootstrap_generic(statistic, len(x), len(y), groups_reference=gx, groups_evaluated=gy,
                                  n_boot=40, seed=5)
    np.testing.assert_allclose(reps_t, reps_g, rtol=1e-8)
    assert ci_t.unit == "clip" and ci_t.n_boot == 40 and ci_t.seed == 5


def test_fixed_reference_resamples_only_the_evaluated_set(sets):
    x, y, _, gy = sets
    stats = gaussian_stats(x)
    a = fad_from_stats(stats, y, groups_evaluated=gy, n_boot=30, seed=2)
    _, reps = bootstrap_frechet(x, y, groups_evaluated=gy, n_boot=30, seed=2, resample_reference=False)
    np.testing.assert_allclose(a.replicates, reps, rtol=1e-9)
    assert a.value == pytest.approx(fad(x, y).value, rel=1e-12)


PACKED_BYTES = 8 * 21  # one replicate's packed 6 x 6 triangle


@pytest.mark.parametrize("table_bytes", [512 * 2**20, 0], ids=["table", "frames"])
@pytest.mark.parametrize("batch", [1, 7, 30])
def test_replicates_do_not_depend_on_the_worker_count_or_the_batches(sets, batch, table_bytes):
    """Batches of 1 and 7 make more batches than the pipeline has buffers (slots are reused);
    7 also leaves a short last batch."""
    x, y, gx, gy = sets
    _, serial = bootstrap_frechet(x, y, groups_reference=gx, groups_evaluated=gy, n_boot=30, seed=1, workers=1)
    _, pooled = bootstrap_frechet(x, y, groups_reference=gx, groups_evaluated=gy, n_boot=30, seed=1, workers=3,
                                  batch_bytes=batch * PACKED_BYTES, table_bytes=table_bytes)
    np.testing.assert_allclose(pooled, serial, rtol=1e-12)
    _, fixed_serial = bootstrap_frechet(x, y, groups_evaluated=gy, n_boot=30, seed=1, resample_reference=False,
                                        workers=1)
    _, fixed_pooled = bootstrap_frechet(x, y, groups_evaluated=gy, n_boot=30, seed=1, resample_reference=False,
                                        workers=2, batch_bytes=batch * PACKED_BYTES, table_bytes=table_bytes)
    np.testing.assert_allclose(fixed_pooled, fixed_serial, rtol=1e-12)


def test_a_failing_replicate_raises_and_the_queued_ones_are_cancelled(sets, monkeypatch):
    import time

    x, y, gx, gy = sets
    calls = []
    inner = fb._frechet_from_sums

    def failing(*args):
        calls.append(1)
        if len(calls) == 5:
            raise np.linalg.LinAlgError("replicate 5 failed")
        if len(calls) > 5:
            time.sleep(0.005)  # the main thread sees the failure long before the queue drains
        return inner(*args)

    monkeypatch.setattr(fb, "_frechet_from_sums", failing)
    with pytest.raises(np.linalg.LinAlgError, match="replicate 5"):
        bootstrap_frechet(x, y, groups_reference=gx, groups_evaluated=gy, n_boot=200, seed=0, workers=2,
                          batch_bytes=4 * PACKED_BYTES)
    settled = len(calls)
    time.sleep(0.05)
    assert len(calls) == settled  # nothing still runs after the call returned
    assert settled < 100  # the jobs queued behind the failure were cancelled, not run


def test_fixed_reference_replicates_equal_generic_resampling(sets):
    x, y, _, gy = sets
    stats = gaussian_stats(x)

    def statistic(_, ev_rows):
        b = gaussian_stats(y[ev_rows])
        return frechet_distance(stats.mu, stats.cov, b.mu, b.cov).value

    _, expected = bootstrap_generic(statistic, len(x), len(y), groups_evaluated=gy, n_boot=20, seed=4,
                                    resample_reference=False)
    _, reps = bootstrap_frechet(None, y, reference_stats=(stats.mu, stats.cov), groups_evaluated=gy, n_boot=20,
                                seed=4, workers=2)
    np.testing.assert_allclose(reps, expected, rtol=1e-9)


def test_a_singular_reference_replicate_takes_the_eigh_route():
    rng = np.random.default_rng(2)
    x = np.zeros((40, 5))
    x[:, :3] = rng.standard_normal((40, 3))  # rank 3 of 5: no Cholesky factor
    y = rng.standard_normal((40, 5))

    def statistic(ref_rows, ev_rows):
        a, b = gaussian_stats(x[ref_rows], full_rank=False), gaussian_stats(y[ev_rows])
        return frechet_distance(a.mu, a.cov, b.mu, b.cov).value

    _, expected = bootstrap_generic(statistic, 40, 40, n_boot=10, seed=0)
    _, reps = bootstrap_frechet(x, y, n_boot=10, seed=0)
    np.testing.assert_allclose(reps, expected, rtol=1e-8)



def test_singular_published_reference_statistics_take_the_eigh_factor():
    rng = np.random.default_rng(3)
    x = np.zeros((60, 5))
    x[:, :2] = rng.standard_normal((60, 2))  # rank 2 of 5: no Cholesky factor of the reference
    stats = gaussian_stats(x, full_rank=False)
    y = rng.standard_normal((60, 5))
    gy = np.repeat(np.arange(20), 3)

    def statistic(_, ev_rows):
        b = gaussian_stats(y[ev_rows])
        return frechet_distance(stats.mu, stats.cov, b.mu, b.cov).value

    _, expected = bootstrap_generic(statistic, 60, 60, groups_evaluated=gy, n_boot=15, seed=1, resample_reference=False)
    _, reps = bootstrap_frechet(None, y, reference_stats=(stats.mu, stats.cov), groups_evaluated=gy, n_boot=15,
                                seed=1, workers=2)
    np.testing.assert_allclose(reps, expected, rtol=1e-9)


_FRESH_PROCESS_BLAS_PROBE = """
import json, sys
import numpy as np
from threadpoolctl import threadpool_info
assert not any(m.startswith("scipy") for m in sys.modules), "scipy loaded too early for this test"
import metrics.quality.frechet_bootstrap as fb
seen = []
inner = fb._frechet_from_sums
def probe(*args):
    seen.append(sorted((p["filepath"], p["num_threads"]) for p in threadpool_info() if p["user_api"] == "blas"))
    return inner(*args)
fb._frechet_from_sums = probe
rng = np.random.default_rng(0)
x, y = rng.standard_normal((60, 6)), rng.standard_normal((60, 6)) + 0.1
fb.bootstrap_frechet(x, y, n_boot=4, workers=2)
print(json.dumps(seen))
"""


def test_replicates_run_with_one_blas_thread_even_when_scipys_lapack_loads_during_the_call():
    """scipy's LAPACK is loaded lazily; the pool's BLAS limit must cover it (else two replicate
    threads x every core's BLAS threads oversubscribe the cores: 2x slower on 2 cores)."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONPATH=str(root), OPENBLAS_NUM_THREADS="2", OMP_NUM_THREADS="2")
    out = subprocess.run([sys.executable, "-c", _FRESH_PROCESS_BLAS_PROBE], cwd=root, env=env, capture_output=True,
                         text=True, timeout=120, check=True)
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(seen) == 4
    for libraries in seen:
        assert any("scipy" in path for path, _ in libraries), libraries  # scipy's OpenBLAS is loaded by now
        assert all(threads == 1 for _, threads in libraries), libraries
