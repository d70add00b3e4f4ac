"""What each cell ran (eager or compiled, attention kernels): in summary.md and the compute table."""

import pandas as pd

from bench.core.run_folder import RunSet, load_run
from reports.summary import _what_ran_lines, render_summary
from reports.systems_rows import NOT_RECORDED, what_ran
from reports.systems_tables import compute_table


def _streams(**columns) -> pd.DataFrame:  # noqa: ANN003
    rows = [{"generator": g, "workload": w, "repeat": r} for g, w, r in
            [("lmm", "a", 0), ("lmm", "a", 1), ("lmm", "b", 0), ("noise", "a", 0)]]
    frame = pd.DataFrame(rows)
    for name, values in columns.items():
        frame[name] = values
    return frame


def test_what_ran_reads_each_cell_once_and_says_when_a_run_did_not_record_it():
    streams = _streams(execution=["compiled:default", "compiled:default", "compiled:default",
                                  "eager (nothing to compile)"],
                       attention_kernels=["flash", "flash", "cudnn", "none"])
    ran = what_ran(streams)
    assert ran[("lmm", "a")] == {"execution": "compiled:default", "attention_kernels": "flash"}  # repeats agree
    assert ran[("lmm", "b")]["attention_kernels"] == "cudnn"
    assert ran[("noise", "a")]["execution"] == "eager (nothing to compile)"
    old = what_ran(_streams())  # a run from before the streams held these columns
    assert set(old) == {("lmm", "a"), ("lmm", "b"), ("noise", "a")}
    assert all(record == {"execution": NOT_RECORDED, "attention_kernels": NOT_RECORDED} for record in old.values())
    lines = _what_ran_lines(streams)
    assert "| lmm | compiled:default | flash / cudnn |" in lines  # one row per regime, its workloads' kernels
    assert "| noise | eager (nothing to compile) | none |" in lines
    assert _what_ran_lines(None) == [] and _what_ran_lines(pd.DataFrame()) == []


def test_a_saved_runs_summary_and_compute_table_show_what_ran(saved_run):
    run = load_run(saved_run)
    ran = what_ran(run.streams)
    assert ran and {record["execution"] for record in ran.values()} == {"eager"}
    text = render_summary(saved_run)
    assert "What ran" in text and "| noise | eager | none |" in text
    table = compute_table(RunSet([run]))
    assert set(table.data["execution"]) == {"eager"}
    assert "attention_kernels" in table.data and table.data["attention_kernels"].notna().all()
