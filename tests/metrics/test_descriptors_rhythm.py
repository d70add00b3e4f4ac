"""Onset rate and tempo on rendered note sequences of known tempo."""

from __future__ import annotations

import numpy as np
import pytest

from metrics.descriptors.rhythm import (
    beat_times_s, onset_envelope, onset_rate_hz, onset_times_s, tempo_bpm, tempo_from_beats,
)
from tests.metrics.descriptor_audio import SAMPLE_RATE, c_major_scale_midis, sequence, white_noise


@pytest.mark.parametrize("bpm", [120.0, 96.0, 140.0])
def test_tempo_of_one_note_per_beat(bpm: float) -> None:
    envelope = onset_envelope(sequence(c_major_scale_midis(), bpm), SAMPLE_RATE)
    assert tempo_bpm(envelope) == pytest.approx(bpm, abs=3.0)


def test_tempo_is_refined_below_the_frame_quantisation() -> None:
    envelope = onset_envelope(sequence(c_major_scale_midis(), 120.0), SAMPLE_RATE)
    # a lag of whole 16 ms frames can give 117.2 or 121.0 bpm, never 120; the beat span can
    assert tempo_bpm(envelope) == pytest.approx(120.0, abs=0.5)


def test_onsets_fall_on_the_notes() -> None:
    bpm, midis = 120.0, c_major_scale_midis()
    audio = sequence(midis, bpm)
    envelope = onset_envelope(audio, SAMPLE_RATE)
    onsets = onset_times_s(envelope)
    note_starts = np.arange(len(midis)) * 60.0 / bpm
    # every note after the first is found within 50 ms (the first starts the clip: no flux before it)
    nearest = np.abs(onsets[:, None] - note_starts[None, 1:]).min(axis=0)
    assert nearest.max() < 0.05
    assert len(midis) - 1 <= onsets.shape[0] <= len(midis)
    duration_s = audio.shape[0] / SAMPLE_RATE
    assert onset_rate_hz(envelope, duration_s) == pytest.approx(2.0, abs=0.1)


def test_silence_has_no_onsets_or_beats() -> None:
    envelope = onset_envelope(np.zeros(3 * SAMPLE_RATE, np.float32), SAMPLE_RATE)
    assert onset_rate_hz(envelope, 3.0) == 0.0
    assert beat_times_s(envelope).shape == (0,)
    assert np.isnan(tempo_bpm(envelope))


def test_tempo_from_beats_absorbs_a_skipped_beat_and_needs_enough_beats() -> None:
    beats = np.arange(12) * 0.5  # 120 bpm
    assert tempo_from_beats(beats) == pytest.approx(120.0)
    assert tempo_from_beats(np.delete(beats, 5)) == pytest.approx(120.0)  # one beat missed: a 1 s gap
    assert np.isnan(tempo_from_beats(beats[:3], min_beats=4))


def test_noise_rate_is_finite_and_envelope_windows_by_time() -> None:
    envelope = onset_envelope(white_noise(4.0), SAMPLE_RATE)
    assert np.isfinite(onset_rate_hz(envelope, 4.0))
    part = envelope.window(1.0, 2.0)
    assert part.times_s.min() >= 1.0 and part.times_s.max() < 2.0
    assert part.strength.shape[0] == pytest.approx(1.0 / 0.016, abs=1)
    with pytest.raises(ValueError, match="duration_s"):
        onset_rate_hz(envelope, 0.0)
