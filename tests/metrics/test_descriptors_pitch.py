"""PESTO pitch tracking and the pitch descriptors on known-answer audio (a rendered C-major scale)."""

from __future__ import annotations

import numpy as np
import pytest

from metrics.descriptors.config import DescriptorConfig
from metrics.descriptors.pesto_tracker import PitchTrack, PitchTracker, default_tracker
from metrics.descriptors.pitch import (
    histogram_entropy_bits, pitch_class_histogram, pitch_median_midi, pitch_range_semitones, pitched_fraction,
    pitched_mask,
)
from tests.metrics.descriptor_audio import (
    SAMPLE_RATE, c_major_scale_midis, harmonic_note, sequence, white_noise,
)

BPM = 120.0
BEAT_S = 60.0 / BPM


@pytest.fixture(scope="module")
def scale_track() -> PitchTrack:
    return default_tracker().track(sequence(c_major_scale_midis(), BPM), SAMPLE_RATE)


def test_frames_are_centred_every_10_ms(scale_track: PitchTrack) -> None:
    n_samples = len(c_major_scale_midis()) * int(BEAT_S * SAMPLE_RATE)
    assert len(scale_track) == n_samples // 160 + 1
    assert scale_track.hop_s == pytest.approx(0.010)
    np.testing.assert_allclose(scale_track.times_s[:3], [0.0, 0.01, 0.02])
    np.testing.assert_allclose(scale_track.f0_hz, 440.0 * 2 ** ((scale_track.midi - 69) / 12))


def test_each_note_median_pitch_within_25_cents(scale_track: PitchTrack) -> None:
    errors_cents = []
    for i, midi in enumerate(c_major_scale_midis()):
        # the middle of the note: skip 50 ms after the onset and before the next
        inside = (scale_track.times_s >= i * BEAT_S + 0.05) & (scale_track.times_s < (i + 1) * BEAT_S - 0.05)
        errors_cents.append(100.0 * (np.median(scale_track.midi[inside]) - midi))
    errors = np.abs(errors_cents)
    assert errors.max() < 25.0, f"worst note off by {errors.max():.1f} cents: {np.round(errors_cents, 1)}"


def test_detuned_notes_read_within_half_a_pesto_bin() -> None:
    # on clean tones PESTO's activations are nearly one-hot, so its pitch lands on its 1/3-semitone
    # bins: the error is at most half a bin (16.7 cents), not a continuous estimate
    detuned = [60.0, 60.1, 60.3, 60.5, 64.17, 69.33]
    track = default_tracker().track(sequence(detuned, BPM), SAMPLE_RATE)
    for i, midi in enumerate(detuned):
        inside = (track.times_s >= i * BEAT_S + 0.05) & (track.times_s < (i + 1) * BEAT_S - 0.05)
        median = float(np.median(track.midi[inside]))
        assert abs(median - midi) * 100.0 <= 100.0 / 6.0 + 0.1, f"{midi}: read {median}"
        assert abs(median * 3.0 - round(median * 3.0)) < 1e-3  # on a 1/3-semitone bin


def test_scale_is_pitched_with_its_two_octave_range_and_seven_classes(scale_track: PitchTrack) -> None:
    assert pitched_fraction(scale_track) > 0.9
    # C4..C6 sounded; the top C is 1 of 29 notes (< 5 % of frames), so p5..p95 is C4..B5 = 23
    assert pitch_range_semitones(scale_track) == pytest.approx(23.0, abs=0.5)
    assert pitch_median_midi(scale_track) == pytest.approx(71.0, abs=0.5)
    hist = pitch_class_histogram(scale_track)
    assert hist.sum() == pytest.approx(1.0)
    diatonic = [0, 2, 4, 5, 7, 9, 11]
    assert hist[diatonic].sum() > 0.99  # only the white keys sound
    assert np.argmax(hist) == 0  # C is sounded 5 times of 29, each other class 4 times
    assert histogram_entropy_bits(hist) == pytest.approx(np.log2(7), abs=0.05)


def test_counted_histogram_differs_only_in_weighting(scale_track: PitchTrack) -> None:
    counted = pitch_class_histogram(scale_track, DescriptorConfig(histogram_weighting="count"))
    weighted = pitch_class_histogram(scale_track)
    assert counted.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(counted, weighted, atol=0.01)  # confidences are ~1 on clean tones


