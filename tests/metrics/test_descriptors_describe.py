"""The one-call API: describe() and describe_windows() on the rendered C-major scale, noise, silence."""

from __future__ import annotations

import math

import numpy as np
import pytest

from metrics.descriptors import DESCRIPTOR_COLUMNS, DESCRIPTOR_INFO, STABILITY_COLUMNS, describe, describe_windows
from metrics.descriptors.info import CONTINUATION_COLUMNS
from tests.metrics.descriptor_audio import SAMPLE_RATE, c_major_scale_midis, sequence, white_noise


@pytest.fixture(scope="module")
def scale() -> np.ndarray:
    return sequence(c_major_scale_midis(), 120.0)  # 29 notes, 14.5 s


@pytest.fixture(scope="module")
def described(scale: np.ndarray) -> dict[str, float]:
    return describe(scale, SAMPLE_RATE)


def test_scale_known_answers(described: dict[str, float]) -> None:
    assert list(described) == list(DESCRIPTOR_COLUMNS)
    assert all(isinstance(v, float) for v in described.values())
    assert (described["key_tonic"], described["key_mode"]) == (0.0, 0.0)  # C major
    assert described["key_strength"] > 0.7
    assert described["tempo_bpm"] == pytest.approx(120.0, abs=3.0)
    assert described["pitched_fraction"] > 0.8
    assert described["pitch_range_semitones"] == pytest.approx(23.0, abs=0.5)
    assert described["pitch_class_entropy_bits"] == pytest.approx(math.log2(7), abs=0.05)
    assert described["onset_rate_hz"] == pytest.approx(2.0, abs=0.1)  # 28 of 29 onsets (none at t = 0)
    assert described["level_dbfs"] == pytest.approx(-18.3, abs=0.5)


def test_noise_and_silence() -> None:
    noise = describe(white_noise(3.0, seed=4), SAMPLE_RATE)
    assert noise["pitched_fraction"] < 0.05
    assert math.isnan(noise["pitch_range_semitones"])
    silence = describe(np.zeros((1, 3 * SAMPLE_RATE), np.float32), SAMPLE_RATE)  # (1, T) is mono too
    assert silence["pitched_fraction"] == 0.0
    assert silence["onset_rate_hz"] == 0.0
    assert silence["level_dbfs"] == -120.0
    for key in ("key_tonic", "key_mode", "key_strength", "tempo_bpm", "pitch_range_semitones", "pitch_median_midi"):
        assert math.isnan(silence[key]), key


def test_windows_table_and_its_agreement_with_describe(scale: np.ndarray, described: dict[str, float]) -> None:
    windows = describe_windows(scale, SAMPLE_RATE, 5.0, 2.5)
    assert list(windows.columns) == ["window", "start_s", "end_s", *DESCRIPTOR_COLUMNS, "key"]
    assert list(windows["start_s"]) == [0.0, 2.5, 5.0, 7.5]  # the partial window from 10 s is dropped
    assert list(windows["end_s"]) == [5.0, 7.5, 10.0, 12.5]
    assert (windows["pitched_fraction"] > 0.75).all()
    # the window holding the top of the scale (A5-C6) reads least pitched: PESTO's register ends near C6
    assert int(np.argmin(windows["pitched_fraction"])) == 2
    np.testing.assert_allclose(windows["tempo_bpm"], 120.0, atol=3.0)
    # a window reads (nearly) what describe() reads on the same samples cut out
    alone = describe(scale[: 5 * SAMPLE_RATE], SAMPLE_RATE)
    first = windows.iloc[0]
    assert first["pitched_fraction"] == pytest.approx(alone["pitched_fraction"], abs=0.03)
    assert first["tempo_bpm"] == pytest.approx(alone["tempo_bpm"], abs=1.0)
    assert (first["key_tonic"], first["key_mode"]) == (alone["key_tonic"], alone["key_mode"])
    assert first["level_dbfs"] == pytest.approx(alone["level_dbfs"], abs=1e-6)


def test_windows_errors(scale: np.ndarray) -> None:
    with pytest.raises(ValueError, match="shorter than one window"):
        describe_windows(scale[:SAMPLE_RATE], SAMPLE_RATE, 5.0, 5.0)
    with pytest.raises(ValueError, match="window_s and hop_s"):
        describe_windows(scale, SAMPLE_RATE, 5.0, 0.0)


def test_every_descriptor_has_a_unit_and_a_direction_entry() -> None:
    for name in (*DESCRIPTOR_COLUMNS, *STABILITY_COLUMNS, *CONTINUATION_COLUMNS):
        info = DESCRIPTOR_INFO[name]
        assert info.name == name and info.unit and info.description
        assert info.higher_is_better in (True, False, None)
    assert DESCRIPTOR_INFO["key_agreement_fraction"].higher_is_better is True
    assert DESCRIPTOR_INFO["tempo_cv"].higher_is_better is False
