"""Benchmark: FAD + KAD, each with a 1000-replicate bootstrap CI, on 10,000 x 512 embeddings.

Both sets have 10,000 frames of 512 features (float32, synthetic Gaussians), grouped into 100
clips of 100 frames: the bootstrap resamples clips, the unit recommended for frames cut from
clips. Run with ``make bench`` (or ``pytest benchmarks --benchmark-enable``). One round: a run
takes about 11 s on 2 CPU cores (README). ``extra_info`` records the FAD and KAD parts separately.
"""

import time

import numpy as np
import pytest

from metrics.quality.fad import fad
from metrics.quality.kad import kad

N_FRAMES, DIM, CLIPS, N_BOOT = 10_000, 512, 100, 1000
SHIFT, SCALE = 0.02, 1.05
TRUE_FD = DIM * SHIFT**2 + DIM * (SCALE - 1.0) ** 2  # Frechet distance of the generating Gaussians
PREVIOUS = {  # commit c8768be on this input (see the module docstring)
    "fad": 15.277089511738723, "fad_low": -1.0524521160935478, "fad_high": 4.35978192171137,
    "fad_std": 1.3421440400991203, "kad": 0.048602256572749525, "kad_low": 0.046116195711336516,
    "kad_high": 0.05112377387850087, "kad_std": 0.0012274546799787818,
}


def _sets():
    rng = np.random.default_rng(0)
    reference = rng.standard_normal((N_FRAMES, DIM)).astype(np.float32)
    evaluated = (SCALE * rng.standard_normal((N_FRAMES, DIM)) + SHIFT).astype(np.float32)
    groups = np.repeat(np.arange(CLIPS), N_FRAMES // CLIPS)
    return reference, evaluated, groups


def test_fad_and_kad_with_1000_bootstrap_on_10k_x_512(benchmark):
    reference, evaluated, groups = _sets()
    parts = {}

    def run():
        t0 = time.perf_counter()
        f = fad(reference, evaluated, groups_reference=groups, groups_evaluated=groups, n_boot=N_BOOT, seed=0)
        t1 = time.perf_counter()
        k = kad(reference, evaluated, groups_reference=groups, groups_evaluated=groups, n_boot=N_BOOT, seed=0)
        t2 = time.perf_counter()
        parts.update(fad_s=t1 - t0, kad_s=t2 - t1)
        return f, k

    f, k = benchmark.pedantic(run, rounds=1, iterations=1, warmup_rounds=0)
    benchmark.extra_info.update(
        frames=N_FRAMES, dim=DIM, clips=CLIPS, n_boot=N_BOOT, **parts,
        fad=f.value, fad_ci=[f.ci.low, f.ci.high], fad_bias=f.ci.bias, kad=k.value, kad_ci=[k.ci.low, k.ci.high],
        true_fd=TRUE_FD,
    )
    assert f.ci.n_boot == N_BOOT and k.ci.n_boot == N_BOOT and f.ci.unit == k.ci.unit == "clip"
    assert f.value > TRUE_FD  # FAD at n = 10,000 in 512 dimensions is biased upward ...
    assert f.ci.contains(TRUE_FD)  # ... the bias-corrected interval covers the generating distance
    assert k.ci.low > 0  # the distributions differ, and KAD's interval excludes 0
    now = {"fad": f.value, "fad_low": f.ci.low, "fad_high": f.ci.high, "fad_std": f.ci.std, "kad": k.value,
           "kad_low": k.ci.low, "kad_high": k.ci.high, "kad_std": k.ci.std}
    for key, value in PREVIOUS.items():
        assert now[key] == pytest.approx(value, rel=1e-9), key
