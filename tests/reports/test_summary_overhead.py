"""reports.summary: the null generator's line splits its block into its own work and the harness's."""

import pandas as pd

from metrics.systems import null_overhead
from reports.summary import _overhead_lines


def _overhead(with_phases: bool) -> pd.DataFrame:
    summary = pd.DataFrame([{"workload": "w", "generator": g, "p50_ms": ms} for g, ms in [("noise", 0.2), ("lmdm-causal", 40.0)]])
    phases = pd.DataFrame([{"workload": "w", "generator": "noise", "phase": "decode", "block_kind": "steady",
                            "calls": 1, "median_ms": 0.15}])
    return null_overhead(summary, phases if with_phases else None)


def test_the_null_line_names_its_own_work_and_the_harness_around_it():
    line = _overhead_lines(_overhead(True), "w")[0]
    assert line.startswith("Null generator (`noise`) block latency: 0.200 ms median, 0.500% of `lmdm-causal`'s")
    assert "0.150 ms is the null generator's own work inside its phases" in line
    assert "0.050 ms (0.125%) the harness around them" in line


def test_without_phase_times_the_line_does_not_split_the_block():
    line = _overhead_lines(_overhead(False), "w")[0]
    assert "0.500%" in line and "own work" not in line
