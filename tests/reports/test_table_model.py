"""The table model: best markers (direction, ties, null generators, validity) and the formats (CSV
round trip, Markdown, LaTeX escaping)."""

from __future__ import annotations

import io

import pandas as pd

from reports.table_model import Column, Table


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
