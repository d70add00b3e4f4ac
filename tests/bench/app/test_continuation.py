"""The continuation stage on the tiny preset with a stand-in data set: files, twins, failures, the table."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import baselines.data.build as data_build
from baselines.noise import NoiseGenerator
from bench.app.continuation import ContinuationSettings, _systems, run_continuation_stage
from bench.core.errors import ConfigError
from bench.core.presets import get_preset
from bench.core.registry import GENERATORS
from bench.core.run_folder import RunSet, load_run
from bench.core.storage import write_json
from bench.core.workloads import get_workloads
from reports.continuation_table import continuation_table
from tests.metrics.descriptor_audio import harmonic_note

RATE = 8000


class FakeDataset:
    """Four 2 s reference clips at the tiny preset's rate: one chord each."""

    sample_rate = RATE

    def clips(self, split=None):  # noqa: ANN001
        return [{"id": f"clip{i}", "short_prompt": "piano", "split": "reference"} for i in range(4)]

    def read(self, clip):  # noqa: ANN001
        root = 60 + 2 * int(clip["id"][-1])
        return harmonic_note([root, root + 4, root + 7], 2.0, RATE, decay_per_s=0.3)


class FailingNoise(NoiseGenerator):
    def step(self, state, control, recorder=None):  # noqa: ANN001
        raise RuntimeError("no music today")


class HangingNoise(NoiseGenerator):
    def step(self, state, control, recorder=None):  # noqa: ANN001
        time.sleep(60)  # far past the test's one-second step limit
        return super().step(state, control)


@pytest.fixture()
def dataset(monkeypatch):
    monkeypatch.setattr(data_build, "load_dataset", lambda root=None: FakeDataset())
    GENERATORS.register("failing-test", FailingNoise)
    GENERATORS.register("hanging-test", HangingNoise)
    yield
    GENERATORS.unregister("failing-test")
    GENERATORS.unregister("hanging-test")


def _run_folder(out: Path) -> Path:
    write_json(out / "manifest.json", {"kind": "manifest", "created_utc": "2026-12-02T00:00:00Z", "git": {}})
    return out


def test_stage_scores_every_system_records_failures_and_renders(tmp_path: Path, dataset) -> None:
    out = _run_folder(tmp_path / "run")
    settings = ContinuationSettings(clips=3, blocks=2, n_boot=50)
    failed = run_continuation_stage(out, get_preset("tiny"), get_workloads("smoke")[0],
                                    ["outpaint", "noise", "failing-test"], settings=settings)
    assert [s["system"] for s in failed] == ["failing-test"] and "no music today" in failed[0]["error"]
    folder = out / "continuation"
    scores = pd.read_parquet(folder / "scores.parquet")
    assert list(scores["generator"]) == ["true continuation", "outpaint", "noise"]
    assert list(scores["weights"]) == ["-", "random init", "-"]  # tiny has seeded weights: no twin
    assert (scores["n_clips"] == 3).all() and scores["pitched_fraction"].between(0, 1).all()
    truth = scores.iloc[0]
    assert truth["follows_context"] and truth["pitched_fraction"] > 0.8
    config = json.loads((folder / "config.json").read_text())
    assert config["measured"] and config["clip_ids"] == ["clip0", "clip1", "clip2"]
    assert config["generated_s"] == pytest.approx(0.25) and "Traceback" in config["statuses"][-1]["traceback"]
    for example in config["examples"].values():
        assert (folder / example).is_file()
    table = continuation_table(RunSet([load_run(out)]))
    assert list(table.data["generator"]) == ["true continuation", "outpaint", "noise"]
    markdown = table.to_markdown()
    assert "failing-test: failed (RuntimeError: no music today)" in markdown and "(ceiling)" in markdown
    assert not table.best_mask().iloc[0].any()  # the true continuation is a reference, never "best"


def test_a_hanging_generator_fails_at_the_step_time_limit(tmp_path: Path, dataset) -> None:
    out = _run_folder(tmp_path / "run")
    started = time.perf_counter()
    failed = run_continuation_stage(out, get_preset("tiny"), get_workloads("smoke")[0], ["hanging-test", "noise"],
                                    settings=ContinuationSettings(clips=2, blocks=1, n_boot=20), step_timeout_s=1.0)
    assert time.perf_counter() - started < 60  # stopped, not waited for
    assert [s["system"] for s in failed] == ["hanging-test"]
    assert "hanging-test's step() on clip 0, block 0 did not return within 1 s" in failed[0]["error"]
    assert "--step-timeout" in failed[0]["error"]
    scores = pd.read_parquet(out / "continuation" / "scores.parquet")
    assert list(scores["generator"]) == ["true continuation", "noise"]  # the others are scored


