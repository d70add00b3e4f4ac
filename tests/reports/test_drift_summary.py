"""The drift section of the run summary, rendered from the drift stage's saved files only: a golden
text for a hand-made drift folder (every formatting rule), the saved run of conftest.py (the text
the drift stage wrote, its fixed header, the collapse it must show), and no section without a
drift stage."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from bench.core.storage import write_json, write_table
from reports.drift_summary import render_drift_summary
from reports.summary import render_summary

NAN = float("nan")
DRIFT = {"name": "drift-smoke", "n_streams": 3, "seeds": [7, 8, 9], "stream": {"name": "smoke", "seed": 7},
         "description": "3 streams x 60 s of the 'smoke' stream, windows 10 s every 10 s"}
SCORING = {"embedder": "logmel", "embedder_pretrained": False, "reference": "synthetic: test clips",
           "clap_identity": "not measured: no CLAP checkpoint given",
           "band_rule": {"early_windows": 3, "k": 3.0, "persist": 2, "use_ci": False,
                         "thresholds": {"loudness_lufs": [2.0, 0.0]}}}
STATUSES = [{"generator": "a", "status": "ok", "error": ""}, {"generator": "b", "status": "ok", "error": ""},
            {"generator": "c", "status": "failed", "error": "RuntimeError: out of memory"}]
SUMMARY_COLUMNS = ["generator", "metric", "first", "last", "slope_per_min", "slope_ci_low", "slope_ci_high", "drifted",
                   "time_to_degrade_s", "degrade_direction"]
SUMMARY_ROWS = [
    ["a", "kad_logmel", 12.345, 23.456, 1.5, 0.5, 2.5, True, 30.0, "up"],
    ["a", "self_kad_logmel", NAN, 0.5, 0.01, NAN, NAN, False, NAN, None],  # no first window: "-"
    ["a", "loudness_lufs", -20.0, -19.5, 0.25, -0.1, 0.6, False, NAN, None],
    ["a", "silence_ratio", 0.0, 0.0, 0.0, 0.0, 0.0, False, NAN, None],
    ["a", "clipping_ratio", 0.0, 0.0123, 0.1, 0.0, 0.2, True, 1234.5, "up"],
    ["b", "loudness_lufs", -18.0, -18.0, NAN, NAN, NAN, False, NAN, None],
    ["b", "clap_score", 0.31, 0.29, -0.002, -0.004, 0.0, False, NAN, ""],
]

HEADER = """\
## Drift over stream time

3 streams x 60 s of the 'smoke' stream, windows 10 s every 10 s; seeds 7..9. Cells: first window &rarr; last window (OLS slope per minute [t-based 95% CI]).
"""
GOLDEN = HEADER + """\
Quality embedder: `logmel` (weight-free log-mel features, NOT a pretrained-model metric). Reference: synthetic: test clips. CLAP: not measured: no CLAP checkpoint given.
Degraded: metrics whose time to degrade is within the horizon (band = mean +/- 3 std of the first 3 windows; leaves when outside by > max(abs, rel * |early mean|) for 2 consecutive window(s); thresholds in docs/drift.md). Every metric, with CIs: `drift/summary.csv`; per window: `drift/windows.csv`.

- **c: drift stage failed** (RuntimeError: out of memory); traceback in drift/config.json.
| regime | KAD logmel | self-KAD logmel | CLAP | loudness LUFS | centroid Hz | flatness | silence / clipping (last) | degraded |
|---|---|---|---|---|---|---|---|---|
| a | 12.3 &rarr; 23.5 (1.5/min [0.5, 2.5]) | - &rarr; 0.5 (0.01/min [n/m, n/m]) | not measured (no CLAP checkpoint) | -20 &rarr; -19.5 (0.25/min [-0.1, 0.6]) | n/m | n/m | 0 / 0.0123 | kad_logmel at 30 s (up); clipping_ratio at 1234 s (up) |
| b | n/m | n/m | 0.31 &rarr; 0.29 (-0.002/min [-0.004, 0]) | -18 &rarr; -18 (n/m/min [n/m, n/m]) | n/m | n/m | n/m / n/m | none |
"""

# The saved run's drift stage (conftest.py): 2 streams of 4 s of the tiny smoke stream, windows of 0.5 s,
# the synthetic reference through the tiny preset's codec, the default band rule.
SAVED_RUN_HEAD = """\
## Drift over stream time

2 streams x 4 s of the 'smoke' stream, windows 0.5 s every 0.5 s, from silence; seeds 0..1. Cells: first window &rarr; last window (OLS slope per minute [t-based 95% CI]).
Quality embedder: `logmel` (weight-free log-mel features, NOT a pretrained-model metric). Reference: synthetic: 8 clips x 0.5 s of baselines.degrading.render_music (seeds 10000-10007, drift prompts) through the preset 'tiny' DiT codec (MDCT, 8 of 250 bins (0-128 Hz)); not a real music data set. CLAP: not measured: no CLAP checkpoint given.
Degraded: metrics whose time to degrade is within the horizon (band = mean +/- 3 std of the first 3 windows; leaves when outside by > max(abs, rel * |early mean|) for 1 consecutive window(s); with a CI, the whole CI must be outside; thresholds in docs/drift.md). Every metric, with CIs: `drift/summary.csv`; per window: `drift/windows.csv`.

