"""The README's drift regression example on the real pair: a ``drift_baseline`` recorded on
``lmdm-causal-arc`` fails, naming the metric, the window and the size of the change, when pointed at
``lmdm-causal``, the model whose distance to its own start degrades within the horizon (docs/arc.md).

``data/drift-long/drift/`` holds the drift tables of one measured run of the ``long`` workload
(docs/arc.md: ``python run_all.py --workload long --generators lmdm-causal,lmdm-causal-arc
--no-continuation``, 3 x 300 s continuing held-out music, the committed checkpoints), so this test
checks recorded numbers, not a rerun (the run takes minutes). ``tests/drift_baselines/
lmdm-causal-arc-long.json`` was written from it with ``pytest --drift-update-baselines``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from metrics.drift.regression import BaselineMismatch, compare_to_baseline, load_baseline

RUN = Path(__file__).parent / "data" / "drift-long"
# measures of each stream's change from its own first window: a model with another level or
# timbre, but stable, passes them
ANCHORED = ("self_kad_logmel", "key_same_as_first", "chroma_corr_first")
BASELINE = "lmdm-causal-arc-long"


def test_the_recorded_model_matches_its_own_baseline(drift_baseline):
    arc = drift_baseline.load(RUN, "lmdm-causal-arc")
    comparison = drift_baseline.check(arc, name=BASELINE, metrics=ANCHORED)
    if not drift_baseline.update:  # (with --drift-update-baselines the check writes the file)
        assert comparison.ok and set(comparison.compared_metrics) == set(ANCHORED)


def test_the_baseline_fails_the_model_that_drifts_more(drift_baseline):
    if drift_baseline.update:
        pytest.skip("baselines are being written")
    plain = drift_baseline.load(RUN, "lmdm-causal")
    with pytest.raises(pytest.fail.Exception) as failure:
        drift_baseline.check(plain, name=BASELINE, metrics=ANCHORED, same_generator=False)
    message = str(failure.value)
    assert "generator 'lmdm-causal' vs baseline" in message
    # the metric, the window (time) it degrades at, the size of the change, and the baseline's verdict
    assert ("self_kad_logmel: degrades at 40.0 s (up, value 9.213 outside the early band [1.026, 6.824] "
            "by more than 0.9812); baseline: none within 300.0 s") in message
    assert "key_same_as_first: degrades at 80.0 s (down" in message


def test_another_generator_is_refused_unless_asked_for(drift_baseline):
    plain = drift_baseline.load(RUN, "lmdm-causal")
    baseline = load_baseline(drift_baseline.path(BASELINE))
    with pytest.raises(BaselineMismatch, match="generator: result 'lmdm-causal' vs baseline 'lmdm-causal-arc'"):
        compare_to_baseline(plain, baseline, metrics=ANCHORED)
    assert not compare_to_baseline(plain, baseline, metrics=ANCHORED, same_generator=False).ok
