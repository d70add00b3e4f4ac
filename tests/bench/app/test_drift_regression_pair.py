"""The README's drift regression example on the real pair: a ``drift_baseline`` recorded on
``lmdm-causal`` fails, naming the metric, the window and the size of the change, when pointed at
``lmdm-causal-arc`` (the model that drifts more from its own start on the measures anchored to it).

``data/drift-long/drift/`` holds the drift tables of one measured run of the ``long`` workload
(docs/arc.md: ``python run_all.py --workload long --generators lmdm-causal,lmdm-causal-arc
--no-continuation``, 3 x 300 s continuing held-out music, the committed checkpoints), so this test
checks recorded numbers, not a rerun (the run takes minutes). ``tests/drift_baselines/
lmdm-causal-long.json`` was written from it with ``pytest --drift-update-baselines``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from metrics.drift.regression import BaselineMismatch, compare_to_baseline, load_baseline

RUN = Path(__file__).parent / "data" / "drift-long"
# measures of each stream's change from its own first window: a model with another level or
# timbre, but stable, passes them
ANCHORED = ("self_kad_logmel", "key_same_as_first", "chroma_corr_first")
BASELINE = "lmdm-causal-long"


def test_the_plain_model_matches_its_own_baseline(drift_baseline):
    plain = drift_baseline.load(RUN, "lmdm-causal")
    comparison = drift_baseline.check(plain, name=BASELINE, metrics=ANCHORED)
    if not drift_baseline.update:  # (with --drift-update-baselines the check writes the file)
        assert comparison.ok and set(comparison.compared_metrics) == set(ANCHORED)


def test_the_baseline_fails_the_model_that_drifts_more(drift_baseline):
    if drift_baseline.update:
        pytest.skip("baselines are being written")
    arc = drift_baseline.load(RUN, "lmdm-causal-arc")
    with pytest.raises(pytest.fail.Exception) as failure:
        drift_baseline.check(arc, name=BASELINE, metrics=ANCHORED, same_generator=False)
    message = str(failure.value)
    assert "generator 'lmdm-causal-arc' vs baseline" in message
    # the metric, the window it leaves the baseline from, and by how much
    assert "chroma_corr_first: from window 5 (50.0-60.0 s)" in message
    assert "0.3981 [0.2914, 0.5609] vs 0.8479 [0.8282, 0.8783] (-0.4498" in message


def test_another_generator_is_refused_unless_asked_for(drift_baseline):
    arc = drift_baseline.load(RUN, "lmdm-causal-arc")
    baseline = load_baseline(drift_baseline.path(BASELINE))
    with pytest.raises(BaselineMismatch, match="generator: result 'lmdm-causal-arc' vs baseline 'lmdm-causal'"):
        compare_to_baseline(arc, baseline, metrics=ANCHORED)
    assert not compare_to_baseline(arc, baseline, metrics=ANCHORED, same_generator=False).ok
