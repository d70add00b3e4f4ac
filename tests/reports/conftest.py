"""A small saved run for the report tests, made by the real harness (``bench.app.cli.main``) with a
fake clock on the ``tiny`` preset, plus the real drift stage (with its music descriptors on).

Regimes: the null generator ``noise`` and two toy regimes defined here. The toys return the noise
generator's audio but enter the contract's phases like real regimes do and run small matmuls
inside them, so the FLOPs pass measures real FLOPs that equal their analytic formula:

- ``toy-uncached``: every block, ``steps`` x ``step`` over the whole window (context + block);
- ``toy-cached``: ``bootstrap`` over the window on the first block, then ``first_step`` and
  ``steps - 1`` x ``step`` over the block only.

Fake phase durations (ns) make every latency known in closed form (see :func:`fake_phase_ns`).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

from baselines.degrading import NoiseCollapseGenerator
from baselines.noise import NoiseGenerator
from bench.app.clocks import FakeClock
from bench.core.contract import StepInfo, StepResult
from bench.core.registry import GENERATORS

MS = 1_000_000
COLLAPSE_ONSET_S = 2.0
WIDTH = 8  # toy matmul width d: one matmul of (m, d) @ (d, d) costs 2 m d^2 FLOPs


def fake_phase_ns(phase: str, block_index: int, call_index: int) -> int:
    """Closed-form fake durations: ``step`` is 40 ms (48 ms from block 4 on), others fixed."""
    table = {"bootstrap": 30 * MS, "first_step": 8 * MS, "step": 40 * MS, "decode": 2 * MS}
    ns = table.get(phase, 0)
    if phase == "step" and block_index >= 4:
        ns += 8 * MS
    return ns


class _Toy(NoiseGenerator):
    cached = False

    def _matmul(self, rows: int) -> None:
        a = torch.ones(rows, WIDTH)
        w = torch.ones(WIDTH, WIDTH)
        (a @ w).sum()

    def _plan(self, first: bool) -> list[tuple[str, int]]:
        spec = self.spec
        window, block = spec.context_frames + spec.block_frames, spec.block_frames
        steps = self.settings.steps
        if not self.cached:
            return [("step", window)] * steps
        head = [("bootstrap", window)] if first else []
        return head + [("first_step", block)] + [("step", block)] * (steps - 1)

    def analytic_flops(self, first_block: bool) -> dict[str, float]:
        out: dict[str, float] = {"decode": 0.0}
        for phase, rows in self._plan(first_block):
            out[phase] = out.get(phase, 0.0) + 2.0 * rows * WIDTH * WIDTH
        return out

    def step(self, state: Any, control: Any, recorder: Any = None):  # noqa: ANN201
        from bench.core.contract import NULL_RECORDER

        recorder = recorder or NULL_RECORDER
        first = state.block_index == 0
        calls: dict[str, int] = {}
        for phase, rows in self._plan(first):
            with recorder.phase(phase):
                self._matmul(rows)
            calls[phase] = calls.get(phase, 0) + 1
        result, new_state = super().step(state, control, recorder)  # the decode phase: noise audio
        calls["decode"] = 1
        info = StepInfo(
            block_index=state.block_index, phase_calls=calls, tokens_processed=sum(r for _, r in self._plan(first)),
            cache_len=self.spec.context_frames if self.cached else 0, analytic_flops=self.analytic_flops(first),
        )
        return StepResult(audio=result.audio, info=info), new_state

    def kv_cache_bytes(self, state: Any) -> int:
        return 4 * 2 * WIDTH * self.spec.context_frames if self.cached else 0


class ToyUncached(_Toy):
    name = "toy-uncached"


class ToyCached(_Toy):
    name = "toy-cached"
    cached = True


class ToyCollapse(NoiseCollapseGenerator):
    """Synthetic music that collapses into clipped noise from 2 s on (a drift the report must show)."""

    name = "toy-collapse"

    def __init__(self, *args: Any, onset_s: float = COLLAPSE_ONSET_S, ramp_s: float = 0.5, **kwargs: Any) -> None:
        super().__init__(*args, onset_s=onset_s, ramp_s=ramp_s, **kwargs)


TOYS = {"toy-uncached": ToyUncached, "toy-cached": ToyCached, "toy-collapse": ToyCollapse}


@pytest.fixture(scope="session")
def toy_generators():
    for name, cls in TOYS.items():
        GENERATORS.register(name, cls)
    yield list(TOYS)
    for name in TOYS:
        GENERATORS.unregister(name)


def make_run(out: Path, workloads: str = "smoke", extra: tuple[str, ...] = (), drift: bool = True) -> Path:
    """Run the harness (fake clock, tiny preset) into ``out``; optionally the drift stage too."""
    from bench.app.cli import main

    argv = ["--preset", "tiny", "--workload", workloads, "--generators", "toy-uncached,toy-cached",
            "--out", str(out), "--no-peak", "--progress", "off", "-q",
            "--set", "workload.horizon_s=2", "--set", "workload.prompts=0:bach chorale;1:funk groove",
            "--no-drift", "--no-report", *extra]  # the drift stage runs below with its own generators
    code = main(argv, clock=FakeClock(fake_phase_ns))
    assert code == 0, f"harness run failed with exit status {code}"
    if drift:
        from bench.app.cli import build_parser
        from bench.app.config import resolve_config
        from bench.app.drift.stage import run_drift_stage
        from bench.app.plan import build_plan

        plan = build_plan(resolve_config(build_parser().parse_args(argv)))
        run_drift_stage(out, plan.preset, plan.workloads, ["toy-collapse", "toy-cached", "noise"],
                        drift_overrides={"horizon_s": 4.0, "n_streams": 2, "window_s": 0.5, "hop_s": 0.5,
                                         "descriptors": True})  # off by default at the smoke workload
    return out


PEAK_FLOPS_PER_S = 1.0e9  # a stand-in machine peak written into the saved run (fraction of peak = achieved / this)


@pytest.fixture(scope="session")
def saved_run(tmp_path_factory, toy_generators) -> Path:
    """A finished run folder (smoke + context-sweep workloads, drift stage, a peak.json), read-only.

    Built once per test session: under pytest-xdist the first worker to need it builds it in the
    session's shared temporary folder while the others wait on a file lock (each worker built its
    own before, 40 s each on a 2-core machine)."""

    def build(out: Path) -> Path:
        make_run(out, workloads="smoke,context-sweep")
        write_peak(out, PEAK_FLOPS_PER_S)
        return out

    if "PYTEST_XDIST_WORKER" not in os.environ or os.name != "posix":
        return build(tmp_path_factory.mktemp("run") / "run")
    import fcntl

    shared = tmp_path_factory.getbasetemp().parent  # pytest-of-<user>/pytest-<n>/: this session's workers
    out, done = shared / "saved-run" / "run", shared / "saved-run" / "complete"
    with open(shared / "saved-run.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not done.exists():
            shutil.rmtree(out.parent, ignore_errors=True)  # a worker that failed half-way
            build(out)
            done.touch()
    return out


@pytest.fixture(scope="session")
def golden_run(tmp_path_factory, toy_generators) -> Path:
    """The fixed fake-clock run of the golden test: smoke workload only, no drift stage, no peak."""
    return make_run(tmp_path_factory.mktemp("golden") / "run", workloads="smoke", drift=False)


@pytest.fixture(scope="session")
def built_report(saved_run: Path, tmp_path_factory) -> tuple[Path, Path]:
    """(copy of the saved run, its index.html) built once by ``build_report`` for the read-only tests."""
    from reports.build import build_report

    run = tmp_path_factory.mktemp("built") / "run"
    shutil.copytree(saved_run, run)
    return run, build_report([run])


@pytest.fixture()
def run_copy(saved_run: Path, tmp_path: Path) -> Path:
    """A private copy of the saved run (tests may write into it)."""
    dest = tmp_path / "copied-run"
    shutil.copytree(saved_run, dest)
    return dest


def write_peak(run_dir: Path, flops_per_s: float) -> None:
    """Give a run a peak.json (as if the micro-benchmark had measured ``flops_per_s``)."""
    from bench.core.storage import write_json

    write_json(run_dir / "peak.json", {"kind": "peak", "flops_per_s": flops_per_s, "size": 512, "device": "cpu",
                                        "dtype": "float32", "per_size": {"512": flops_per_s}})


