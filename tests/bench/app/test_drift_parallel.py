"""Drift streams in worker processes: the same audio and tables as in one process, failures
isolated, a dead worker named, the worker plan."""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from baselines.degrading import TiltDriftGenerator
from bench.app.cells import torch_threads
from bench.app.drift.parallel import available_memory_bytes, factory_for, plan_workers
from bench.app.drift.stage import run_drift_stage
from bench.core.errors import ConfigError
from bench.core.presets import get_preset
from bench.core.registry import GENERATORS
from bench.core.workloads import get_workloads

from tests.bench.app.test_drift_stage import ExplodingGenerator

TIMING_COLUMNS = ["wall_s", "peak_mem_bytes"]  # how long and how much memory, not what was generated


class DyingGenerator(TiltDriftGenerator):
    """Ends its process abruptly at block 3, as an out-of-memory kill would."""

    name = "dying"

    def step(self, state, control, recorder=None):  # noqa: ANN001
        if state.block_index == 3:
            time.sleep(1.0)  # let the other worker finish the stream it holds
            os._exit(1)
        return super().step(state, control) if recorder is None else super().step(state, control, recorder)


class SlowGenerator(TiltDriftGenerator):
    """Takes 0.25 s per block, so its streams are still running when the test interrupts the stage."""

    name = "slow"

    def step(self, state, control, recorder=None):  # noqa: ANN001
        time.sleep(0.25)
        return super().step(state, control) if recorder is None else super().step(state, control, recorder)


@pytest.fixture()
def registered():
    names = {"drift-tilt-test": TiltDriftGenerator, "exploding-test": ExplodingGenerator, "dying-test": DyingGenerator,
             "slow-test": SlowGenerator}
    for name, cls in names.items():
        GENERATORS.register(name, cls)
    yield
    for name in names:
        GENERATORS.unregister(name)


def run(out: Path, generators: list[str], workers: int):
    return run_drift_stage(out, get_preset("tiny"), get_workloads("smoke"), generators, workers=workers,
                           drift_overrides={"horizon_s": 8.0, "window_s": 2.0, "hop_s": 2.0, "n_streams": 2})


def test_workers_give_the_same_audio_and_tables_as_one_process(tmp_path: Path, registered: None) -> None:
    generators = ["noise", "lmdm-causal", "exploding-test", "drift-tilt-test"]
    with torch_threads(1):  # each worker runs one thread; torch's float32 rounding can depend on the count
        alone = run(tmp_path / "alone", generators, workers=1)
    pooled = run(tmp_path / "pooled", generators, workers=2)

    config = json.loads((tmp_path / "pooled" / "drift" / "config.json").read_text())
    assert config["execution"]["workers"] == 2 and config["execution"]["threads_per_worker"] == 1
    assert json.loads((tmp_path / "alone" / "drift" / "config.json").read_text())["execution"]["workers"] == 1
    for a, b in zip(alone.statuses, pooled.statuses):
        assert (a["generator"], a["status"], a["error"]) == (b["generator"], b["status"], b["error"])
    failed = {s["generator"]: s for s in pooled.statuses}["exploding-test"]
    assert failed["status"] == "failed" and "boom at block 5" in failed["traceback"]  # the worker's traceback
    assert all(s["generate_s"] > 0 for s in pooled.statuses)
    for name in ("windows", "stream_windows", "summary"):
        pd.testing.assert_frame_equal(alone.tables[name], pooled.tables[name], check_exact=True)
    streams_a, streams_b = alone.tables["streams"], pooled.tables["streams"]
    pd.testing.assert_frame_equal(streams_a.drop(columns=TIMING_COLUMNS), streams_b.drop(columns=TIMING_COLUMNS),
                                  check_exact=True)
    assert len(streams_b) == 6  # 3 generators that succeeded x 2 streams
    for path in streams_b["audio_path"]:
        a = sf.read(tmp_path / "alone" / "drift" / path, dtype="float32")[0]
        b = sf.read(tmp_path / "pooled" / "drift" / path, dtype="float32")[0]
        assert a.size > 0 and np.array_equal(a, b), path


def test_a_dead_worker_fails_the_generators_it_took_down_and_keeps_finished_ones(
        tmp_path: Path, registered: None, caplog: pytest.LogCaptureFixture) -> None:
    result = run(tmp_path / "run", ["noise", "dying-test", "drift-tilt-test"], workers=2)
    statuses = {s["generator"]: s for s in result.statuses}
    assert statuses["noise"]["status"] == "ok" and list(result.results) == ["noise"]
    # noise's streams were done, but its scoring was queued behind the dying streams: scored here instead
    assert "noise: a worker process died before its streams were scored" in caplog.text
    for name in ("dying-test", "drift-tilt-test"):
        assert statuses[name]["status"] == "failed"
        assert "a drift worker process ended abruptly" in statuses[name]["error"]
        assert "--drift-workers 1" in statuses[name]["error"] and "BrokenProcessPool" in statuses[name]["traceback"]
    streams = pd.read_parquet(tmp_path / "run" / "drift" / "streams.parquet")
    assert set(streams["generator"]) == {"noise"}


