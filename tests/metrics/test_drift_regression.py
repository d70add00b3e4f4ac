"""The drift regression API: baseline files, readable failures, and a real regime's broken variants."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from bench.app.drift.score import run_drift
from bench.core.contract import NULL_RECORDER
from bench.core.workloads import get_workloads
from metrics.drift.regression import (
    BaselineMismatch, DriftResult, Tolerance, assert_matches_baseline, compare_to_baseline, load_baseline,
    save_baseline,
)
from metrics.drift.summary import summarize_windows

DRIFT = {"horizon_s": 12.0, "window_s": 2.0, "hop_s": 2.0, "n_streams": 3}


def synthetic_result(values: list[float], generator: str = "g", **config) -> DriftResult:
    n = len(values)
    windows = pd.DataFrame({
        "window_index": np.arange(n), "start_s": np.arange(n) * 5.0, "end_s": np.arange(1, n + 1) * 5.0,
        "mid_s": np.arange(n) * 5.0 + 2.5, "loudness_lufs": values, "generator": generator,
    })
    summary = summarize_windows(windows, ["loudness_lufs"]).drop(columns=["generator"])
    base_config = {"window_s": 5.0, "hop_s": 5.0, "block_s": 1.0, "sample_rate": 16000, "embedder_identity": "x",
                   "reference": "r", "signal_stats": "s", "n_streams": 2, "prompts": ["p", "q"], "seeds": [0, 1]}
    base_config.update(config)
    return DriftResult(generator, windows.drop(columns=["generator"]), summary, base_config)


def test_baseline_round_trip_keeps_nan(tmp_path: Path) -> None:
    result = synthetic_result([-20.0, -20.1, math.nan, -19.9, -20.0])
    path = save_baseline(result, tmp_path / "b.json")
    json.loads(Path(path).read_text())  # strict JSON: NaN stored as null
    loaded = load_baseline(path)
    np.testing.assert_array_equal(loaded.windows["loudness_lufs"], result.windows["loudness_lufs"])
    assert compare_to_baseline(result, loaded).ok


def test_failure_message_names_metric_window_and_amount(tmp_path: Path) -> None:
    base = synthetic_result([-20.0, -20.1, -19.9, -20.0, -20.0, -20.1])
    save_baseline(base, tmp_path / "g.json")
    drifted = synthetic_result([-20.0, -20.1, -19.9, -20.0, -26.0, -30.0])
    with pytest.raises(AssertionError) as info:
        assert_matches_baseline(drifted, tmp_path / "g.json")
    message = str(info.value)
    assert "loudness_lufs" in message
    assert "from window 4 (20.0-25.0 s)" in message  # when
    assert "-26 vs -20 (-6)" in message and "by more than 1:" in message  # how much, against which tolerance
    assert "largest deviation -9.9 at 25.0 s" in message  # by how much, at its worst
    assert "degrades at 20.0 s (down" in message and "baseline: none within 30.0 s" in message
    # a looser tolerance on that metric lets it pass the value check
    loose = Tolerance(check_time_to_degrade=False).with_overrides(loudness_lufs=20.0)
    assert compare_to_baseline(drifted, base, loose).ok


def test_incomparable_baselines_are_refused(tmp_path: Path) -> None:
    base = synthetic_result([-20.0] * 6)
    with pytest.raises(BaselineMismatch, match="window_s: result 10.0 vs baseline 5.0"):
        compare_to_baseline(synthetic_result([-20.0] * 6, window_s=10.0), base)
    with pytest.raises(BaselineMismatch, match="horizon shorter"):
        compare_to_baseline(synthetic_result([-20.0] * 4), base)
    # other seeds are comparable (the comparison is meant to absorb seed-to-seed variation)
    assert compare_to_baseline(synthetic_result([-20.0] * 6, seeds=[5, 6]), base).ok
    with pytest.raises(FileNotFoundError, match="--drift-update-baselines"):
        load_baseline(tmp_path / "missing.json")


def test_interval_aware_comparison() -> None:
    base = synthetic_result([-20.0] * 4)
    obs = synthetic_result([-22.0] * 4)
    for r, half in ((base, 0.6), (obs, 0.6)):
        r.windows["loudness_lufs_ci_low"] = r.windows["loudness_lufs"] - half
        r.windows["loudness_lufs_ci_high"] = r.windows["loudness_lufs"] + half
    # values 2 LU apart but the intervals only 0.8 apart: within the 1 LU tolerance
    assert compare_to_baseline(obs, base, Tolerance(check_time_to_degrade=False)).ok
    obs.windows["loudness_lufs_ci_high"] = obs.windows["loudness_lufs"] + 0.1  # now 1.3 apart
    comparison = compare_to_baseline(obs, base, Tolerance(check_time_to_degrade=False))
    assert not comparison.ok and "intervals 1.3 apart" in comparison.message()


# ---------------------------------------------------------------------------------------------
# A real regime (lmdm-causal, tiny preset) against deliberately broken variants of itself


def _broken_context_class():
    from baselines.lmdm_causal import BlockCausalGenerator

    class FrozenContextCausal(BlockCausalGenerator):
        """A broken context policy: the generated block is never appended to the context, so every
        block is generated from the initial (silent) context."""

        def step(self, state, control, recorder=NULL_RECORDER):  # noqa: ANN001
            result, new_state = super().step(state, control, recorder)
            return result, dataclasses.replace(new_state, context=state.context)

    return FrozenContextCausal


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """The tiny model's ops are too small to gain from two threads, and on a shared 2-core machine
    two OpenMP threads spin-wait for each other (20x slower here); restored afterwards."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def causal_baseline() -> DriftResult:
    return run_drift("lmdm-causal", "tiny", "smoke", drift_overrides=DRIFT)


