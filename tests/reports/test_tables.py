"""Tables: closed-form values of a fake-clock run, the golden Markdown table, the saved run's five
tables, and the reports' error for a folder that is not a run folder."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest

from bench.core.run_folder import load_run, load_runs
from metrics.playback import LIVE_NOT_MEASURED
from reports.errors import ReportError
from reports.systems_tables import latency_table
from reports.tables import build_tables

# The latency table of the golden run (tests/reports/conftest.py: tiny preset, smoke workload with a
# 2 s horizon and a prompt change at 1 s, fake phase durations; live look-ahead one block, 0.125 s). Every
# number follows from the fake durations; test_latency_values_closed_form re-derives the important ones.
GOLDEN_LATENCY_MD = """\
### Latency and real time

| regime | workload | blocks | TTFA (ms) ↓ | first block (ms) ↓ | steady block, median (ms) ↓ | p90 (ms) ↓ | p99 (ms) ↓ | RTF, median per block ↓ | x real time ↑ | look-ahead (s) | underruns, live ↓ | stall, live (s) ↓ | min pre-buffer, live (s) ↓ | control latency, worst, live (ms) ↓ | verdict, live | offline underruns | offline control latency, worst (ms) | offline verdict (throughput) |
|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---|
| noise | smoke | 16 | 2.00 | 2.00 | 2.00 [2.00, 2.00] | 2.00 † | 2.00 † | 0.016 [0.016, 0.016] | 62.5 | 0.125 | 0 | 0 | 0.125 | 250 | real time | 0 | 988 | real time |
| toy-cached | smoke | 16 | **120** | **120** | **106 [106, 106]** | 106 † | 120 † | **0.848 [0.848, 0.848]** | **1.20** | 0.125 | **0** | **0** | **0.125** | **250** | real time | 0 | 412 | real time |
| toy-uncached | smoke | 16 | 122 | 122 | 146 [146, 146] | 146 † | 146 † | 1.17 [0.976, 1.17] | 0.893 | 0.125 | 12 | 0.252 | 0.500 | 292 | not real time (12 underruns; needs a 0.50 s pre-buffer) | 12 | 292 | not real time (12 underruns; needs a 0.38 s pre-buffer) |

