"""Reports are rebuilt from saved runs on a machine where torch cannot be imported."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.no_torch import run_without_torch


def test_torch_is_really_blocked(tmp_path: Path) -> None:
    result = run_without_torch(tmp_path, "-c", "import torch")
    assert result.returncode != 0 and "torch is blocked" in result.stderr


def test_report_only_rebuilds_the_same_tables_without_torch(built_report: tuple[Path, Path], tmp_path: Path) -> None:
    built_run, _ = built_report
    run = tmp_path / "run"
    shutil.copytree(built_run, run)
    shutil.rmtree(run / "report")
    result = run_without_torch(tmp_path, "run_all.py", "--report-only", str(run), "-q")
    assert result.returncode == 0, result.stdout + result.stderr
    assert (run / "report" / "index.html").is_file()
    tables = sorted(p.name for p in (built_run / "report" / "tables").iterdir())
    assert {"latency.csv", "phases.csv", "compute.csv", "quality.csv", "drift.csv"} <= set(tables)
    for name in tables:
        assert (run / "report" / "tables" / name).read_bytes() == (built_run / "report" / "tables" / name).read_bytes(), name


def test_list_works_without_torch(tmp_path: Path) -> None:
    listing = run_without_torch(tmp_path, "run_all.py", "--list")
    assert listing.returncode == 0 and "lmdm-causal" in listing.stdout, listing.stderr
