"""Stability over a stream: a modulation C major -> F# major, a tempo change, silent windows."""

from __future__ import annotations

import numpy as np
import pytest

from metrics.descriptors import DescriptorConfig, describe_windows, key_stability, stability
from metrics.descriptors.stability import coefficient_of_variation, key_stability_of
from tests.metrics.descriptor_audio import SAMPLE_RATE, c_major_scale_midis, cadence, sequence

NO_PITCH = DescriptorConfig(with_pitch=False)  # key and tempo need no pitch model: keep these tests fast
CHANGE_S = 20.0


def cadences(tonic_midi: int, seconds: float, bpm: float = 120.0) -> np.ndarray:
    """I-IV-V-I repeated, one chord per beat, ``seconds`` long."""
    n_beats = int(round(seconds * bpm / 60.0))
    return sequence((cadence(tonic_midi) * n_beats)[:n_beats], bpm)


@pytest.fixture(scope="module")
def modulating_stream() -> np.ndarray:
    return np.concatenate([cadences(60, CHANGE_S), cadences(66, CHANGE_S)])  # C major, then F# major


def test_a_modulation_halves_key_agreement_and_is_found_at_its_time(modulating_stream: np.ndarray) -> None:
    windows = describe_windows(modulating_stream, SAMPLE_RATE, 5.0, 5.0, config=NO_PITCH)
    assert list(windows["key"]) == ["C major"] * 4 + ["F# major"] * 4
    result = stability(windows)
    assert result["key_agreement_fraction"] == pytest.approx(0.5)
    assert result["key_changes"] == 1.0
    assert (result["modal_key_tonic"], result["modal_key_mode"]) == (0.0, 0.0)  # tie: the first key wins
    keys = key_stability(modulating_stream, SAMPLE_RATE, 5.0, 5.0)
    assert keys.change_times_s == pytest.approx((CHANGE_S,))
    assert keys.modal_key == "C major" and keys.n_windows == keys.n_with_key == 8


def test_overlapping_windows_find_one_change_within_one_window(modulating_stream: np.ndarray) -> None:
    window_s = 5.0
    keys = key_stability(modulating_stream, SAMPLE_RATE, window_s, 2.5)
    assert keys.n_windows == 15
    assert keys.n_changes == 1
    assert abs(keys.change_times_s[0] - CHANGE_S) <= window_s
    assert keys.agreement_fraction == pytest.approx(0.5, abs=0.05)


def test_a_steady_key_is_fully_stable() -> None:
    keys = key_stability(cadences(57, 12.0), SAMPLE_RATE, 4.0, 2.0)
    assert keys.agreement_fraction == 1.0 and keys.n_changes == 0 and keys.modal_key == "A major"


def test_tempo_change_shows_in_the_tempo_cv() -> None:
    steady = np.concatenate([sequence(c_major_scale_midis()[:24], 120.0)] * 2)  # 24 s at 120 bpm
    changing = np.concatenate([sequence(c_major_scale_midis()[:24], 120.0), sequence(c_major_scale_midis()[:18], 90.0)])
    w_steady = describe_windows(steady, SAMPLE_RATE, 6.0, 6.0, config=NO_PITCH)
    w_changing = describe_windows(changing, SAMPLE_RATE, 6.0, 6.0, config=NO_PITCH)
    np.testing.assert_allclose(w_changing["tempo_bpm"], [120, 120, 90, 90], atol=3.0)
    expected_cv = np.std([120, 120, 90, 90], ddof=1) / 105.0  # 0.165
    assert stability(w_changing)["tempo_cv"] == pytest.approx(expected_cv, abs=0.02)
    assert stability(w_steady)["tempo_cv"] < 0.01
    # onset rate follows the tempo: 2 Hz, then 1.5 Hz
    np.testing.assert_allclose(w_changing["onset_rate_hz"][1:], [2.0, 1.5, 1.5], atol=0.1)
    # (the steady stream varies only because its first window misses the onset at t = 0)
    assert stability(w_changing)["onset_rate_cv"] > 3 * stability(w_steady)["onset_rate_cv"]


def test_silent_windows_have_no_key_and_are_left_out() -> None:
    stream = np.concatenate([cadences(60, 8.0), np.zeros(8 * SAMPLE_RATE, np.float32), cadences(60, 8.0)])
    windows = describe_windows(stream, SAMPLE_RATE, 4.0, 4.0, config=NO_PITCH)
    assert list(windows["key"]) == ["C major"] * 2 + ["none"] * 2 + ["C major"] * 2
    silent = windows.iloc[2:4]
    assert (silent["onset_rate_hz"] == 0.0).all() and silent["tempo_bpm"].isna().all()
    assert (silent["level_dbfs"] == -120.0).all()
    result = stability(windows)
    assert result["key_agreement_fraction"] == 1.0 and result["key_changes"] == 0.0


def test_key_stability_of_counts_and_dates_changes() -> None:
    nan = float("nan")
    tonics = [0, 0, nan, 7, 7, 0]
    modes = [0, 0, nan, 0, 0, 0]
    starts = np.arange(6) * 10.0
    keys = key_stability_of(tonics, modes, starts, starts + 10.0)
    assert keys.n_with_key == 5 and keys.n_changes == 2
    assert keys.modal_key == "C major" and keys.agreement_fraction == pytest.approx(3 / 5)
    assert keys.change_times_s == pytest.approx((25.0, 50.0))  # between the centres 15|35 and 45|55
    none = key_stability_of([nan, nan], [nan, nan], [0.0, 1.0], [1.0, 2.0])
    assert none.modal_key == "none" and np.isnan(none.agreement_fraction) and none.n_changes == 0


def test_coefficient_of_variation() -> None:
    assert coefficient_of_variation([1.0, 2.0, 3.0]) == pytest.approx(0.5)
    assert coefficient_of_variation([4.0, float("nan"), 4.0]) == 0.0
    assert np.isnan(coefficient_of_variation([5.0]))
    assert np.isnan(coefficient_of_variation([1.0, -1.0]))


def test_stability_needs_a_windows_table() -> None:
    import pandas as pd

    with pytest.raises(ValueError, match="describe_windows"):
        stability(pd.DataFrame({"start_s": [0.0]}))
