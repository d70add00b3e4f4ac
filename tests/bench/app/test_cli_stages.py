"""run_all end to end on real generators: systems cells, drift stage, summary, report, resume."""

import filecmp
from pathlib import Path

from bench.app.cli import main
from bench.app.clocks import FakeClock
from bench.core.storage import read_json, read_table

DRIFT = ["--set", "drift.horizon_s=2", "--set", "drift.n_streams=2", "--set", "drift.window_s=0.5",
         "--set", "drift.hop_s=0.5"]
ARGS = ["--preset", "tiny", "--workload", "smoke", "--generators", "lmdm-causal", "--no-peak",
        "--progress", "off", "-q", *DRIFT]


def fake_clock() -> FakeClock:
    return FakeClock(lambda phase, block, call: 1_000_000)  # 1 ms per phase entry


def test_run_all_writes_cells_drift_summary_and_report_then_resumes(tmp_path):
    out = tmp_path / "run"
    assert main([*ARGS, "--out", str(out)], clock=fake_clock()) == 0

    cells = read_table(out, "cells")
    assert sorted(cells.generator) == ["lmdm-causal", "noise"] and set(cells.status) == {"ok"}
    drift_summary = read_table(out / "drift", "summary")
    assert set(drift_summary.generator) == {"lmdm-causal", "noise"}
    config = read_json(out / "drift" / "config.json")
    assert config["drift"]["n_streams"] == 2 and all(s["status"] == "ok" for s in config["statuses"])
    assert read_json(out / "manifest.json")["run"]["drift"]["horizon_s"] == 2.0

    summary = (out / "summary.md").read_text()
    assert "lmdm-causal" in summary and summary.count("## ") >= 2  # systems tables and the drift section
    assert "drift" in summary.lower()
    index = out / "report" / "index.html"
    assert index.exists() and "lmdm-causal" in index.read_text()

    # --report-only rebuilds the same tables from the saved folder, byte for byte
    again = tmp_path / "again"
    assert main(["--report-only", str(out), "--out", str(again), "-q"]) == 0
    tables = sorted(p.name for p in (out / "report" / "tables").iterdir())
    assert tables and sorted(p.name for p in (again / "tables").iterdir()) == tables
    match, mismatch, errors = filecmp.cmpfiles(out / "report" / "tables", again / "tables", tables, shallow=False)
    assert mismatch == [] and errors == []

    # --resume with nothing left to do skips every cell and the drift stage
    before = (out / "drift" / "config.json").stat().st_mtime_ns
    assert main([*ARGS, "--out", str(out), "--resume"], clock=fake_clock()) == 0
    assert (out / "drift" / "config.json").stat().st_mtime_ns == before
    assert read_table(out, "cells").resumed.all()


def test_bad_drift_override_is_a_configuration_error(tmp_path):
    assert main([*ARGS, "--out", str(tmp_path / "x"), "--set", "drift.n_streams=0"]) == 2
    assert not (tmp_path / "x" / "manifest.json").exists()  # rejected before any work


def test_no_drift_skips_the_stage(tmp_path):
    out = tmp_path / "run"
    assert main([*ARGS, "--out", str(out), "--no-drift", "--no-report"], clock=fake_clock()) == 0
    assert not (out / "drift").exists() and not (out / "report").exists()
    assert Path(out / "summary.md").exists()
