"""The continuation scorer on audio with known answers (tones that continue or do not)."""

import numpy as np
import pytest

from metrics.continuation_scores import FOLLOWS_MIN_DIFFERENCE, ContinuationScorer, bootstrap_mean
from tests.metrics.descriptor_audio import SAMPLE_RATE, harmonic_note

ROOTS = (60, 62, 64, 65, 67, 69)  # one chord per clip: C, D, E, F, G, A major triads


def _chord(root: int, seconds: float) -> np.ndarray:
    return harmonic_note([root, root + 4, root + 7], seconds, decay_per_s=0.5, amplitude=0.3)


@pytest.fixture(scope="module")
def scorer():
    contexts = [_chord(r, 2.0) for r in ROOTS]
    truths = [_chord(r, 1.0) for r in ROOTS]
    return ContinuationScorer(contexts, truths, SAMPLE_RATE, n_boot=200)


def test_bootstrap_mean_is_the_mean_with_a_ci_around_it():
    values = np.array([0.1, 0.4, np.nan, 0.7, 0.2])
    mean, ci = bootstrap_mean(values, n_boot=500, seed=0)
    assert mean == pytest.approx(0.35) and ci.low < mean < ci.high and ci.unit == "clip"
    assert bootstrap_mean(np.array([0.5, np.nan]), 100, 0) == (0.5, None)


def test_true_continuations_follow_are_pitched_and_at_distance_zero(scorer):
    row = scorer.score([_chord(r, 1.0) for r in ROOTS])
    assert row["pitched_fraction"] > 0.9
    assert row["chroma_fidelity_difference"] > 0.3 and row["follows_context"]
    # the unbiased KAD of a set against itself is ~0 (slightly negative: its cross term keeps the diagonal)
    assert abs(row["kad_logmel"]) < 1.0 and row["n_clips"] == len(ROOTS)


def test_continuations_of_the_wrong_context_do_not_follow(scorer):
    shifted = [_chord(ROOTS[(i + 3) % len(ROOTS)], 1.0) for i in range(len(ROOTS))]  # another clip's chord
    row = scorer.score(shifted)
    assert row["pitched_fraction"] > 0.9  # music, but not this context's
    assert row["chroma_fidelity_difference"] < FOLLOWS_MIN_DIFFERENCE and not row["follows_context"]


def test_noise_is_unpitched_unfollowing_and_far(scorer):
    rng = np.random.default_rng(0)
    noise = [(0.1 * rng.standard_normal(SAMPLE_RATE)).astype(np.float32) for _ in ROOTS]
    row = scorer.score(noise)
    assert row["pitched_fraction"] < 0.05 and not row["follows_context"]
    assert row["kad_logmel"] > 50 and row["kad_logmel_low"] > 50  # far beyond the true continuations' ~0
    assert row["level_dbfs"] == pytest.approx(-20.0, abs=0.2)


def test_wrong_count_is_refused(scorer):
    with pytest.raises(ValueError, match="expected 6 continuations"):
        scorer.score([_chord(60, 1.0)])
