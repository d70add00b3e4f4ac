"""Figures render non-interactively (Agg) from a small saved run, in the paper style, without
touching matplotlib's global settings; PDFs embed TrueType fonts; missing data gives a visible note."""

from __future__ import annotations

import re

import matplotlib
import pytest

matplotlib.use("Agg")  # a test-only choice; the report code never selects a backend

from bench.core.run_folder import load_runs  # noqa: E402
from reports.figures import FIGURES, render_figures  # noqa: E402
from reports.style import DOUBLE_COLUMN_IN, PNG_DPI, SINGLE_COLUMN_IN, figure_size, paper_style, regime_colour  # noqa: E402


def _png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


# figures of real timings only: the saved run's clock is fake, so they show their note there (and
# render from a real run in their own test below)
REAL_CLOCK_FIGURES = {"roofline"}


def test_every_figure_renders_from_the_saved_run(built_report) -> None:
    _, index = built_report
    folder = index.parent / "figures"
    for name in set(FIGURES) - REAL_CLOCK_FIGURES:
        pdf, png = folder / f"{name}.pdf", folder / f"{name}.png"
        assert pdf.exists() and png.exists(), f"{name} not rendered"
        width, _ = _png_size(png)
        assert width in (round(SINGLE_COLUMN_IN * PNG_DPI), round(DOUBLE_COLUMN_IN * PNG_DPI)), (name, width)
        data = pdf.read_bytes()
        assert b"/FontFile2" in data, f"{name}: fonts not embedded as TrueType"
        assert b"/Type3" not in data, f"{name}: Type 3 fonts"
        assert b"/CreationDate" not in data


def test_rendering_leaves_global_settings_alone(saved_run, tmp_path) -> None:
    before = dict(matplotlib.rcParams)
    render_figures(load_runs([saved_run]), tmp_path, ["rtf_bars", "latency_cdf"])
    after = dict(matplotlib.rcParams)
    assert {k for k in before if before[k] != after[k]} == set()
    with paper_style():
        assert matplotlib.rcParams["pdf.fonttype"] == 42
    assert matplotlib.rcParams["pdf.fonttype"] == before["pdf.fonttype"]


def test_missing_data_gives_visible_notes(golden_run, tmp_path) -> None:
    results = {r.name: r for r in render_figures(load_runs([golden_run]), tmp_path,
                                                 ["context_scaling", "peak_fraction", "drift_curves", "quality_vs_rtf"])}
    assert all(not r.rendered for r in results.values())
    assert "run --workload context-sweep" in results["context_scaling"].note
    assert "not measured" in results["peak_fraction"].note and "--no-peak" in results["peak_fraction"].note
    assert "drift" in results["drift_curves"].note
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_missing_figure_notes_reach_html_and_markdown(golden_run, tmp_path) -> None:
    from reports.build import build_report

    index = build_report([golden_run], tmp_path / "report")
    html = index.read_text()
    md = (index.parent / "report.md").read_text()
    for text in (html, md):
        assert "not in this run: run --workload context-sweep" in text
    assert re.search(r'class="missing" id="fig-context_scaling"', html)


def test_sizes_and_colours_are_fixed() -> None:
    assert figure_size(1) == (3.5, pytest.approx(3.5 * 0.68)) and figure_size(2)[0] == 7.0
    with pytest.raises(ValueError, match="columns"):
        figure_size(3)
    assert regime_colour("lmdm-causal") == regime_colour("lmdm-causal") != regime_colour("lmm")
    assert regime_colour("someone-elses-model") == regime_colour("someone-elses-model")


def test_plotted_data_equals_the_saved_records(saved_run) -> None:
    """The figures draw the run's numbers, not just files: the timeline's points are each regime's
    block latencies at their stream times, the CDF ends at 1 over the sorted latencies, and the bars'
    heights are the latency table's median RTFs."""
    import numpy as np

    from reports.systems_figures import latency_cdf, latency_timeline, rtf_bars
    from reports.systems_tables import latency_table

    runs = load_runs([saved_run])
    run = runs.runs[0]
    blocks = run.blocks[run.blocks.workload == "smoke"]
    assert blocks.generator.nunique() >= 2
    with paper_style():
        fig, _ = latency_timeline(runs)
        lines = {line.get_label(): line for line in fig.axes[0].get_lines()}
        for gen in blocks.generator.unique():
            b = blocks[(blocks.generator == gen) & (blocks.repeat == 0)].sort_values("block_index")
            line = next(v for k, v in lines.items() if k.startswith(gen))
            np.testing.assert_array_equal(line.get_xdata(), b.audio_start_s.to_numpy())
            np.testing.assert_array_equal(line.get_ydata(), b.latency_ms.to_numpy())

        fig, _ = latency_cdf(runs)
        steps = {line.get_label(): line for line in fig.axes[0].get_lines()}
        for gen in blocks.generator.unique():
            line = next(v for k, v in steps.items() if k.startswith(gen))
            lat = np.sort(blocks[blocks.generator == gen].latency_ms.to_numpy())
            np.testing.assert_array_equal(line.get_xdata()[1:], lat)
            assert line.get_ydata()[-1] == 1.0 and line.get_ydata()[0] == 0.0

        fig, _ = rtf_bars(runs)
        table = latency_table(runs).data
        smoke = table[table.workload == "smoke"].reset_index(drop=True)
        ax = next(a for a in fig.axes if a.get_title() == "workload smoke")
        heights = [patch.get_height() for patch in ax.patches]
        np.testing.assert_allclose(heights, smoke.rtf.to_numpy(dtype=float))
        assert len(heights) == len(smoke) >= 2


def test_roofline_renders_from_a_wall_clock_run_and_says_why_not_from_a_fake_one(saved_run, tmp_path) -> None:
    from bench.app.cli import main

    real = tmp_path / "real"
    assert main(["--workload", "smoke", "--preset", "tiny", "--generators", "lmdm-causal,lmm", "--no-drift",
                 "--no-continuation", "--no-report", "--progress", "off", "--out", str(real)]) == 0
    [result] = render_figures(load_runs([real]), tmp_path / "figures", ["roofline"])
    assert result.rendered, result.note
    [fake] = render_figures(load_runs([saved_run]), tmp_path / "fake", ["roofline"])
    assert not fake.rendered and "fake clock" in fake.note