def test_white_noise_is_not_pitched() -> None:
    track = default_tracker().track(white_noise(3.0, seed=1), SAMPLE_RATE)
    assert pitched_fraction(track) < 0.05
    assert np.isnan(pitch_range_semitones(track))  # too few pitched frames for a range


def test_silence_is_not_pitched_and_has_no_histogram() -> None:
    track = default_tracker().track(np.zeros(2 * SAMPLE_RATE, np.float32), SAMPLE_RATE)
    assert pitched_fraction(track) == 0.0
    assert np.all(track.confidence < 0.5)  # PESTO itself reads digital silence as unvoiced (~0.11)
    assert np.all(np.isnan(pitch_class_histogram(track)))
    assert np.isnan(histogram_entropy_bits(pitch_class_histogram(track)))


def test_energy_gate_turns_a_near_silent_tone_unpitched() -> None:
    loud = harmonic_note(69, 1.0, decay_per_s=0.0, amplitude=0.3)  # -11.6 dBFS RMS
    quiet = loud * 10 ** (-55 / 20)  # -66.6 dBFS: below the -60 dBFS gate
    tracker = default_tracker()
    t_loud, t_quiet = tracker.track(loud, SAMPLE_RATE), tracker.track(quiet, SAMPLE_RATE)
    assert pitched_fraction(t_loud) > 0.9
    # the level normalisation lifts it by 40 dB, so PESTO calls it confidently pitched ...
    assert np.median(t_quiet.confidence) > 0.9
    # ... and only the level gate on the original audio makes it read as silence
    assert pitched_fraction(t_quiet) == 0.0
    assert pitched_fraction(t_quiet, DescriptorConfig(gate_dbfs=-120.0)) > 0.9


def test_level_normalisation_makes_pitched_fraction_gain_invariant() -> None:
    scale = sequence(c_major_scale_midis()[:8], BPM)  # -18 dBFS
    noise = white_noise(2.0, seed=2, rms=0.56)  # -5 dBFS RMS
    normalised, raw = default_tracker(), PitchTracker(reference_dbfs=None)
    quiet_scale = scale * np.float32(10 ** (-22 / 20))  # -40 dBFS: still above the gate
    # raw PESTO: a quiet scale loses its voicing and loud noise gains one
    assert pitched_fraction(raw.track(quiet_scale, SAMPLE_RATE)) < 0.1
    assert pitched_fraction(raw.track(noise, SAMPLE_RATE)) > 0.5
    # normalised: level no longer decides
    loud_pf = pitched_fraction(normalised.track(scale, SAMPLE_RATE))
    assert pitched_fraction(normalised.track(quiet_scale, SAMPLE_RATE)) == pytest.approx(loud_pf, abs=0.02)
    assert loud_pf > 0.9
    assert pitched_fraction(normalised.track(noise, SAMPLE_RATE)) < 0.05


def test_chunked_tracking_equals_one_pass() -> None:
    audio = sequence(c_major_scale_midis()[:8], BPM)  # 4 s
    whole = PitchTracker(chunk_s=60.0).track(audio, SAMPLE_RATE)
    chunked = PitchTracker(chunk_s=0.73).track(audio, SAMPLE_RATE)
    assert len(whole) == len(chunked)
    np.testing.assert_allclose(chunked.midi, whole.midi, atol=1e-3)
    np.testing.assert_allclose(chunked.confidence, whole.confidence, atol=1e-4)


def test_other_sample_rate_and_short_clip() -> None:
    sr = 22_050
    tone = harmonic_note(64, 0.15, sr, decay_per_s=0.0)  # shorter than one CQT kernel (4096 samples)
    track = default_tracker().track(tone, sr)
    hop = int(0.010 * sr + 0.5)  # 221 samples: the times follow the real hop, not 10 ms
    assert len(track) == tone.shape[0] // hop + 1
    assert track.hop_s == pytest.approx(hop / sr)
    assert np.median(track.midi[pitched_mask(track)]) == pytest.approx(64.0, abs=0.25)


def test_window_selects_frames_by_centre(scale_track: PitchTrack) -> None:
    part = scale_track.window(1.0, 2.0)
    assert len(part) == 100
    assert part.times_s[0] == pytest.approx(1.0) and part.times_s[-1] == pytest.approx(1.99)
