"""pytest-benchmark: per-block step latency of each regime, for regression tracking.

Each benchmark times ``gen.step`` on a steady block (the stream is advanced two blocks first,
so bootstrap/first-block work is excluded), restarting every round from a copy of the same state
(``copy_state`` in the untimed setup), so every round does identical work.

    pytest benchmarks --benchmark-enable --benchmark-autosave            # store a baseline
    pytest benchmarks --benchmark-enable --benchmark-compare \\
        --benchmark-compare-fail=median:10%                             # fail on a 10% regression

Environment: ``LMB_BENCH_PRESET`` (default ``cpu``), ``LMB_BENCH_WORKLOAD`` (default ``default``;
its stream settings are used), ``LMB_BENCH_ROUNDS`` (default 10). Without ``--benchmark-enable``
(the project's default pytest options disable benchmarks) each benchmark runs once, as a smoke test.
"""

from __future__ import annotations

import os

import pytest
import torch

from bench.core.presets import get_preset
from bench.core.registry import GENERATORS
from bench.core.settings import Control
from bench.core.workloads import get_workloads

PRESET = os.environ.get("LMB_BENCH_PRESET", "cpu")
WORKLOAD = os.environ.get("LMB_BENCH_WORKLOAD", "default")
ROUNDS = int(os.environ.get("LMB_BENCH_ROUNDS", "10"))
STEADY_AFTER = 2  # blocks run before the measured one


@pytest.mark.parametrize("regime", GENERATORS.names())
def test_step_latency(benchmark, regime):  # noqa: ANN001
    preset = get_preset(PRESET)
    workload = get_workloads(WORKLOAD)[0]
    gen = GENERATORS.create(regime, preset, workload.settings())
    control = Control(workload.prompts[0][1])
    with torch.inference_mode():
        state = gen.start(control, workload.seed)
        for _ in range(STEADY_AFTER):
            _, state = gen.step(state, control)
        benchmark.group = f"step {PRESET}/{workload.name}"
        benchmark.extra_info.update({
            "preset": PRESET, "workload": workload.name, "regime": regime, "block_s": gen.spec.block_s,
            "block_index": STEADY_AFTER, "torch_threads": torch.get_num_threads(),
            "analytic_flops": float(sum(gen.analytic_flops(first_block=False).values())),
        })
        result, _ = benchmark.pedantic(
            gen.step, setup=lambda: ((gen.copy_state(state), control), {}), rounds=ROUNDS, warmup_rounds=1,
            iterations=1,
        )
    assert result.audio.shape == (gen.spec.channels, gen.spec.block_samples)
