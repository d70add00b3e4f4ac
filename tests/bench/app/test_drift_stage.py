"""The drift stage end to end on the tiny preset: tables on disk, failures isolated, determinism."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd
import pytest

from baselines.degrading import TiltDriftGenerator
from baselines.noise import NoiseGenerator
from bench.core.contract import StreamingGenerator
from bench.core.errors import ConfigError
from bench.app.drift.config import drift_workload_for
from bench.app.drift.score import load_drift_result
from bench.app.drift.stage import run_drift_stage
from bench.core.presets import get_preset
from bench.core.registry import GENERATORS
from bench.core.workloads import get_workloads


class ExplodingGenerator(TiltDriftGenerator):
    name = "exploding"

    def step(self, state, control, recorder=None):  # noqa: ANN001
        if state.block_index == 5:
            raise RuntimeError("boom at block 5")
        return super().step(state, control) if recorder is None else super().step(state, control, recorder)


class HangingGenerator(TiltDriftGenerator):
    """Hangs in its third block (a minute: far past the tests' one-second step limit)."""

    name = "hanging"

    def step(self, state, control, recorder=None):  # noqa: ANN001
        if state.block_index == 2:
            time.sleep(60)
        return super().step(state, control) if recorder is None else super().step(state, control, recorder)


@pytest.fixture()
def registered():
    GENERATORS.register("drift-tilt-test", TiltDriftGenerator)
    GENERATORS.register("exploding-test", ExplodingGenerator)
    yield ["noise", "drift-tilt-test", "exploding-test"]
    GENERATORS.unregister("drift-tilt-test")
    GENERATORS.unregister("exploding-test")


def run(out: Path, generators: list[str]):
    return run_drift_stage(out, get_preset("tiny"), get_workloads("smoke"), generators,
                           drift_overrides={"horizon_s": 8.0, "window_s": 2.0, "hop_s": 2.0, "n_streams": 2})


def test_stage_writes_tables_isolates_failures_and_is_deterministic(tmp_path: Path, registered: list[str]) -> None:
    result = run(tmp_path / "a", registered)
    folder = tmp_path / "a" / "drift"
    for name in ("streams", "windows", "stream_windows", "summary", "status"):
        assert (folder / f"{name}.parquet").exists() and (folder / f"{name}.csv").exists()
    status_table = pd.read_parquet(folder / "status.parquet").set_index("generator")
    assert status_table["status"].to_dict() == {"noise": "ok", "drift-tilt-test": "ok", "exploding-test": "failed"}
    ok = status_table.loc[["noise", "drift-tilt-test"]]
    assert (ok.generate_s > 0).all() and (ok.score_s > 0).all() and (ok.wall_s == ok.generate_s + ok.score_s).all()
    assert pd.isna(status_table.loc["exploding-test", "score_s"])  # failed while generating: never scored
    config = json.loads((folder / "config.json").read_text())
    failed = [s for s in config["statuses"] if s["status"] == "failed"][0]
    assert "boom at block 5" in failed["error"] and "Traceback" in failed["traceback"]
    assert "synthetic" in config["scoring"]["reference"]
    assert "| noise | " in result.markdown and "exploding-test: drift stage failed" in result.markdown
    assert "| drift-tilt-test | " in result.markdown and "not measured (no CLAP checkpoint)" in result.markdown
    assert "NOT a pretrained-model metric" in result.markdown
    assert (folder / "drift.md").read_text() == result.markdown
    streams = pd.read_parquet(folder / "streams.parquet")
    assert (folder / streams["audio_path"].iloc[0]).exists()  # paths relative to the drift folder
    # the smoke workload's descriptors are off: the tables hold only the columns they had before them
    assert "pitched_fraction" not in pd.read_parquet(folder / "stream_windows.parquet")
    assert not any((folder / f"{t}.parquet").exists() for t in ("stream_stability", "reference_descriptors"))
    assert config["drift"]["descriptors"] is False and (folder / config["reference_audio"]["path"]).exists()
    assert set(streams["generator"]) == {"noise", "drift-tilt-test"} and set(streams["seed"]) == {0, 1}

    loaded = load_drift_result(tmp_path / "a", "drift-tilt-test")
    pd.testing.assert_frame_equal(loaded.windows, result.results["drift-tilt-test"].windows, check_exact=True)
    assert loaded.config["seeds"] == [0, 1]

    run(tmp_path / "b", registered[:2])
    for name in ("windows", "stream_windows", "summary"):
        pd.testing.assert_frame_equal(
            pd.read_parquet(folder / f"{name}.parquet"), pd.read_parquet(tmp_path / "b" / "drift" / f"{name}.parquet"),
            check_exact=True,
        )


def test_a_scoring_failure_fails_its_generator_only_and_keeps_its_audio(
        tmp_path: Path, registered: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import bench.app.drift.score as scoring

    score = scoring.score_streams

    def score_streams(streams, *args, **kwargs):  # noqa: ANN001, ANN202
        if str(streams["generator"].iloc[0]) == "noise":
            raise RuntimeError("scorer broke")
        return score(streams, *args, **kwargs)

    monkeypatch.setattr(scoring, "score_streams", score_streams)
    result = run(tmp_path / "run", registered[:2])
    statuses = {s["generator"]: s for s in result.statuses}
    assert statuses["drift-tilt-test"]["status"] == "ok" and list(result.results) == ["drift-tilt-test"]
    failed = statuses["noise"]
    assert failed["status"] == "failed" and failed["error"] == "RuntimeError: scorer broke"
    assert "Traceback" in failed["traceback"] and failed["generate_s"] > 0 and failed["score_s"] >= 0
    streams = pd.read_parquet(tmp_path / "run" / "drift" / "streams.parquet")
    assert set(streams["generator"]) == {"noise", "drift-tilt-test"}  # its audio is kept
    assert "noise: drift stage failed" in result.markdown


def test_drift_workload_defaults_and_overrides() -> None:
    default = drift_workload_for(get_workloads("default")[0])
    assert default.stream.block_s == 1.0 and default.stream.steps == 8  # the systems stage's stream
    assert [default.seed_of(i) for i in range(default.n_streams)] == list(range(default.n_streams))
    custom = drift_workload_for(get_workloads("default")[0], {"horizon_s": "90", "n_streams": "4", "prompts": "a; b"})
    assert custom.horizon_s == 90.0 and custom.n_streams == 4 and custom.prompt_of(3) == "b"
    assert custom.stream_workload(2).prompts == ((0.0, "a"),)
    with pytest.raises(ConfigError, match="unknown drift field 'horizon'"):
        drift_workload_for(get_workloads("default")[0], {"horizon": 5})
    with pytest.raises(ConfigError, match="shorter than one window"):
        drift_workload_for(get_workloads("default")[0], {"horizon_s": 2.0})
    with pytest.raises(ConfigError, match="0.4 s"):
        drift_workload_for(get_workloads("default")[0], {"window_s": 0.2})
    assert issubclass(TiltDriftGenerator, StreamingGenerator)
    assert default.context == "silence"
    long = drift_workload_for(get_workloads("long")[0])  # the ARC-Forcing contrast (docs/arc.md)
    assert long.horizon_s >= 300 and long.n_streams >= 3 and long.context == "reference"
    assert long.stream.block_s == default.stream.block_s and long.stream.steps == default.stream.steps


def test_reference_choices(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np
    import soundfile as sf

    from baselines.degrading import render_music
    from bench.app.drift.config import DriftMetricsConfig
    from bench.app.drift.reference import dataset_reference_clips
    from bench.app.drift.score import prepare_scoring

    preset = get_preset("tiny")
    drift = drift_workload_for(get_workloads("smoke")[0])
    streams = pd.DataFrame({"sample_rate": [8000], "block_s": [0.125]})
    monkeypatch.setenv("LIVE_MUSIC_BENCH_CACHE", str(tmp_path / "no-cache"))  # no data set built here
    with pytest.raises(FileNotFoundError, match="python -m baselines.data build"):
        dataset_reference_clips(preset, 16000, 4)
    reference, embedder, clap = prepare_scoring(preset, drift, DriftMetricsConfig(reference="auto"), streams)
    assert reference.name.startswith("synthetic:") and "not a real music data set" in reference.name
    assert clap is None and embedder.name == "logmel" and reference.n_clips == 8
    folder = tmp_path / "ref"
    folder.mkdir()
    for j in range(3):
        sf.write(folder / f"r{j}.wav", render_music(8000, j, "x", 0, 16000).astype(np.float32), 8000)
    reference, _, _ = prepare_scoring(preset, drift, DriftMetricsConfig(reference=str(folder)), streams)
    assert reference.name == f"folder {folder}: 3 files" and reference.n_clips == 3


def test_a_generator_name_with_a_path_stays_inside_the_run_folder(tmp_path: Path) -> None:
    GENERATORS.register("../../escaped", TiltDriftGenerator)
    try:
        run(tmp_path / "run", ["../../escaped"])
    finally:
        GENERATORS.unregister("../../escaped")
    written = [p.resolve() for p in tmp_path.rglob("*") if p.is_file()]
    assert written and all((tmp_path / "run") in p.parents for p in written)
    assert list((tmp_path / "run" / "drift" / "audio").iterdir())[0].name == ".._.._escaped"


class _ContextEcho(NoiseGenerator):
    """The null generator, recording the context and prompt each stream was started with."""

    primed: list = []
    prompts: list = []

    def start(self, control, seed, context_audio=None):  # noqa: ANN001, ANN201
        import numpy as np

        type(self).primed.append(None if context_audio is None else np.array(context_audio))
        type(self).prompts.append(control.prompt)
        return super().start(control, seed, context_audio)


def test_reference_context_primes_each_stream_with_its_clip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np

    import baselines.data.build as data_build
    from bench.app.drift.generate import generate_streams

    class Clips:
        sample_rate = get_preset("tiny").dit.codec.sample_rate

        def clips(self, split=None):  # noqa: ANN001
            return [{"id": f"c{i}", "short_prompt": f"prompt {i}"} for i in range(3)]

        def read(self, clip):  # noqa: ANN001
            return np.full(self.sample_rate * 3, float(clip["id"][1:]) + 1.0, dtype=np.float32)

    monkeypatch.setattr(data_build, "load_dataset", lambda root=None: Clips())
    _ContextEcho.primed, _ContextEcho.prompts = [], []
    workload = get_workloads("smoke")[0]
    drift = drift_workload_for(workload, {"context": "reference", "n_streams": 2})
    assert drift.context == "reference" and "reference music" in drift.description
    rows = generate_streams(_ContextEcho, get_preset("tiny"), drift, tmp_path)
    assert list(rows["context_clip"]) == ["c0", "c1"] and list(rows["prompt"]) == ["prompt 0", "prompt 1"]
    n = int(round(workload.context_s * Clips.sample_rate))
    for i, primed in enumerate(_ContextEcho.primed):
        assert primed.shape == (1, n) and np.all(primed == i + 1.0)  # clip i's first context_s seconds
    # from silence (the default) nothing is primed
    _ContextEcho.primed = []
    generate_streams(_ContextEcho, get_preset("tiny"), drift_workload_for(workload, {"n_streams": 2}), tmp_path)
    assert _ContextEcho.primed == [None, None]
    with pytest.raises(ConfigError, match="drift.context"):
        drift_workload_for(workload, {"context": "radio"})
    with pytest.raises(ConfigError, match="one reference clip per stream"):
        generate_streams(_ContextEcho, get_preset("tiny"), drift_workload_for(workload, {"context": "reference",
                                                                                         "n_streams": 4}), tmp_path)


@pytest.mark.parametrize("workers", [1, 2])
def test_a_hanging_step_fails_its_generator_at_the_step_time_limit(tmp_path: Path, workers: int) -> None:
    GENERATORS.register("hanging-test", HangingGenerator)
    try:
        started = time.perf_counter()
        result = run_drift_stage(tmp_path / "run", get_preset("tiny"), get_workloads("smoke"), ["hanging-test", "noise"],
                                 drift_overrides={"horizon_s": 8.0, "window_s": 2.0, "hop_s": 2.0, "n_streams": 2},
                                 workers=workers, step_timeout_s=1.0)
        elapsed_s = time.perf_counter() - started
    finally:
        GENERATORS.unregister("hanging-test")
    statuses = {s["generator"]: s for s in result.statuses}
    assert statuses["noise"]["status"] == "ok"
    hung = statuses["hanging-test"]
    assert hung["status"] == "failed" and "StepTimeout" in hung["error"]
    assert "did not return within 1 s" in hung["error"] and "--step-timeout" in hung["error"]
    assert elapsed_s < 60  # the hung step was stopped, not waited for
