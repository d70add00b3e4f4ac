"""Music descriptors per stream window: the key-drift pair against each stream's first window, the
unreadable-window path, the reference rows and the per-stream stability table."""

from __future__ import annotations

import math
import tracemalloc

import numpy as np
import pandas as pd
import pytest

from baselines.degrading import render_tonal_music
from metrics.descriptors import DESCRIPTOR_COLUMNS
from metrics.drift.descriptor_columns import STABILITY_TABLE_COLUMNS, STREAM_WINDOW_COLUMNS
from metrics.drift.descriptor_windows import WindowDescriber, describe_reference, key_name, stream_stability

RATE = 8000
PROMPT = "bach chorale, organ"


def window(seconds: float, start_s: float = 0.0, transpose: int = 0, seed: int = 0) -> np.ndarray:
    """(1, samples) of the tonal music."""
    audio = render_tonal_music(RATE, seed, PROMPT, int(start_s * RATE), int(seconds * RATE), transpose=transpose)
    return audio[None, :].astype(np.float32)


@pytest.fixture(scope="module")
def described() -> dict[str, tuple[dict, str]]:
    d = WindowDescriber(pitch_step_ms=40.0)
    out = {
        "first": d.describe_window(window(5.0), RATE, stream=0, index=0),
        "same": d.describe_window(window(5.0, 5.0), RATE, stream=0, index=1),
        "moved": d.describe_window(window(5.0, 10.0, transpose=6), RATE, stream=0, index=2),
        "other_stream": d.describe_window(window(5.0, 5.0, seed=1), RATE, stream=1, index=1),  # stream 1 has no anchor
    }
    bad = window(5.0, 15.0)
    bad[0, 100] = np.nan
    out["broken"] = d.describe_window(bad, RATE, stream=0, index=3)
    return out


def test_key_drift_is_measured_against_the_first_window(described) -> None:
    first, note = described["first"]
    assert note == "" and set(STREAM_WINDOW_COLUMNS) <= set(first)
    assert first["key"] != "none" and math.isnan(first["key_same_as_first"]) and math.isnan(first["chroma_corr_first"])
    same, _ = described["same"]
    assert same["key"] == first["key"] and same["key_same_as_first"] == 1.0 and same["chroma_corr_first"] > 0.8
    moved, _ = described["moved"]  # a tritone away: another key, anti-correlated chroma
    assert moved["key"] != first["key"] and moved["key_same_as_first"] == 0.0 and moved["chroma_corr_first"] < 0.0
    assert first["pitched_fraction"] > 0.8 and 0.8 < first["key_strength"] <= 1.0
    other, _ = described["other_stream"]
    assert math.isnan(other["key_same_as_first"])  # anchors are per stream


def test_an_unreadable_window_is_nan_with_a_note(described) -> None:
    row, note = described["broken"]
    assert "stream 0: no descriptors" in note and "NaN" in note
    assert row["key"] == "none" and all(math.isnan(row[c]) for c in DESCRIPTOR_COLUMNS)


def test_reference_rows_and_key_names() -> None:
    rows = describe_reference([window(2.0), np.zeros((1, 2 * RATE), np.float32)], RATE, WindowDescriber())
    assert rows["clip"].tolist() == [0, 1] and rows["duration_s"].tolist() == [2.0, 2.0]
    assert rows.pitched_fraction[0] > 0.5 and rows.pitched_fraction[1] == 0.0 and rows.key[1] == "none"
    assert key_name(6.0, 0.0) == "F# major" and key_name(9.0, 1.0) == "A minor" and key_name(math.nan, math.nan) == "none"


def test_stream_stability_counts_and_dates_key_changes() -> None:
    nan = math.nan
    table = pd.DataFrame({
        "stream": [0] * 5 + [1] * 3,
        "window_index": [0, 1, 2, 3, 4, 0, 1, 2],
        "start_s": [0, 10, 20, 30, 40, 0, 10, 20], "end_s": [10, 20, 30, 40, 50, 10, 20, 30],
        "key_tonic": [0, 0, nan, 6, 6, 9, 9, 9], "key_mode": [0, 0, nan, 0, 0, 1, 1, 1],
        "tempo_bpm": [120, 120, nan, 90, 90, 100, 100, 100], "onset_rate_hz": [2, 2, 0, 2, 2, 1, 1, 1],
    })
    out = stream_stability(table).set_index("stream")
    assert list(out.reset_index().columns) == list(STABILITY_TABLE_COLUMNS)
    a, b = out.loc[0], out.loc[1]
    assert a.key_changes == 1 and a.first_key_change_s == 25.0 and a.key_change_times_s == "25"  # 15 s and 35 s centres
    assert a.n_windows == 5 and a.n_windows_with_key == 4 and a.key_agreement_fraction == 0.5
    assert a.modal_key == "C major" and a.tempo_cv == pytest.approx(np.std([120, 120, 90, 90], ddof=1) / 105)
    assert b.key_changes == 0 and math.isnan(b.first_key_change_s) and b.key_change_times_s == ""
    assert b.modal_key == "A minor" and b.key_agreement_fraction == 1.0


@pytest.mark.slow
def test_a_stream_keeps_nothing_of_its_windows_but_the_anchor() -> None:
    """Python-side memory (numpy arrays included, via tracemalloc) after each of 8 windows grows by
    far less than one window's audio: the describer keeps no window, so memory does not grow with
    the horizon. (tests/bench/app/test_drift_memory.py shows the same for the stream path over
    30 minutes, without descriptors; torch's own buffers are not traced here.)"""
    d = WindowDescriber(pitch_step_ms=40.0)
    seconds = 5.0
    for i in range(2):  # PESTO, librosa's filters and numba's functions load on the first windows
        d.describe_window(window(seconds, seconds * i), RATE, stream=0, index=i)
    window_bytes = int(seconds * RATE) * 4  # one float32 window
    tracemalloc.start()
    try:
        traced = []
        for i in range(2, 10):
            d.describe_window(window(seconds, seconds * i, transpose=i % 3), RATE, stream=0, index=i)
            traced.append(tracemalloc.get_traced_memory()[0])
    finally:
        tracemalloc.stop()
    growth_per_window = (traced[-1] - traced[0]) / (len(traced) - 1)
    assert growth_per_window < 0.2 * window_bytes, [t // 1024 for t in traced]