def test_an_interrupted_stage_ends_its_workers_at_once_and_leaves_no_partial_audio(
        tmp_path: Path, registered: None, monkeypatch: pytest.MonkeyPatch) -> None:
    import bench.app.drift.parallel as parallel

    audio = tmp_path / "run" / "drift" / "audio" / "slow-test"

    def interrupted(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202 - Ctrl-C once a stream is being written
        deadline = time.monotonic() + 120
        while not list(audio.glob(".stream*.wav.tmp")) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert list(audio.glob(".stream*.wav.tmp")), "no stream started within 120 s"
        raise KeyboardInterrupt

    monkeypatch.setattr(parallel, "_collect_streams", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "run", ["slow-test"], workers=2)  # 2 streams of 16 blocks: 4 s each
    assert multiprocessing.active_children() == []  # the workers are gone, not left running
    assert list(audio.iterdir()) == []  # no stream was waited for (no WAV) and no partial WAV is left


def test_plan_workers() -> None:
    plan = plan_workers(0, "cpu", n_jobs=18, thread_budget=2)
    assert (plan.workers, plan.threads, plan.in_process) == (2, 1, False)
    assert (plan_workers(0, "cpu", 3, 8).workers, plan_workers(0, "cpu", 3, 8).threads) == (3, 2)  # one per stream
    assert plan_workers(0, "cpu", 1, 8).in_process and plan_workers(0, "cpu", 1, 8).threads == 8
    assert plan_workers(0, "cpu", 6, 1).in_process  # one thread: nothing to share
    assert plan_workers(1, "cpu", 18, 16).in_process
    assert (plan_workers(4, "cpu", 18, 2).workers, plan_workers(4, "cpu", 18, 2).threads) == (4, 1)
    assert plan_workers(4, "cpu", 3, 2).workers == 3
    gib = 2**30
    assert plan_workers(0, "cpu", 18, 16, available_bytes=64 * gib).workers == 16
    tight = plan_workers(0, "cpu", 18, 16, available_bytes=4 * gib)  # room for 2 workers of 1.5 GiB
    assert (tight.workers, tight.threads) == (2, 8) and "GiB" in tight.reason
    assert plan_workers(0, "cpu", 18, 16, available_bytes=gib).in_process
    assert plan_workers(6, "cpu", 18, 16, available_bytes=gib).workers == 6  # asked for: not capped
    assert available_memory_bytes() is None or available_memory_bytes() > 0
    gpu = plan_workers(0, torch.device("cuda"), 18, 16)
    assert gpu.in_process and "share" in gpu.reason
    with pytest.raises(ConfigError, match="CPU only"):
        plan_workers(2, "cuda", 18, 16)
    for bad in (-1, 1.5, True, 257):
        with pytest.raises(ConfigError, match="drift_workers"):
            plan_workers(bad, "cpu", 18, 2)


def test_a_generator_that_cannot_reach_a_worker_is_named_with_the_fix(tmp_path: Path) -> None:
    class LocalGenerator(TiltDriftGenerator):  # defined in a function: not importable by a worker
        name = "local"

    assert factory_for("noise") is GENERATORS.get("noise")
    with pytest.raises(ConfigError, match="define its class at module level.*--drift-workers 1"):
        factory_for(LocalGenerator)
    GENERATORS.register("local-test", LocalGenerator)
    try:  # in the stage: that generator's failure, named; no worker was needed for it
        result = run(tmp_path / "run", ["local-test"], workers=2)
    finally:
        GENERATORS.unregister("local-test")
    (status,) = result.statuses
    assert status["status"] == "failed" and "cannot be sent to a drift worker process" in status["error"]
    assert "--drift-workers 1" in status["error"] and result.results == {}


def _ignore_sigterm_and_sleep(ready) -> None:  # noqa: ANN001 - a multiprocessing Event
    import signal

    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    ready.set()
    time.sleep(120)


def test_a_worker_that_outlives_sigterm_is_killed(caplog: pytest.LogCaptureFixture) -> None:
    from types import SimpleNamespace

    from bench.app.drift.parallel import StreamPool

    context = multiprocessing.get_context("spawn")
    ready = context.Event()
    stubborn = context.Process(target=_ignore_sigterm_and_sleep, args=(ready,))
    stubborn.start()
    assert ready.wait(60)
    pool = StreamPool.__new__(StreamPool)  # only its worker table is needed
    pool._pool = SimpleNamespace(_processes={stubborn.pid: stubborn})
    started = time.monotonic()
    pool._end_workers(wait_s=1.0)
    assert not stubborn.is_alive() and stubborn.exitcode == -9  # SIGKILL, after SIGTERM was ignored
    assert time.monotonic() - started < 30 and "did not end on SIGTERM" in caplog.text