| regime | KAD logmel | self-KAD logmel | CLAP | loudness LUFS | centroid Hz | flatness | silence / clipping (last) | degraded |
|---|---|---|---|---|---|---|---|---|
"""


def _drift_folder(run: Path, summary: pd.DataFrame, scoring: dict, statuses: list[dict]) -> Path:
    """A run folder holding only what the drift stage saves for its summary."""
    write_table(run / "drift", "summary", summary)
    write_json(run / "drift" / "config.json", {"kind": "drift_config", "drift": DRIFT, "scoring": scoring,
                                               "statuses": statuses})
    return run


def test_golden_drift_summary(tmp_path: Path) -> None:
    run = _drift_folder(tmp_path, pd.DataFrame(SUMMARY_ROWS, columns=SUMMARY_COLUMNS), SCORING, STATUSES)
    assert render_drift_summary(run) == GOLDEN


def test_drift_summary_names_the_worker_processes(tmp_path: Path) -> None:
    run = _drift_folder(tmp_path, pd.DataFrame(SUMMARY_ROWS, columns=SUMMARY_COLUMNS), SCORING, STATUSES)
    config = json.loads((run / "drift" / "config.json").read_text())
    for execution, line in [({"workers": 1, "threads_per_worker": 2, "reason": "drift_workers = 1"}, None),
                            ({"workers": 2, "threads_per_worker": 1, "reason": "automatic: one per thread"},
                             "Streams generated and scored in 2 worker processes of 1 torch thread(s) each "
                             "(automatic: one per thread; docs/drift.md, \"Worker processes\").")]:
        write_json(run / "drift" / "config.json", {**config, "execution": execution})
        text = render_drift_summary(run)
        if line is None:
            assert text == GOLDEN  # in one process: nothing to add
        else:
            assert text == GOLDEN.replace("`drift/windows.csv`.\n", f"`drift/windows.csv`.\n{line}\n", 1)


def test_drift_summary_without_results(tmp_path: Path) -> None:
    run = _drift_folder(tmp_path, pd.DataFrame(), {}, [STATUSES[2]])  # every regime failed: no scoring config
    assert render_drift_summary(run) == HEADER + "\n" + (
        "- **c: drift stage failed** (RuntimeError: out of memory); traceback in drift/config.json.\n"
        "No drift results.\n")


def test_drift_summary_of_the_saved_run(saved_run: Path) -> None:
    text = render_drift_summary(saved_run)
    assert text == (saved_run / "drift" / "drift.md").read_text()  # what the drift stage wrote
    assert text.startswith(SAVED_RUN_HEAD)
    main, music = text[len(SAVED_RUN_HEAD):].split("\n\n", 1)  # the drift table, then the music section
    rows = [line.strip("| ").split(" | ") for line in main.splitlines()]
    assert [r[0] for r in rows] == ["toy-collapse", "toy-cached", "noise"]  # the drift stage's order
    assert all(len(r) == 9 and r[3] == "not measured (no CLAP checkpoint)" for r in rows)
    collapse, cached, noise = rows
    assert "loudness_lufs at 2 s (up)" in collapse[8]  # the toy collapses into clipped noise at 2 s
    assert "pitched_fraction at 2 s (down)" in collapse[8]  # its music stops being pitched there
    assert collapse[7].startswith("0 / ") and collapse[7] != "0 / 0"  # clipping in the last window
    assert cached[8] == noise[8] == "none"
    intro, _, header, _, *music_rows = music.splitlines()
    assert intro.startswith("Music over stream time") and "drift/stream_stability.csv" in intro
    assert header == ("| regime | modal key (per stream) | key agreement | key changes | tempo CV | pitched fraction "
                      "| key strength |")
    music_cells = [line.strip("| ").split(" | ") for line in music_rows]
    assert [r[0] for r in music_cells] == ["toy-collapse", "toy-cached", "noise"]
    assert all(len(r) == 7 and len(r[1].split("; ")) == 2 for r in music_cells)  # one modal key per stream
    assert music_cells[0][5].startswith("1 &rarr; 0 (")  # pitched music, then unpitched noise
    summary = render_summary(saved_run)
    assert "\n" + text.rstrip() + "\n\n## Continuation of held-out music" in summary  # then the continuation stage
    assert "_not measured: " in summary.split("## Continuation of held-out music")[1]  # tiny: not the data set's rate


def test_no_drift_stage_no_section(golden_run: Path) -> None:
    assert render_drift_summary(golden_run) == ""
    assert "Drift over stream time" not in render_summary(golden_run)
