"""Reading run folders: a hand-made folder is read back (ok cells only, schema column dropped, drift
tables), labels come from the manifest, and a folder that is missing, not a run folder or damaged
raises RunFolderError with a message that names the problem."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from bench.core.errors import RunFolderError
from bench.core.run_folder import load_run, load_runs, read_run_json, read_run_table, run_label
from bench.core.storage import CELL_TABLES, DRIFT_DIR, RunStore, write_json, write_table

MANIFEST = {"git": {"commit": "0123456789abcdef", "dirty": True}, "created_utc": "2026-01-02T03:04:05Z"}


def _make_run(root: Path) -> Path:
    """A run folder with one ok cell, one failed cell and a drift stage (tiny made-up tables)."""
    store = RunStore(root)
    write_json(root / "manifest.json", MANIFEST)
    write_json(root / "peak.json", {"flops_per_s": 2.0e9})
    for generator, status in (("a", "ok"), ("b", "failed")):
        store.reset_cell(generator, "w")
        if status == "ok":
            store.write_cell_tables(generator, "w", {
                name: pd.DataFrame({"generator": [generator], "workload": ["w"], "block_index": [0]})
                for name in CELL_TABLES})
        store.write_status(generator, "w", {"generator": generator, "workload": "w", "status": status,
                                            "error": "RuntimeError: boom\nTraceback ..." if status != "ok" else ""})
    write_table(root / DRIFT_DIR, "summary", pd.DataFrame({"generator": ["a"], "metric": ["kad_logmel"]}))
    write_table(root / DRIFT_DIR, "windows", pd.DataFrame({"generator": ["a"], "window_index": [0]}))
    write_json(root / DRIFT_DIR / "config.json", {"drift": {"name": "drift-w"}})
    return root


def test_a_run_folder_is_read_back(tmp_path: Path) -> None:
    run = load_run(_make_run(tmp_path / "run"))
    assert run.label == "01234567+dirty 2026-01-02T03:04:05Z"  # from the manifest, not the folder name
    assert run.peak_flops_per_s == 2.0e9
    assert run.cells[["generator", "status", "error"]].values.tolist() == [
        ["a", "ok", ""], ["b", "failed", "RuntimeError: boom"]]  # the error's first line only
    assert run.blocks.generator.tolist() == ["a"] and "schema_version" not in run.blocks  # ok cells only
    assert run.cell_dir("a", "w") == run.root / "cells" / "a__w"
    with pytest.raises(KeyError):
        run.cell_dir("c", "w")
    assert run.drift_summary.metric.tolist() == ["kad_logmel"] and run.drift_windows is not None
    assert run.drift_streams is None and run.drift_config["drift"] == {"name": "drift-w"}
    assert run.quality is None


def test_labels_are_made_unique_in_order(tmp_path: Path) -> None:
    root = _make_run(tmp_path / "run")
    runs = load_runs([root, root])
    assert runs.multi and [r.label for r in runs] == [run_label(MANIFEST), run_label(MANIFEST) + " (2)"]
    with pytest.raises(RunFolderError, match="no run folder given"):
        load_runs([])


def test_not_a_run_folder(tmp_path: Path) -> None:
    with pytest.raises(RunFolderError, match="does not exist"):
        load_run(tmp_path / "nope")
    with pytest.raises(RunFolderError, match="no manifest.json"):
        load_run(tmp_path)


def test_a_damaged_run_folder_is_reported(tmp_path: Path) -> None:
    root = _make_run(tmp_path / "run")
    (root / "cells" / "a__w" / "flops.parquet").unlink()
    with pytest.raises(RunFolderError, match="flops.parquet is missing although the cell's status is ok"):
        load_run(root)
    (root / "manifest.json").write_text("{not json")
    with pytest.raises(RunFolderError, match="manifest.json is not valid JSON"):
        load_run(root)


def test_readers_return_none_for_missing_files(tmp_path: Path) -> None:
    assert read_run_json(tmp_path / "missing.json") is None
    assert read_run_table(tmp_path, "missing") is None
    write_table(tmp_path, "t", pd.DataFrame({"x": [1]}))
    assert read_run_table(tmp_path, "t").columns.tolist() == ["x"]


def test_resume_command_from_a_manifest(tmp_path: Path) -> None:
    from bench.core.run_folder import manifest_resume_command, recorded_argv

    new = {"run": {"argv": ["--preset", "tiny", "--set", "workload.horizon_s=2 s"]}}
    assert manifest_resume_command(new, tmp_path / "r") == (
        f"python run_all.py --preset tiny --set 'workload.horizon_s=2 s' --out {tmp_path / 'r'} --resume")
    old = {"run": {"argv": ["run_all.py", "--out", "x", "--resume"]}}  # sys.argv, as manifests before 2026-12
    assert recorded_argv(old) == ["--out", "x", "--resume"]
    assert manifest_resume_command(old, tmp_path) == "python run_all.py --out x --resume"
    assert manifest_resume_command({}, tmp_path) is None
