"""Tables: closed-form values of a fake-clock run, the golden Markdown table, best markers,
order-statistic CIs, and the formats (CSV round trip, LaTeX escaping)."""

from __future__ import annotations

import io
import math

import numpy as np
import pandas as pd
import pytest

from reports.tables import (
    Column, ReportError, Table, build_tables, format_value, latency_table, load_run, load_runs, median_ci,
    median_ci_rank, metric_label,
)

# The latency table of the golden run (tests/reports/conftest.py: tiny preset, smoke workload with a
# 2 s horizon and a prompt change at 1 s, fake phase durations). Every number follows from the fake
# durations; test_latency_values_closed_form re-derives the important ones.
GOLDEN_LATENCY_MD = """\
### Latency and real time

| regime | workload | blocks | TTFA (ms) ↓ | first block (ms) ↓ | steady block, median (ms) ↓ | p90 (ms) ↓ | p99 (ms) ↓ | RTF, median per block ↓ | x real time ↑ | underruns ↓ | stall (s) ↓ | min pre-buffer (s) ↓ | control latency, worst (ms) ↓ | verdict |
|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|
| noise | smoke | 16 | 2.00 | 2.00 | 2.00 [2.00, 2.00] | 2.00 † | 2.00 † | 0.016 [0.016, 0.016] | 62.5 | 0 | 0 | 0.125 | 988 | real time |
| toy-cached | smoke | 16 | **120** | **120** | **106 [106, 106]** | 106 † | 120 † | **0.848 [0.848, 0.848]** | **1.20** | **0** | **0** | **0.125** | 412 | real time |
| toy-uncached | smoke | 16 | 122 | 122 | 146 [146, 146] | 146 † | 146 † | 1.17 [0.976, 1.17] | 0.893 | 12 | 0.243 | 0.375 | **292** | not real time (12 underruns; needs a 0.38 s pre-buffer) |

Bold: best value of its column within a workload (↓ lower is better, ↑ higher is better, →0 closest to zero, →1 closest to one); the null generator is shown but never ranked. [a, b]: distribution-free 95% CI of the median.
- TTFA: from the call to start() until the first block's audio is on the host. Steady blocks: every block after the first. RTF = compute s / audio s per block (< 1 is faster than real time); x real time = total audio s / total compute s of the stream(s).
- † too few samples for a valid percentile (MLPerf's minimum: 64 for p90, 662 for p99); never ranked.
- Underruns, stall and verdict come from the playback simulation at the workload's pre-buffer (docs/harness.md); min pre-buffer is the smallest whole-block pre-buffer that plays without an underrun. Control latency: worst case over prompt changes (– when the workload has none).
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
    assert unc.underruns == 12  # every block from 4 on takes 146 ms > its 125 ms of audio
    assert unc.stall_s == pytest.approx(12 * 0.021 - 3 * 0.003)  # 21 ms short per block, 9 ms banked before
    # toy-cached: bootstrap 30 + first_step 8 + 2 steps + decode 2.
    cached = data.loc["toy-cached"]
    assert cached.ttfa_ms == pytest.approx(30 + 8 + 2 * 40 + 2)
    assert cached.steady_median_ms == pytest.approx(8 + 2 * 48 + 2)
    assert cached.underruns == 0 and cached.verdict == "real time"
    # noise: the prompt change at 1 s is block 8; it plays at 2 ms + 8 * 125 ms, block 7 started at 7 * 2 ms.
    assert data.loc["noise"].control_latency_worst_ms == pytest.approx(2 + 8 * 125 - 7 * 2)


def test_median_ci_order_statistics() -> None:
    x = np.arange(1.0, 11.0)  # n = 10: P(Bin(10, 1/2) <= 1) = 0.0107, <= 2: 0.0547 -> ranks 2 and 9
    assert median_ci(x) == (5.5, 2.0, 9.0)
    assert median_ci_rank(10) == 2
    assert math.isnan(median_ci(np.arange(5.0))[1])  # 5 samples cannot give a 95 % interval
    assert median_ci_rank(6) == 1  # 2 * 0.5**6 = 0.031 <= 0.05
    assert math.isnan(median_ci([])[0])


def test_median_ci_covers_the_true_median() -> None:
    rng = np.random.default_rng(0)
    n, trials = 25, 2000
    hits = 0
    for _ in range(trials):
        _, lo, hi = median_ci(rng.exponential(1.0, n))
        hits += lo <= math.log(2.0) <= hi
    assert hits / trials >= 0.94  # exact coverage is >= 95 % (0.957 for n = 25); 2000 trials: sd 0.005


def _toy_table() -> Table:
    data = pd.DataFrame({
        "generator": ["a", "b", "c", "noise", "d"],
        "workload": ["w", "w", "w", "w", "v"],
        "lat": [3.0, 2.0, 2.0, 0.1, 9.0],
        "speed": [1.0, 5.0, float("nan"), 100.0, 2.0],
        "p": [1.0, 0.5, 2.0, 0.1, 3.0],
        "p_valid": [True, False, True, True, True],
    })
    cols = [Column("generator", "regime", kind="text"), Column("workload", "workload", kind="text"),
            Column("lat", "latency (ms)", "lower"), Column("speed", "x real time", "higher"),
            Column("p", "p90 (ms)", "lower", valid_key="p_valid")]
    return Table("toy", "Toy", data, cols, ["workload"])


def test_best_marker_respects_direction_ties_nulls_and_validity() -> None:
    mask = _toy_table().best_mask()
    assert list(mask["lat"]) == [False, True, True, False, False]  # tie marked twice; noise never; d alone in v
    assert list(mask["speed"]) == [False, True, False, False, False]  # higher is better; NaN skipped
    assert list(mask["p"]) == [True, False, False, False, False]  # b's 0.5 is not a valid percentile


def test_formats_round_trip_and_escape() -> None:
    table = _toy_table()
    back = pd.read_csv(io.StringIO(table.to_csv()))
    assert list(back["lat_best"]) == [False, True, True, False, False]
    assert back["lat"].tolist() == table.data["lat"].tolist()
    md = table.to_markdown()
    assert "| **2.00** |" in md and "0.500 †" in md
    tex = table.to_latex()
    assert r"\textbf{2.00}" in tex and r"$\downarrow$" in tex and r"\dag{}" in tex
    assert "_" not in tex.split("\\begin{tabular}")[1].replace(r"\_", "")


def test_format_value_rules() -> None:
    assert [format_value(v) for v in (1234.5, 12.345, 1.2345, 0.12345, 0.0012345, 0, float("nan"))] == [
        "1234", "12.3", "1.23", "0.123", "1.23e-03", "0", "–"]
    assert format_value(0.25, "pct") == "25.0%" and format_value(3.6, "int") == "4"


def test_log_mel_metrics_are_labelled_as_such() -> None:
    assert metric_label("fad_logmel") == "FAD (log-mel, not a pretrained embedder)"
    assert metric_label("kad_logmel") == "KAD x100 (log-mel, not a pretrained embedder)"
    assert metric_label("clap_score") == "CLAP score (cosine)"


def test_saved_run_tables(saved_run) -> None:
    runs = load_runs([saved_run])
    tables = build_tables(runs)
    assert set(tables) == {"latency", "phases", "compute", "quality", "drift"}
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


def test_not_a_run_folder(tmp_path) -> None:
    with pytest.raises(ReportError, match="no manifest.json"):
        load_run(tmp_path)
    with pytest.raises(ReportError, match="does not exist"):
        load_run(tmp_path / "nope")
