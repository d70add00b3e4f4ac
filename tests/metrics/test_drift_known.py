"""Known-drift validation: generators that degrade on a schedule we control are caught on time.

The drift pipeline (streams through the runner -> block-aligned windows -> log-mel KAD/FAD and
signal statistics -> band rule and slopes) must find the onset of each degradation within one
window, with the right slope sign, and must not flag the undegraded control.
"""

from __future__ import annotations

import math

import pandas as pd
import pytest

from baselines.degrading import (
    NoiseCollapseGenerator, SilenceCollapseGenerator, SyntheticMusicGenerator, TiltDriftGenerator,
)
from bench.app.drift.score import run_drift

WINDOW_S = 2.0
DRIFT = {"horizon_s": 20.0, "window_s": WINDOW_S, "hop_s": WINDOW_S, "n_streams": 2}
ONSET_S = 9.0  # inside window 4 (8-10 s), not on a window boundary
SCHEDULE = {"onset_s": ONSET_S, "ramp_s": 0.5}


@pytest.fixture(scope="module")
def results() -> dict[str, object]:
    out = {}
    for cls in (SyntheticMusicGenerator, TiltDriftGenerator, SilenceCollapseGenerator, NoiseCollapseGenerator):
        out[cls.name] = run_drift(cls, "tiny", "smoke", drift_overrides=DRIFT, generator_kwargs=SCHEDULE)
    return out


def row(result, metric: str) -> pd.Series:
    return result.summary.set_index("metric").loc[metric]


def assert_onset(result, metric: str, direction: str) -> None:
    r = row(result, metric)
    assert r["drifted"], f"{metric} did not degrade: {r.to_dict()}"
    assert abs(r["time_to_degrade_s"] - ONSET_S) <= WINDOW_S, f"{metric}: onset {r['time_to_degrade_s']} vs {ONSET_S}"
    assert r["degrade_direction"] == direction
    if direction == "up":
        assert r["slope_per_min"] > 0 and r["slope_ci_low"] > 0, r.to_dict()
    else:
        assert r["slope_per_min"] < 0 and r["slope_ci_high"] < 0, r.to_dict()


def test_the_control_does_not_drift(results) -> None:
    summary = results["drift-control"].summary
    assert not summary["drifted"].any(), summary[summary["drifted"]][["metric", "time_to_degrade_s", "degrade_value"]]
    # and its slopes are consistent with zero where they are defined
    finite = summary[summary["slope_ci_low"].notna()]
    contains_zero = (finite["slope_ci_low"] <= 0) & (finite["slope_ci_high"] >= 0)
    assert contains_zero.all(), finite[["metric", "slope_ci_low", "slope_ci_high"]]


@pytest.mark.parametrize(
    "metric", ["spectral_centroid_hz", "spectral_flatness", "kad_logmel", "fad_logmel", "self_kad_logmel"]
)
def test_tilt_onset_and_slope_sign(results, metric: str) -> None:
    assert_onset(results["drift-tilt"], metric, "up")


def test_silence_collapse_trips_the_signal_statistics(results) -> None:
    result = results["collapse-silence"]
    assert_onset(result, "silence_ratio", "up")
    assert_onset(result, "loudness_lufs", "down")
    assert row(result, "silence_ratio")["last"] == 1.0 and row(result, "loudness_lufs")["last"] == -70.0
    # silent windows have no embedding: reported as NaN with a note, never as a number
    last = result.windows.iloc[-1]
    assert math.isnan(last["kad_logmel"]) and "not embedded" in last["notes"]


def test_noise_collapse_trips_the_signal_statistics(results) -> None:
    result = results["collapse-noise"]
    for metric in ("spectral_flatness", "clipping_ratio", "loudness_lufs"):
        assert_onset(result, metric, "up")
    assert row(result, "spectral_flatness")["last"] > 0.9 and row(result, "clipping_ratio")["last"] > 0.1


def test_windows_before_the_onset_equal_the_control(results) -> None:
    control, tilt = results["drift-control"].windows, results["drift-tilt"].windows
    before = control["end_s"] <= ONSET_S
    cols = ["kad_logmel", "fad_logmel", "loudness_lufs", "spectral_centroid_hz", "spectral_flatness"]
    pd.testing.assert_frame_equal(control.loc[before, cols], tilt.loc[before, cols])


def test_columns_name_the_weight_free_embedder(results) -> None:
    result = results["drift-control"]
    assert not any(c in result.windows.columns for c in ("kad", "fad", "fad_ci_low"))
    assert result.config["embedder"] == "logmel" and result.config["embedder_pretrained"] is False
    assert "synthetic" in result.config["reference"]
