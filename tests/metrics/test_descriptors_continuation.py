"""Continuation fidelity: continuations in their context's key vs continuations in random keys."""

from __future__ import annotations

import numpy as np
import pytest

from metrics.descriptors import continuation_fidelity, fidelity_from_chroma
from metrics.descriptors.tonality import key_profiles, pearson_rows
from tests.metrics.descriptor_audio import SAMPLE_RATE, cadence, key_melody, sequence

N_PAIRS = 12


def pair(context_key: tuple[int, bool], continuation_key: tuple[int, bool], rng: np.random.Generator):
    """Context: a cadence (2 s). Continuation: an 8-note melody (4 s), one octave up."""
    (ctx_tonic, ctx_minor), (cont_tonic, cont_minor) = context_key, continuation_key
    context = sequence(cadence(48 + ctx_tonic, ctx_minor), 120.0)
    continuation = sequence(key_melody(60 + cont_tonic, cont_minor, 8, rng), 120.0)
    return context, continuation


def random_keys(rng: np.random.Generator, n: int) -> list[tuple[int, bool]]:
    return [(int(t), bool(m)) for t, m in zip(rng.integers(0, 12, n), rng.integers(0, 2, n))]


def test_continuations_in_their_own_key_are_faithful() -> None:
    rng = np.random.default_rng(7)
    keys = random_keys(rng, N_PAIRS)
    pairs = [pair(k, k, rng) for k in keys]
    result = continuation_fidelity(pairs, SAMPLE_RATE, n_boot=1000, seed=0)
    assert result.difference == pytest.approx(result.paired - result.shuffled)
    assert result.difference > 0.1
    assert result.interval.low > 0.0  # the CI excludes 0
    assert result.interval.unit == "pair" and result.n_pairs == N_PAIRS and result.n_undefined == 0
    assert result.paired > 0.5


def test_independent_continuations_are_not() -> None:
    rng = np.random.default_rng(11)
    contexts, continuations = random_keys(rng, N_PAIRS), random_keys(rng, N_PAIRS)
    pairs = [pair(c, k, rng) for c, k in zip(contexts, continuations)]
    result = continuation_fidelity(pairs, SAMPLE_RATE, n_boot=1000, seed=0)
    # the percentile CI over 12 pairs under-covers a little: over 20 seeds it held 0 in 17 (85 %)
    assert result.interval.contains(0.0)


def test_fidelity_from_chroma_known_answer() -> None:
    chroma = key_profiles()  # (24, 12): every major and minor key profile
    n = chroma.shape[0]
    r = pearson_rows(chroma, chroma)  # (24, 24), ones on the diagonal
    result = fidelity_from_chroma(chroma, chroma, n_boot=200, seed=3)
    assert result.paired == pytest.approx(1.0)
    assert result.shuffled == pytest.approx((r.sum() - n) / (n * (n - 1)))
    np.testing.assert_allclose(result.per_pair_difference, 1.0 - (r.sum(axis=1) - 1.0) / (n - 1))
    # by symmetry every profile has the same correlations with the others: d_i is constant and the
    # bootstrap interval collapses onto it
    assert result.interval.low == pytest.approx(result.difference)
    assert result.interval.high == pytest.approx(result.difference)
    # swapping the continuations between pairs removes the fidelity
    swapped = fidelity_from_chroma(chroma, np.roll(chroma, 1, axis=0), n_boot=200, seed=3)
    assert swapped.difference < 0.0 < result.difference


def test_bootstrap_is_seeded() -> None:
    rng = np.random.default_rng(0)
    contexts = rng.random((10, 12))
    continuations = contexts + 0.5 * rng.random((10, 12))
    result = fidelity_from_chroma(contexts, continuations, n_boot=300, seed=3)
    again = fidelity_from_chroma(contexts, continuations, n_boot=300, seed=3)
    other = fidelity_from_chroma(contexts, continuations, n_boot=300, seed=4)
    assert (again.interval.low, again.interval.high) == (result.interval.low, result.interval.high)
    assert (other.interval.low, other.interval.high) != (result.interval.low, result.interval.high)
    assert result.interval.low < result.difference < result.interval.high
    assert result.interval.seed == 3 and result.interval.n_boot == 300


def test_silent_continuations_count_as_no_fidelity() -> None:
    rng = np.random.default_rng(5)
    keys = random_keys(rng, 4)
    pairs = [pair(k, k, rng) for k in keys]
    pairs[1] = (pairs[1][0], np.zeros(SAMPLE_RATE, np.float32))
    result = continuation_fidelity(pairs, SAMPLE_RATE, n_boot=100)
    assert result.n_undefined == 1
    assert result.per_pair_paired[1] == 0.0 and result.per_pair_difference[1] == 0.0
    assert np.all(result.per_pair_paired[[0, 2, 3]] > 0.3)


def test_bad_inputs() -> None:
    one = [(np.ones(100, np.float32), np.ones(100, np.float32))]
    with pytest.raises(ValueError, match="at least 2"):
        continuation_fidelity(one, SAMPLE_RATE)
    with pytest.raises(ValueError, match=r"\(pairs, 12\)"):
        fidelity_from_chroma(np.ones((3, 12)), np.ones((2, 12)))
    stereo = np.ones((2, 1000), np.float32)
    with pytest.raises(ValueError, match="pair 1 continuation: descriptors need mono audio"):
        continuation_fidelity([one[0], (one[0][0], stereo)], SAMPLE_RATE)
