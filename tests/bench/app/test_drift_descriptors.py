"""Music descriptors in the drift stage: a key change mid-stream is found within one window (per-window
key drift, its time to degrade, and the per-stream key stability), the tonal control shows none,
the descriptor columns and tables are saved, and the descriptor budget is a validated drift field."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import soundfile as sf

from bench.app.drift.config import DEFAULT_PITCH_STEP_MS, drift_workload_for
from bench.app.drift.stage import run_drift_stage
from bench.core.errors import ConfigError
from bench.core.presets import get_preset
from bench.core.workloads import get_workloads
from metrics.descriptors import DESCRIPTOR_COLUMNS
from metrics.drift.descriptor_columns import STABILITY_TABLE_COLUMNS, WINDOW_MEAN_COLUMNS

WINDOW_S = 5.0  # a window holds the whole I-IV-V-I cadence of the tonal music (2 s windows do not)
ONSET_S = 20.0  # key-change's default onset (ramp 2 s): the modulation starts in window 4 (20-25 s)
DRIFT = {"horizon_s": 35.0, "window_s": WINDOW_S, "hop_s": WINDOW_S, "n_streams": 2, "descriptors": True}


@pytest.fixture(scope="module")
def stage(tmp_path_factory) -> Path:
    """The drift stage on the key-change generator and its tonal control (tiny preset, 8 kHz)."""
    out = tmp_path_factory.mktemp("drift-music")
    run_drift_stage(out, get_preset("tiny"), get_workloads("smoke"), ["key-change", "tonal-control"],
                    drift_overrides=DRIFT)
    return out / "drift"


def summary_row(folder: Path, generator: str, metric: str) -> pd.Series:
    summary = pd.read_parquet(folder / "summary.parquet")
    return summary[(summary.generator == generator) & (summary.metric == metric)].iloc[0]


@pytest.mark.slow
def test_the_key_change_is_found_within_one_window(stage: Path) -> None:
    for metric in ("key_same_as_first", "chroma_corr_first"):
        row = summary_row(stage, "key-change", metric)
        assert row.drifted and row.degrade_direction == "down", row.to_dict()
        assert abs(row.time_to_degrade_s - ONSET_S) <= WINDOW_S, row.to_dict()
        assert row.slope_ci_high < 0, row.to_dict()  # the slope's CI excludes 0, downwards
    stability = pd.read_parquet(stage / "stream_stability.parquet")
    mine = stability[stability.generator == "key-change"]
    assert len(mine) == 2 and (mine.key_changes == 1).all(), mine.to_dict("records")
    assert ((mine.first_key_change_s - ONSET_S).abs() <= WINDOW_S).all(), mine.first_key_change_s.tolist()
    windows = pd.read_parquet(stage / "stream_windows.parquet")
    for _, s in windows[windows.generator == "key-change"].groupby("stream"):
        keys = s.sort_values("window_index").key.tolist()
        assert keys[0] != "none" and keys[-1] != "none" and keys[0] != keys[-1]  # home key, then another one
    music = (stage / "drift.md").read_text().split("Music over stream time")[1]
    row = next(line for line in music.splitlines() if line.startswith("| key-change |"))
    assert row.count("1 (at ") == 2  # the stability summary: one key change in each stream, dated


@pytest.mark.slow
def test_the_tonal_control_keeps_its_key(stage: Path) -> None:
    stability = pd.read_parquet(stage / "stream_stability.parquet")
    control = stability[stability.generator == "tonal-control"]
    assert (control.key_changes == 0).all() and (control.key_agreement_fraction == 1.0).all()
    assert control.first_key_change_s.isna().all() and (control.key_change_times_s == "").all()
    summary = pd.read_parquet(stage / "summary.parquet")
    music = summary[(summary.generator == "tonal-control") & summary.metric.isin(WINDOW_MEAN_COLUMNS)]
    assert set(music.metric) == set(WINDOW_MEAN_COLUMNS)
    assert not music.drifted.any(), music[music.drifted][["metric", "time_to_degrade_s"]]
    windows = pd.read_parquet(stage / "stream_windows.parquet")
    assert (windows[windows.generator == "tonal-control"].pitched_fraction > 0.8).all()  # harmonic tones, in register


@pytest.mark.slow
def test_descriptor_columns_and_tables_are_saved(stage: Path) -> None:
    stream_windows = pd.read_csv(stage / "stream_windows.csv")
    for column in (*DESCRIPTOR_COLUMNS, "key", "key_same_as_first", "chroma_corr_first"):
        assert column in stream_windows, column
    assert stream_windows.loc[stream_windows.window_index == 0, "key_same_as_first"].isna().all()  # the anchor
    windows = pd.read_csv(stage / "windows.csv")
    for column in WINDOW_MEAN_COLUMNS:
        assert {column, f"{column}_ci_low", f"{column}_ci_high"} <= set(windows.columns), column
    stability = pd.read_csv(stage / "stream_stability.csv")
    assert list(stability.columns[:3]) == ["generator", "stream", "seed"]
    assert set(STABILITY_TABLE_COLUMNS) <= set(stability)
    reference = pd.read_parquet(stage / "reference_descriptors.parquet")
    assert len(reference) == 8 and reference.pitched_fraction.notna().all()
    config = json.loads((stage / "config.json").read_text())
    assert config["drift"]["descriptors"] is True
    assert config["drift"]["descriptor_pitch_step_ms"] == DEFAULT_PITCH_STEP_MS
    assert "pesto-pitch" in config["scoring"]["descriptors"] and "step=40ms" in config["scoring"]["descriptors"]
    clip, rate = sf.read(stage / config["reference_audio"]["path"], dtype="float32")
    assert rate == 8000 and clip.shape[0] == round(WINDOW_S * rate) and clip.std() > 0.01


def test_descriptor_budget_is_a_validated_drift_field() -> None:
    smoke, default = get_workloads("smoke")[0], get_workloads("default")[0]
    assert drift_workload_for(smoke).descriptors is False  # 2 s windows: too short for a key or a tempo
    on = drift_workload_for(default)
    assert on.descriptors is True and on.descriptor_pitch_step_ms == DEFAULT_PITCH_STEP_MS
    custom = drift_workload_for(default, {"descriptors": "false", "descriptor_pitch_step_ms": "10"})
    assert custom.descriptors is False and custom.descriptor_pitch_step_ms == 10.0
    assert custom.fingerprint() != on.fingerprint() and custom.to_dict()["descriptor_pitch_step_ms"] == 10.0
    with pytest.raises(ConfigError, match="descriptor_pitch_step_ms"):
        drift_workload_for(default, {"descriptor_pitch_step_ms": "0"})
    with pytest.raises(ConfigError, match="drift.descriptors"):
        drift_workload_for(default, {"descriptors": "maybe"})
