"""The drift_baseline fixture, exercised the way a user's suite uses it (pytester, in process)."""

from __future__ import annotations

from importlib import metadata

import pytest

# pytester's in-process runs drop modules first imported inside them; torch and numpy cannot be
# imported twice in one process, so everything the inner runs need is imported here, once.
import baselines.degrading  # noqa: F401
import bench.app.drift.pytest_plugin  # noqa: F401
import bench.app.drift.score  # noqa: F401
import metrics.drift.windowed  # noqa: F401
import metrics.embedders.logmel  # noqa: F401
import metrics.quality.bootstrap  # noqa: F401
import metrics.quality.kad  # noqa: F401

pytest_plugins = ["pytester"]

USER_TEST = '''
from baselines.degrading import {cls}

def test_drift(drift_baseline):
    result = drift_baseline.run({cls}, preset="tiny", workload="smoke",
                                drift_overrides={{"horizon_s": 10.0, "window_s": 2.0, "hop_s": 2.0, "n_streams": 2}},
                                generator_kwargs={{"onset_s": 6.0, "ramp_s": 0.5}})
    result.generator = result.config["generator"] = "my-generator"   # one baseline, two implementations
    drift_baseline.check(result, name="my-generator")
'''


def _plugin_args(config: pytest.Config) -> list[str]:
    """``-p`` the plugin unless the installed package already registers it (pytest11 entry point)."""
    registered = any(ep.value.startswith("bench.app.drift.pytest_plugin")
                     for ep in metadata.entry_points(group="pytest11"))
    return [] if registered else ["-p", "bench.app.drift.pytest_plugin"]


def test_fixture_writes_then_checks_baselines(pytester: pytest.Pytester, request: pytest.FixtureRequest) -> None:
    args = _plugin_args(request.config) + ["-p", "no:cacheprovider", "--drift-baseline-dir", str(pytester.path / "bl")]
    pytester.makepyfile(test_user=USER_TEST.format(cls="SyntheticMusicGenerator"))

    missing = pytester.runpytest(*args)
    missing.assert_outcomes(failed=1)
    missing.stdout.fnmatch_lines(["*no drift baseline at*my-generator.json*--drift-update-baselines*"])

    pytester.runpytest(*args, "--drift-update-baselines").assert_outcomes(passed=1)
    assert (pytester.path / "bl" / "my-generator.json").exists()
    pytester.runpytest(*args).assert_outcomes(passed=1)  # the same generator matches its baseline

    pytester.makepyfile(test_user=USER_TEST.format(cls="TiltDriftGenerator"))  # now it degrades from 6 s
    degraded = pytester.runpytest(*args)
    degraded.assert_outcomes(failed=1)
    degraded.stdout.fnmatch_lines([
        "*drift regression: generator 'my-generator' vs baseline*",
        "*spectral_flatness: from window 3 (6.0-8.0 s) it differs from the baseline*",
        "*refresh the baseline*",
    ])
