"""The report builder: rebuilding from a copied run folder gives byte-identical tables; the CLI's
errors; a foreign output folder is never overwritten."""

from __future__ import annotations

import shutil

import pytest

from reports.__main__ import main
from reports.build import MARKER, build_report
from reports.errors import ReportError

TABLE_FILES = [f"{name}.{ext}" for name in ("latency", "phases", "compute", "quality", "continuation", "drift")
               for ext in ("csv", "md", "tex")] + ["clips.csv"]


def test_report_only_on_a_copied_run_reproduces_tables_byte_for_byte(built_report, tmp_path) -> None:
    run, index = built_report
    copy = tmp_path / "somewhere" / "renamed-run"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("report"))
    assert main([str(copy), "-q"]) == 0  # python -m reports RUN_DIR (what --report-only calls)
    original, rebuilt = index.parent / "tables", copy / "report" / "tables"
    assert sorted(p.name for p in rebuilt.iterdir()) == sorted(TABLE_FILES)
    for name in TABLE_FILES:
        assert (rebuilt / name).read_bytes() == (original / name).read_bytes(), name


def test_rebuild_replaces_a_previous_report(golden_run, tmp_path) -> None:
    out = tmp_path / "report"
    (out / "figures").mkdir(parents=True)
    (out / MARKER).write_text("a previous report")
    stale = out / "figures" / "stale.png"
    stale.write_bytes(b"old")
    build_report([golden_run], out)
    assert not stale.exists() and (out / "index.html").exists() and (out / MARKER).exists()


def test_foreign_folder_is_refused(golden_run, tmp_path) -> None:
    out = tmp_path / "precious"
    out.mkdir()
    (out / "thesis.tex").write_text("do not delete")
    with pytest.raises(ReportError, match="not empty"):
        build_report([golden_run], out)
    assert (out / "thesis.tex").read_text() == "do not delete"


def test_cli_errors(tmp_path, golden_run, caplog) -> None:
    assert main([]) == 2
    assert main([str(tmp_path / "missing")]) == 2
    assert main([str(golden_run), str(golden_run)]) == 2  # several runs need --out
    assert any("--out" in r.getMessage() for r in caplog.records)


def test_failed_cells_are_shown_not_hidden(golden_run, tmp_path) -> None:
    import json

    from bench.core.run_folder import load_runs
    from reports.build import render_markdown
    from reports.html import runs_html
    from reports.tables import build_tables

    run = tmp_path / "run"
    shutil.copytree(golden_run, run)
    status_path = run / "cells" / "toy-cached__smoke" / "status.json"
    status = json.loads(status_path.read_text())
    status.update({"status": "failed", "error": "RuntimeError: boom at block 3", "traceback": "..."})
    status_path.write_text(json.dumps(status))
    runs = load_runs([run])
    tables = build_tables(runs)
    assert "toy-cached" not in set(tables["latency"].data.generator)  # a failed cell has no numbers
    assert '<span class="failed">failed</span>' in runs_html(runs) and "boom at block 3" in runs_html(runs)
    # the report says how to finish the run: the recorded command with --out the run folder and --resume
    html = runs_html(runs)
    assert "To finish this run: <code>python run_all.py " in html
    finish = html.split("To finish this run: <code>")[1].split("</code>")[0]
    assert finish.endswith(" --resume") and "--preset tiny" in finish and "--out" in finish
    assert "**FAILED** `toy-cached` x `smoke`" in render_markdown(runs, tables, [], [], None)


def test_cells_the_run_never_reached_are_listed_with_the_command_to_finish(golden_run, tmp_path) -> None:
    from bench.core.run_folder import load_runs
    from reports.html import runs_html

    run = tmp_path / "run"
    shutil.copytree(golden_run, run)
    assert "To finish this run" not in runs_html(load_runs([run]))  # a complete run needs nothing
    shutil.rmtree(run / "cells" / "toy-cached__smoke")  # as if the run had stopped before this cell
    html = runs_html(load_runs([run]))
    assert "Not run (the run stopped before them): toy-cached x smoke." in html
    assert "To finish this run: <code>python run_all.py " in html