def test_trained_regimes_get_a_random_init_twin() -> None:
    preset = get_preset("cpu")  # names builtin:cpu weights (the noise generator ignores them)
    systems = [(g, label, p.dit.weights if g != "lmm" else p.lmm.weights)
               for g, label, p in _systems(preset, ["outpaint", "lmm", "noise"], twins=True)]
    assert systems == [("outpaint", "trained", "builtin:cpu"), ("outpaint", "random init", ""),
                       ("lmm", "trained", "builtin:cpu"), ("lmm", "random init", ""), ("noise", "-", "builtin:cpu")]
    assert len(_systems(preset, ["outpaint"], twins=False)) == 1
    # lmdm-causal-arc's random init is lmdm-causal's: one twin when both run, its own when alone
    both = [(g, label) for g, label, _ in _systems(preset, ["lmdm-causal", "lmdm-causal-arc"], twins=True)]
    assert both == [("lmdm-causal", "trained"), ("lmdm-causal", "random init"), ("lmdm-causal-arc", "trained")]
    alone = [(g, label) for g, label, _ in _systems(preset, ["lmdm-causal-arc"], twins=True)]
    assert alone == [("lmdm-causal-arc", "trained"), ("lmdm-causal-arc", "random init")]
    # the premise: the two random inits are the same network
    random_init = [p for g, label, p in _systems(preset, ["lmdm-causal-arc"], twins=True) if label == "random init"][0]
    causal, arc = (GENERATORS.create(g, random_init, random_init.settings) for g in ("lmdm-causal", "lmdm-causal-arc"))
    causal_params, arc_params = (dict(g.modules()[0].named_parameters()) for g in (causal, arc))
    assert causal_params.keys() == arc_params.keys()
    assert all(torch.equal(causal_params[k], arc_params[k]) for k in causal_params)
    assert type(arc).step is type(causal).step


def test_without_the_data_set_it_says_not_measured(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("LIVE_MUSIC_BENCH_CACHE", str(tmp_path / "empty-cache"))
    out = _run_folder(tmp_path / "run")
    assert run_continuation_stage(out, get_preset("tiny"), get_workloads("smoke")[0], ["noise"]) == []
    config = json.loads((out / "continuation" / "config.json").read_text())
    assert not config["measured"] and "python -m baselines.data build" in config["reason"]
    table = continuation_table(RunSet([load_run(out)]))
    assert table.empty and "not measured" in table.notes[0]


def test_the_kad_twin_ratio_uses_the_shared_random_init() -> None:
    from reports.continuation_table import _with_twin_ratio

    scores = pd.DataFrame({
        "generator": ["lmdm-causal", "lmdm-causal", "lmdm-causal-arc", "outpaint", "noise"],
        "weights": ["trained", "random init", "trained", "trained", "-"],
        "kad_logmel": [4.0, 40.0, 6.0, 3.0, 64.0],
    })
    ratio = _with_twin_ratio(scores)["kad_vs_twin"].tolist()
    assert ratio[0] == 0.1 and np.isnan(ratio[1]) and ratio[2] == 0.15  # arc over lmdm-causal's twin
    assert np.isnan(ratio[3]) and np.isnan(ratio[4])  # outpaint has no twin here; noise never has one


@pytest.mark.parametrize("bad, words", [({"clips": 1}, "clips"), ({"blocks": 0}, "blocks"), ({"n_boot": 2}, "n_boot")])
def test_impossible_settings_name_the_field(bad, words) -> None:
    with pytest.raises(ConfigError, match=words):
        ContinuationSettings(**bad)


def test_without_the_descriptor_packages_it_says_not_measured(tmp_path: Path, dataset, monkeypatch) -> None:
    import metrics.continuation_scores as scores

    def missing(*args, **kwargs):  # noqa: ANN002, ANN003
        raise ImportError("No module named 'pesto'")

    monkeypatch.setattr(scores, "ContinuationScorer", missing)
    out = _run_folder(tmp_path / "run")
    assert run_continuation_stage(out, get_preset("tiny"), get_workloads("smoke")[0], ["noise"]) == []
    config = json.loads((out / "continuation" / "config.json").read_text())
    assert not config["measured"] and "pesto" in config["reason"] and "--no-continuation" in config["reason"]


def test_resume_skips_a_complete_stage_with_the_same_generators(tmp_path: Path, monkeypatch) -> None:
    import bench.app.execute as execute

    out = tmp_path / "run"
    (out / "continuation").mkdir(parents=True)
    write_json(out / "continuation" / "config.json", {
        "measured": True, "settings": __import__("dataclasses").asdict(ContinuationSettings()), "workload": "smoke",
        "statuses": [{"system": "noise", "generator": "noise", "status": "ok"},
                     {"system": "outpaint (trained)", "generator": "outpaint", "status": "ok"},
                     {"system": "outpaint (random init)", "generator": "outpaint", "status": "ok"}]})
    ran = []
    monkeypatch.setattr(execute, "run_continuation_stage", lambda *a, **k: ran.append(a) or [])

    class Plan:  # the fields _continuation reads
        class config:  # noqa: N801
            resume = True
            step_timeout_s = 600.0
        workloads = get_workloads("smoke")
        generators = ["outpaint", "noise"]
        preset, device, dtype = get_preset("tiny"), "cpu", None

    assert execute._continuation(Plan, out) == [] and ran == []  # skipped
    Plan.generators = ["outpaint", "noise", "lmm"]  # another generator: run again
    execute._continuation(Plan, out)
    assert len(ran) == 1
