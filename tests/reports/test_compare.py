"""A versus B: deltas with closed-form values, and a loud warning when manifests differ in hardware
or library versions (none when they do not)."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from bench.core.run_folder import load_run
from reports.__main__ import main
from reports.compare import compare_runs, manifest_differences


def _edit_manifest(run, **changes) -> None:
    path = run / "manifest.json"
    manifest = json.loads(path.read_text())
    for dotted, value in changes.items():
        node = manifest
        *head, last = dotted.split(".")
        for key in head:
            node = node[key]
        node[last] = value
    path.write_text(json.dumps(manifest))


def _scale_latency(run, cell: str, factor: int) -> None:
    for name in ("blocks",):
        path = run / "cells" / cell / f"{name}.parquet"
        df = pd.read_parquet(path)
        df["latency_ns"] = df["latency_ns"] * factor
        df["latency_ms"] = df["latency_ms"] * factor
        df.to_parquet(path, index=False)


def test_same_run_twice_has_zero_deltas_and_no_warning(golden_run, tmp_path) -> None:
    b = tmp_path / "b"
    shutil.copytree(golden_run, b)
    comparison = compare_runs(load_run(golden_run), load_run(b))
    assert comparison.differences == [] and comparison.warning_text() == ""
    latency = comparison.deltas.data[comparison.deltas.data.metric.isin(["steady_median_ms", "rtf", "ttfa_ms"])]
    assert (latency.delta == 0).all() and (latency.change == "same").all()


def test_deltas_closed_form_and_loud_warning(golden_run, tmp_path) -> None:
    b = tmp_path / "b"
    shutil.copytree(golden_run, b)
    _scale_latency(b, "toy-cached__smoke", 2)  # B's toy-cached is exactly twice as slow
    _edit_manifest(b, **{"cpu.model": "Some Other CPU", "torch.version": "9.9.9", "git.commit": "f" * 40})
    comparison = compare_runs(load_run(golden_run), load_run(b))
    d = comparison.deltas.data.set_index(["generator", "metric"])
    steady = d.loc[("toy-cached", "steady_median_ms")]
    assert (steady.a, steady.b, steady.delta) == pytest.approx((106.0, 212.0, 106.0))
    assert steady.delta_pct == pytest.approx(100.0) and steady.change == "worse"
    assert d.loc[("toy-cached", "x_realtime")].change == "worse"  # higher is better, and it halved
    assert d.loc[("toy-uncached", "steady_median_ms")].change == "same"
    kinds = {x.field: x.category for x in comparison.differences}
    assert kinds == {"cpu.model": "hardware", "torch.version": "software", "git.commit": "code"}
    warning = comparison.warning_text()
    assert warning.startswith("WARNING") and "cpu.model" in warning and "torch.version" in warning
    assert "git.commit" not in warning  # a different commit is usually the point of the comparison


def test_package_versions_are_compared() -> None:
    a = {"packages": {"torch": "2.14.1", "numpy": "1.26.4"}}
    b = {"packages": {"torch": "2.14.1", "numpy": "2.0.0", "pandas": "3.0.6"}}
    diffs = {d.field: (d.a, d.b, d.loud) for d in manifest_differences(a, b)}
    assert diffs == {"packages.numpy": ("1.26.4", "2.0.0", True), "packages.pandas": (None, "3.0.6", True)}


def test_compare_cli_writes_warning_into_html_and_markdown(golden_run, tmp_path, caplog) -> None:
    b = tmp_path / "b"
    shutil.copytree(golden_run, b)
    _edit_manifest(b, **{"gpu.driver": "999.1"})
    out = tmp_path / "report"
    assert main(["--compare", str(golden_run), str(b), "--out", str(out), "-q"]) == 0
    html = (out / "index.html").read_text()
    assert 'id="compare-warning"' in html and "gpu.driver" in html
    assert "> **WARNING" in (out / "report.md").read_text()
    assert (out / "tables" / "compare.csv").exists()
    assert any("WARNING" in r.getMessage() for r in caplog.records)


def _move_cell(run, generator: str, node: str, hardware: str) -> None:
    """Say in the run's cells table that ``generator``'s cell was timed on ``node`` with ``hardware``."""
    path = run / "cells.parquet"
    cells = pd.read_parquet(path)
    cells.loc[cells.generator == generator, ["node", "hardware"]] = [node, hardware]
    cells.to_parquet(path, index=False)


def test_cells_timed_on_different_hardware_are_loud(golden_run, tmp_path) -> None:
    """Identical manifests (one driver), but B's toy-cached cell was timed on another node's GPU."""
    cells = pd.read_parquet(golden_run / "cells.parquet")
    assert cells.hardware.nunique() == 1 and cells.hardware.iloc[0]  # the harness records where cells ran
    b = tmp_path / "b"
    shutil.copytree(golden_run, b)
    _move_cell(b, "toy-cached", "gpu-node-7", "Xeon (32 CPUs, 32 torch threads); GPU NVIDIA H200")
    comparison = compare_runs(load_run(golden_run), load_run(b))
    assert comparison.differences == []  # the manifests cannot see it
    warning = comparison.warning_text()
    assert "WARNING: run B timed its cells on different hardware" in warning
    assert "gpu-node-7 [Xeon (32 CPUs, 32 torch threads); GPU NVIDIA H200]: toy-cached x smoke" in warning
    assert "timed on different hardware in A and B" in warning and "toy-cached x smoke (A: " in warning
    assert "toy-uncached x smoke (A:" not in warning  # only the cell that moved
    assert "WARNING: run A" not in warning
    assert f"> **{warning}**" in comparison.to_markdown()


def test_runs_without_node_records_compare_quietly(golden_run, tmp_path) -> None:
    b = tmp_path / "b"
    shutil.copytree(golden_run, b)
    cells = pd.read_parquet(b / "cells.parquet").drop(columns=["node", "executor", "hardware"])
    cells.to_parquet(b / "cells.parquet", index=False)  # as a run made before nodes were recorded
    assert compare_runs(load_run(golden_run), load_run(b)).warning_text() == ""