def test_determinism_same_seeds_identical_tables(causal_baseline: DriftResult) -> None:
    again = run_drift("lmdm-causal", "tiny", "smoke", drift_overrides=DRIFT)
    pd.testing.assert_frame_equal(again.windows, causal_baseline.windows, check_exact=True)
    pd.testing.assert_frame_equal(again.stream_windows, causal_baseline.stream_windows, check_exact=True)
    pd.testing.assert_frame_equal(again.summary, causal_baseline.summary, check_exact=True)
    assert compare_to_baseline(again, causal_baseline).ok


def test_unchanged_regime_passes_other_seeds_too(causal_baseline: DriftResult, tmp_path: Path) -> None:
    save_baseline(causal_baseline, tmp_path / "causal.json")
    other_seeds = run_drift("lmdm-causal", "tiny", "smoke", drift_overrides={**DRIFT, "seed": 100})
    assert other_seeds.config["seeds"] != causal_baseline.config["seeds"]
    assert_matches_baseline(other_seeds, tmp_path / "causal.json")


def test_broken_context_policy_fails(causal_baseline: DriftResult) -> None:
    broken = run_drift(_broken_context_class(), "tiny", "smoke", drift_overrides=DRIFT)
    broken.generator = broken.config["generator"] = "lmdm-causal"  # compared under the regime's name
    comparison = compare_to_baseline(broken, causal_baseline)
    assert not comparison.ok
    assert "fad_logmel" in {v.metric for v in comparison.violations}
    assert "from window 0 (0.0-2.0 s)" in comparison.message()


def test_fewer_steps_fails(causal_baseline: DriftResult) -> None:
    one_step = dataclasses.replace(get_workloads("smoke")[0], steps=1)
    comparison = compare_to_baseline(run_drift("lmdm-causal", "tiny", one_step, drift_overrides=DRIFT), causal_baseline)
    assert not comparison.ok
    assert {"loudness_lufs", "rms_dbfs"} & {v.metric for v in comparison.violations}, comparison.message()
