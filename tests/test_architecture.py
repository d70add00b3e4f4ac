"""The layers hold: import-linter's contracts pass on the code, fail on a planted violation, and the
report builder works where torch cannot be imported.

Layers (docs/architecture.md, contracts in pyproject.toml ``[tool.importlinter]``):
``bench.core`` < ``baselines`` | ``metrics`` < ``reports`` < ``bench.app``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.no_torch import run_without_torch

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("bench", "baselines", "metrics", "reports")
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"



def _lint(root: Path) -> subprocess.CompletedProcess:
    """Run lint-imports on the packages under ``root`` (found first on the path)."""
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(root / "pyproject.toml"), "--no-cache", "--no-logo"],
        cwd=root, env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=120,
    )


def test_layer_contracts_hold() -> None:
    result = _lint(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "BROKEN" not in result.stdout
    assert "5 kept, 0 broken" in result.stdout, result.stdout


@pytest.fixture(scope="module")
def source_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The four packages' Python files and pyproject.toml, copied to a temporary folder."""
    root = tmp_path_factory.mktemp("layers")
    for package in PACKAGES:
        shutil.copytree(REPO / package, root / package,
                        ignore=shutil.ignore_patterns("__pycache__", "checkpoints", "*.json"))
    shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
    assert _lint(root).returncode == 0, "the unmodified copy must pass before a violation is planted"
    return root


# (module to plant, its source, the contract name that must report it)
VIOLATIONS = [
    ("reports/_planted.py", "import torch\n", "reports never imports baselines, torch or ray"),
    ("reports/_planted.py", "from baselines import dit\n", "reports never imports baselines, torch or ray"),
    ("reports/_planted.py", "import ray\n", "reports never imports baselines, torch or ray"),
    ("metrics/_planted.py", "import baselines.codec\n", "metrics never imports baselines"),
    ("bench/core/_planted.py", "import metrics.systems\n", "One-way layers"),
    ("baselines/_planted.py", "import metrics.systems\n", "One-way layers"),
    ("reports/_planted.py", "import bench.app.runner\n", "One-way layers"),
    ("bench/core/_planted.py", "import torch\n", "bench.core imports torch only in the generator contract"),
    ("metrics/quality/_planted.py", "import metrics.quality.kad\n", "No import cycles"),
]


@pytest.mark.parametrize("path,source,contract", VIOLATIONS, ids=[f"{p}:{s.strip()}" for p, s, _ in VIOLATIONS])
def test_contracts_fail_on_a_planted_violation(source_copy: Path, path: str, source: str, contract: str) -> None:
    planted = source_copy / path
    back_edge = None
    if contract.startswith("No import cycles"):  # make kad import the planted module back
        back_edge = source_copy / "metrics/quality/kad.py"
        original = back_edge.read_text()
        back_edge.write_text(original + "\nimport metrics.quality._planted  # noqa: E402\n")
    planted.write_text(source)
    try:
        result = _lint(source_copy)
    finally:
        planted.unlink()
        if back_edge is not None:
            back_edge.write_text(original)
    assert result.returncode != 0, result.stdout
    broken = [line for line in result.stdout.splitlines() if " BROKEN" in line]
    assert any(line.startswith(contract) for line in broken), result.stdout


def test_reports_and_metrics_import_without_torch(tmp_path: Path) -> None:
    modules = ["reports", "reports.build", "reports.summary", "reports.figures", "reports.html", "reports.compare",
               "metrics.systems", "metrics.quality.fad", "metrics.quality.kad", "metrics.drift.windowed",
               "metrics.drift.summary", "metrics.embedders", "bench.core.storage", "bench.core.presets",
               "bench.core.workloads", "bench.core.registry", "bench.app.cli"]
    code = "import importlib, sys\n" + "".join(f"importlib.import_module({m!r})\n" for m in modules)
    code += "assert 'torch' not in sys.modules\n"
    result = run_without_torch(tmp_path, "-c", code)
    assert result.returncode == 0, result.stderr
