"""pytest plugin: the ``drift_baseline`` fixture, for drift regression tests in your own suite.

Registered through the ``pytest11`` entry point of this package (so installing it is enough), or
explicitly with ``-p bench.app.drift.pytest_plugin`` / ``pytest_plugins = ["bench.app.drift.pytest_plugin"]``
in your top-level ``conftest.py``. A test::

    def test_my_generator_does_not_drift(drift_baseline):
        result = drift_baseline.run("my-generator", preset="tiny", workload="smoke",
                                    drift_overrides={"horizon_s": 60, "window_s": 5, "hop_s": 5})
        drift_baseline.check(result)   # fails naming the metric, the window and the deviation

The first run with ``--drift-update-baselines`` writes the baseline (``<dir>/<test name>.json``;
commit it); later runs compare against it and fail with the readable message of
:func:`metrics.drift.regression.compare_to_baseline`. Options:

- ``--drift-update-baselines``: write (overwrite) baselines instead of comparing;
- ``--drift-baseline-dir DIR`` (or the ini key ``drift_baseline_dir``; default
  ``tests/drift_baselines`` under the rootdir): where baseline files live.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from types import ModuleType
from typing import Any, Sequence

import pytest

from metrics.drift.regression import (
    BaselineMismatch, DriftComparison, DriftResult, Tolerance, compare_to_baseline, load_baseline, save_baseline,
)

DEFAULT_DIR = "tests/drift_baselines"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("drift-baselines", "live-music-bench drift regression baselines")
    group.addoption(
        "--drift-update-baselines", action="store_true", default=False,
        help="write (overwrite) the drift baselines used by the drift_baseline fixture instead of comparing",
    )
    group.addoption(
        "--drift-baseline-dir", default=None,
        help=f"folder of drift baseline files (default: ini drift_baseline_dir, else <rootdir>/{DEFAULT_DIR})",
    )
    parser.addini("drift_baseline_dir", "folder of drift baseline JSON files, relative to the rootdir",
                  default=DEFAULT_DIR)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "drift: a drift regression test against a stored baseline")


def _drift_api() -> ModuleType:
    """:mod:`bench.app.drift.score`, imported on first use.

    Lazy on purpose: pytest loads this plugin (entry point ``pytest11``) in every session where the
    package is installed, and the scoring stack (torch, the generators, the metrics) would add
    seconds to each of them; only tests that use the fixture need it.
    """
    from bench.app.drift import score

    return score


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "drift"


class DriftBaseline:
    """What the ``drift_baseline`` fixture returns: run or load a drift result, check it."""

    def __init__(self, directory: Path, update: bool, default_name: str) -> None:
        self.directory = Path(directory)
        self.update = update
        self.default_name = default_name

    def path(self, name: str | None = None) -> Path:
        """The baseline file for ``name`` (default: the test's name)."""
        return self.directory / f"{_safe(name or self.default_name)}.json"

    def run(self, generator: str | type, preset: str = "tiny", workload: str = "smoke", **kwargs: Any) -> DriftResult:
        """Generate and score a drift result (:func:`bench.app.drift.score.run_drift`; same keywords)."""
        return _drift_api().run_drift(generator, preset, workload, **kwargs)

    def load(self, run_dir: str | os.PathLike, generator: str) -> DriftResult:
        """A saved drift result from a run folder of ``python run_all.py``."""
        return _drift_api().load_drift_result(run_dir, generator)

    def check(
        self, result: DriftResult, name: str | None = None, tolerance: Tolerance | None = None,
        metrics: Sequence[str] | None = None, same_generator: bool = True,
        **tolerance_overrides: float | tuple[float, float],
    ) -> DriftComparison:
        """Compare ``result`` with the stored baseline; fail the test with a readable message.

        ``tolerance_overrides`` adjust single metrics: ``check(result, loudness_lufs=0.5)``.
        ``same_generator=False`` checks another model against the baseline (e.g. a checkpoint
        before post-training against the one after); ``metrics`` then usually picks the measures
        anchored to each stream's own start (``self_kad_logmel``, ``key_same_as_first``, ...).
        With ``--drift-update-baselines`` the baseline is (re)written and the check passes.
        """
        path = self.path(name)
        tol = (tolerance or Tolerance()).with_overrides(**tolerance_overrides) if tolerance_overrides else tolerance
        if self.update:
            save_baseline(result, path)
            return DriftComparison(result.generator, f"{path} (written)", [], result.metrics, len(result.windows))
        if not path.exists():
            pytest.fail(
                f"no drift baseline at {path}: run this test once with --drift-update-baselines to create it "
                "(then commit the file)", pytrace=False,
            )
        try:
            comparison = compare_to_baseline(result, load_baseline(path), tol, metrics, baseline_source=str(path),
                                             same_generator=same_generator)
        except BaselineMismatch as exc:
            pytest.fail(str(exc), pytrace=False)
        if not comparison.ok:
            pytest.fail(comparison.message(), pytrace=False)
        return comparison


@pytest.fixture
def drift_baseline(request: pytest.FixtureRequest) -> DriftBaseline:
    """Run/load drift results and check them against baselines (see the module docstring)."""
    config = request.config
    directory = config.getoption("--drift-baseline-dir") or config.getini("drift_baseline_dir") or DEFAULT_DIR
    directory = Path(directory)
    if not directory.is_absolute():
        directory = Path(config.rootpath) / directory
    return DriftBaseline(directory, bool(config.getoption("--drift-update-baselines")), _safe(request.node.name))


__all__ = ["DriftBaseline", "drift_baseline", "pytest_addoption", "pytest_configure"]
