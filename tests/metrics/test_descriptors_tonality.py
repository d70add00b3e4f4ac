"""Chroma and the Krumhansl-Schmuckler key on known-answer audio (C major, A minor, silence)."""

from __future__ import annotations

import numpy as np
import pytest

from metrics.descriptors.tonality import (
    KRUMHANSL_KESSLER_MAJOR, KRUMHANSL_KESSLER_MINOR, chroma_cqt, chroma_hop_samples, chroma_octaves, estimate_key,
    key_profiles, pearson_rows,
)
from tests.metrics.descriptor_audio import (
    HARMONIC_MINOR_STEPS, SAMPLE_RATE, c_major_scale_midis, cadence, harmonic_note, key_melody, sequence,
)


def key_of(audio: np.ndarray, sample_rate: int = SAMPLE_RATE):
    return estimate_key(chroma_cqt(audio, sample_rate).mean())


def test_every_rotated_profile_reads_its_own_key() -> None:
    profiles = key_profiles()  # (24, 12)
    for index in range(24):
        key = estimate_key(profiles[index])
        assert key.index == index
        assert key.strength == pytest.approx(1.0)
    # the relative minor is a different key: A minor's profile is not C major's
    assert estimate_key(np.roll(KRUMHANSL_KESSLER_MINOR, 9)).name == "A minor"
    assert estimate_key(KRUMHANSL_KESSLER_MAJOR).name == "C major"


def test_pearson_rows_matches_numpy_and_marks_constant_rows() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.random((3, 12)), rng.random((4, 12))
    expected = np.corrcoef(np.concatenate([a, b]))[:3, 3:]
    np.testing.assert_allclose(pearson_rows(a, b), expected, atol=1e-12)
    r = pearson_rows(np.stack([a[0], np.full(12, 0.3)]), b)
    assert np.all(np.isfinite(r[0])) and np.all(np.isnan(r[1]))


def test_c_major_scale_reads_c_major() -> None:
    key = key_of(sequence(c_major_scale_midis(), 120.0))
    assert key.name == "C major"
    assert key.strength > 0.7


def test_c_major_cadence_reads_c_major() -> None:
    key = key_of(sequence(cadence(60) * 3, 120.0))
    assert (key.tonic, key.mode) == (0, "major")
    assert key.strength > 0.8


@pytest.mark.parametrize("material", ["cadence", "scale", "melody"])
def test_a_minor_material_reads_a_minor(material: str) -> None:
    if material == "cadence":
        audio = sequence(cadence(57, minor=True) * 3, 120.0)  # i-iv-V-i
    elif material == "scale":
        up = [57 + s for s in HARMONIC_MINOR_STEPS] + [69]
        audio = sequence(up + up[-2::-1], 120.0)
    else:
        audio = sequence(key_melody(57, True, 24, np.random.default_rng(3)), 120.0)
    key = key_of(audio)
    assert key.name == "A minor", f"{material}: {key.name} (r={key.strength:.2f})"
    # and not its relative major, which shares 6 of its 7 notes
    assert key.correlations[9 + 12] > key.correlations[0]


@pytest.mark.parametrize("tonic", [2, 6, 10])
def test_transposed_cadences_read_their_tonic(tonic: int) -> None:
    assert key_of(sequence(cadence(48 + tonic) * 2, 120.0)).index == tonic
    assert key_of(sequence(cadence(48 + tonic, minor=True) * 2, 120.0)).index == tonic + 12


def test_silence_has_no_key() -> None:
    key = key_of(np.zeros(SAMPLE_RATE, np.float32))
    assert not key.defined and key.name == "none"
    assert np.isnan(key.strength) and key.index is None


def test_chroma_peaks_on_the_sounded_pitch_class_at_other_sample_rates() -> None:
    for sr in (8_000, 44_100):
        chroma = chroma_cqt(harmonic_note(62, 1.0, sr, decay_per_s=0.0), sr)  # D4
        assert int(np.argmax(chroma.mean())) == 2
        assert chroma.hop_s * sr == chroma_hop_samples(sr, 0.032)
    assert chroma_octaves(8_000) == 6 and chroma_octaves(16_000) == 7
    with pytest.raises(ValueError, match="too low for chroma"):
        chroma_octaves(100)


def test_estimate_key_rejects_a_wrong_shape() -> None:
    with pytest.raises(ValueError, match="12 pitch classes"):
        estimate_key(np.ones(24))
