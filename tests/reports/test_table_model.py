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


def test_user_names_with_markup_are_inert_in_markdown() -> None:
    from reports.formatting import markdown_code, markdown_text

    assert markdown_text("lmdm-causal") == "lmdm-causal"  # ordinary names are unchanged
    assert markdown_text("toy_x.1") == "toy_x.1"
    escaped = markdown_text("<b>x</b>|y*[z]`&")
    assert escaped == "&lt;b&gt;x&lt;/b&gt;\\|y\\*\\[z\\]\\`&amp;"
    assert "<" not in escaped and "|" not in escaped.replace("\\|", "")
    assert markdown_code("smoke") == "`smoke`"
    assert markdown_code("a`b") == "a\\`b"


def test_a_generator_name_with_markup_does_not_break_the_markdown_table() -> None:
    table = _toy_table()
    table.data.loc[0, "generator"] = "<img src=x onerror=alert(1)>|evil"
    md = table.to_markdown()
    row = next(line for line in md.splitlines() if "evil" in line)
    assert "<img" not in row and "&lt;img src=x onerror=alert(1)&gt;\\|evil" in row
    assert row.count(" | ") == len(table.columns) - 1  # the name's "|" did not add a column