Bold: best value of its column within a workload (↓ lower is better, ↑ higher is better, →0 closest to zero, →1 closest to one); the null generator is shown but never ranked. [a, b]: distribution-free 95% CI of the median.
- TTFA: from the call to start() until the first block's audio is on the host. Steady blocks: every block after the first. RTF = compute s / audio s per block (< 1 is faster than real time); x real time = total audio s / total compute s of the stream(s).
- † too few samples for a valid percentile (MLPerf's minimum: 64 for p90, 662 for p99); never ranked.
- Live (the headline): underruns, stall, min pre-buffer, control latency and verdict simulate live playback from the measured block times: the generator starts a block only when at most the look-ahead of audio is still unplayed (docs/harness.md); min pre-buffer is the smallest whole-block pre-buffer (and look-ahead) that plays without an underrun. Control latency: worst case over prompt changes (– when the workload has none).
- Offline (a throughput view, not a live verdict): the same blocks back to back with no bound on the lead, so a stall can hide in the lead and control latency grows with it.
"""


def test_golden_markdown_latency_table(golden_run) -> None:
    assert latency_table(load_runs([golden_run])).to_markdown() == GOLDEN_LATENCY_MD


def test_latency_values_closed_form(golden_run) -> None:
    data = latency_table(load_runs([golden_run])).data.set_index("generator")
    # toy-uncached: 3 steps of 40 ms (48 ms from block 4) + 2 ms decode.
    unc = data.loc["toy-uncached"]
    assert unc.first_block_ms == pytest.approx(3 * 40 + 2)
    assert unc.steady_median_ms == pytest.approx(3 * 48 + 2)  # 3 steady blocks at 122 ms, 12 at 146 ms
    assert unc.rtf == pytest.approx(0.146 / 0.125)
    assert (unc.rtf_ci_low, unc.rtf_ci_high) == pytest.approx((0.122 / 0.125, 0.146 / 0.125))  # ranks 4 and 13 of 16
    assert unc.x_realtime == pytest.approx(2.0 / (4 * 0.122 + 12 * 0.146))
    assert unc.underruns == 12 and unc.offline_underruns == 12  # every block from 4 on takes 146 ms > 125 ms of audio
    # live (look-ahead one block): blocks 1-3 wait for the playhead, so nothing is banked: 21 ms short per block;
    # offline: blocks 1-3 ran back to back and banked 3 ms each
    assert unc.lookahead_s == pytest.approx(0.125)
    assert unc.stall_s == pytest.approx(12 * 0.021) and unc.offline_stall_s == pytest.approx(12 * 0.021 - 3 * 0.003)
    # offline: 3 blocks cover the deficit thanks to the banked 9 ms; live: 4 blocks (the 4th absorbs the lost lead)
    assert unc.offline_min_prebuffer_s == pytest.approx(0.375) and unc.min_prebuffer_s == pytest.approx(0.5)
    # toy-cached: bootstrap 30 + first_step 8 + 2 steps + decode 2.
    cached = data.loc["toy-cached"]
    assert cached.ttfa_ms == pytest.approx(30 + 8 + 2 * 40 + 2)
    assert cached.steady_median_ms == pytest.approx(8 + 2 * 48 + 2)
    assert cached.underruns == 0 and cached.verdict == "real time" and cached.offline_verdict == "real time"
    # noise, offline: the prompt change at 1 s is block 8; it plays at 2 ms + 8 * 125 ms, block 7 started at 7 * 2 ms.
    noise = data.loc["noise"]
    assert noise.offline_control_latency_worst_ms == pytest.approx(2 + 8 * 125 - 7 * 2)
    # live: block 7 starts when the playhead reaches A_6 - 0.125 s (p_6), block 8 plays at p_8 = p_6 + 250 ms
    assert noise.control_latency_worst_ms == pytest.approx(125 + 125)


def test_run_without_a_recorded_lookahead_reads_live_as_not_measured(golden_run, tmp_path) -> None:
    # a run made before the live model: its streams have no lookahead_s; live is not measured, never assumed,
    # and the offline view is unchanged
    old = tmp_path / "old-run"
    shutil.copytree(golden_run, old)
    for path in old.glob("cells/*/streams.parquet"):
        pd.read_parquet(path).drop(columns=["lookahead_s"], errors="ignore").to_parquet(path)
        csv = path.with_suffix(".csv")
        if csv.exists():
            pd.read_csv(csv).drop(columns=["lookahead_s"], errors="ignore").to_csv(csv, index=False)
    new = latency_table(load_runs([golden_run])).data.set_index("generator")
    table = latency_table(load_runs([old]))
    data = table.data.set_index("generator")
    assert (data.verdict == LIVE_NOT_MEASURED).all()
    for key in ("lookahead_s", "underruns", "stall_s", "min_prebuffer_s", "control_latency_worst_ms"):
        assert data[key].isna().all(), key
    for key in ("offline_underruns", "offline_stall_s", "offline_control_latency_worst_ms", "offline_verdict"):
        assert list(data[key]) == list(new.loc[data.index, key]), key
    assert any("not measured" in note and "before the live model" in note for note in table.notes)
    assert "| – | – | – | – | – | not measured (no look-ahead recorded) |" in table.to_markdown()


def test_a_cell_that_carries_its_nodes_peak_is_a_fraction_of_that_peak(run_copy) -> None:
    """A Ray run: the driver measured no peak, each cell's status.json carries its node's."""
    from bench.core.storage import read_json, write_json

    write_json(run_copy / "peak.json", {"kind": "peak", "flops_per_s": None, "device": "cpu", "dtype": "float32",
                                        "note": "the cells ran on ray workers, whose peak the driver cannot measure"})
    status_path = run_copy / "cells" / "toy-uncached__smoke" / "status.json"
    write_json(status_path, {**read_json(status_path), "peak": {"flops_per_s": 2.0e9, "device": "cpu",
                                                                "dtype": "float32", "measurements": [2.0e9]}})
    run = load_run(run_copy)
    assert run.peak_flops_per_s is None and run.cell_peak("toy-uncached", "smoke") == 2.0e9
    assert run.cell_peak("toy-cached", "smoke") is None  # no peak of its own and none for the run
    table = build_tables(load_runs([run_copy]))["compute"]
    compute = table.data.set_index(["generator", "workload"])
    row = compute.loc[("toy-uncached", "smoke")]
    assert row.peak_fraction == pytest.approx(row.achieved_gflop_per_s / 2.0)
    assert pd.isna(compute.loc[("toy-cached", "smoke")].peak_fraction)
    assert any("measured on each cell's node, 2.0-2.0 GFLOP/s" in note for note in table.notes)


def test_saved_run_tables(saved_run) -> None:
    runs = load_runs([saved_run])
    tables = build_tables(runs)
    assert set(tables) == {"latency", "phases", "compute", "quality", "continuation", "drift"}
    compute = tables["compute"].data.set_index(["generator", "workload"])
    row = compute.loc[("toy-uncached", "smoke")]
    assert row.measured_over_analytic == pytest.approx(1.0)  # the toy's matmuls are exactly its formula
    # fraction of peak = achieved / the peak written into the run (1 GFLOP/s)
    assert row.peak_fraction == pytest.approx(row.achieved_gflop_per_s / 1.0)
    quality = tables["quality"]
    assert any("not a pretrained embedder" in c.header for c in quality.columns)
    drift = tables["drift"].data
    collapse = drift[(drift.generator == "toy-collapse") & (drift.metric == "loudness_lufs")].iloc[0]
    assert collapse.drifted and 1.5 <= collapse.time_to_degrade_s <= 2.5  # onset at 2 s, windows of 0.5 s
    steady = drift[(drift.generator == "toy-cached") & (drift.metric == "loudness_lufs")].iloc[0]
    assert not steady.drifted and steady.time_to_degrade == "none"  # stationary noise keeps its level
    assert "worker processes" not in tables["drift"].notes[0]  # the saved run's streams ran in one process
    runs.runs[0].drift_config = {**runs.runs[0].drift_config,
                                 "execution": {"workers": 2, "threads_per_worker": 1, "reason": "automatic"}}
    note = build_tables(runs)["drift"].notes[0]
    assert ", generated and scored in 2 worker processes of 1 torch thread(s) each." in note


def test_not_a_run_folder(tmp_path) -> None:
    with pytest.raises(ReportError, match="no manifest.json"):
        load_run(tmp_path)
    with pytest.raises(ReportError, match="does not exist"):
        load_run(tmp_path / "nope")
