"""The report's music part, from the saved run of conftest.py (its drift stage computed descriptors):
the quality table's descriptor columns beside the reference set's row, the spectrogram strips (their
image data, not only a file), the descriptors-over-time figure, and both in the HTML page."""

from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd

matplotlib.use("Agg")  # a test-only choice; the report code never selects a backend

from bench.core.run_folder import load_runs  # noqa: E402
from metrics.drift.descriptor_columns import WINDOW_MEAN_COLUMNS  # noqa: E402
from reports.descriptor_stats import REFERENCE_ROW, TABLE_DESCRIPTORS, clustered_mean  # noqa: E402
from reports.figures import render_figures  # noqa: E402
from reports.quality_figures import descriptor_curves  # noqa: E402
from reports.spectrograms import N_BANDS, POSITIONS, spectrogram_strips  # noqa: E402
from reports.style import paper_style  # noqa: E402

DRIFT_REGIMES = ["toy-cached", "toy-collapse", "noise"]


def test_quality_table_shows_regime_descriptors_beside_the_reference(built_report) -> None:
    _, index = built_report
    quality = pd.read_csv(index.parent / "tables" / "quality.csv")
    assert list(quality.generator)[-1] == REFERENCE_ROW  # after the regimes
    assert set(quality.generator) == {*DRIFT_REGIMES, REFERENCE_ROW}
    for name in TABLE_DESCRIPTORS:
        assert {name, f"{name}_ci_low", f"{name}_ci_high"} <= set(quality.columns), name
    rows = quality.set_index("generator")
    assert np.isnan(rows.loc[REFERENCE_ROW, "kad_logmel"])  # the reference has no distance to itself
    assert rows.loc[REFERENCE_ROW, "pitched_fraction"] > 0.3  # synthetic music through the codec: pitched
    assert rows.loc["noise", "pitched_fraction"] < 0.05  # white noise: unpitched
    collapse = rows.loc["toy-collapse"]  # pitched music for half its stream, then clipped noise
    assert 0.25 < collapse.pitched_fraction < 0.75
    assert collapse.pitched_fraction_ci_low <= collapse.pitched_fraction <= collapse.pitched_fraction_ci_high
    markdown = (index.parent / "tables" / "quality.md").read_text()
    assert f"| {REFERENCE_ROW} | smoke | – | – |" in markdown and "pitched fraction" in markdown


def test_clustered_mean_resamples_whole_units() -> None:
    values = np.array([1.0, 1.0, 1.0, 3.0, 3.0, 3.0])
    mean, low, high = clustered_mean(values, np.array([0, 0, 0, 1, 1, 1]))
    assert mean == 2.0 and low == 1.0 and high == 3.0  # two streams: a resample is all of one, the other or both
    same, lo2, hi2 = clustered_mean(values, np.arange(6))  # six independent units: a narrower interval
    assert same == 2.0 and 1.0 < lo2 <= hi2 < 3.0
    assert np.isnan(clustered_mean(np.array([np.nan]), np.array([0]))[0])


def test_spectrogram_strips_show_each_regime_beside_the_reference(saved_run) -> None:
    with paper_style():
        fig, caption = spectrogram_strips(load_runs([saved_run]))
    images = [ax.images[0].get_array() for ax in fig.axes if ax.images]
    regimes = ["toy-uncached", "toy-cached", "toy-collapse", "noise"]  # every regime with saved audio
    assert len(images) == len(regimes) * (len(POSITIONS) + 1)  # start, middle, end and the reference
    labels = [ax.get_ylabel() for ax in fig.axes if ax.images and ax.get_ylabel()]
    assert sorted(labels) == sorted(regimes)
    for image in images:
        assert image.shape[0] == N_BANDS and image.shape[1] >= 2 and float(np.std(image)) > 1.0  # not constant
    by_row = [images[i:i + 4] for i in range(0, len(images), 4)]
    reference = by_row[0][3]
    assert all(np.array_equal(row[3], reference) for row in by_row)  # the same reference clip in every row
    collapse = by_row[labels.index("toy-collapse")]
    top = slice(N_BANDS // 2, None)  # the upper bands: empty in the plucked music, full in the noise it becomes
    assert float(np.mean(collapse[2][top])) > float(np.mean(collapse[0][top])) + 20.0
    assert "reference clip" in caption


def test_spectrogram_strips_without_a_saved_reference(golden_run) -> None:
    with paper_style():
        fig, caption = spectrogram_strips(load_runs([golden_run]))  # no drift stage: no reference clip
    with_images = [ax for ax in fig.axes if ax.images]
    assert len(with_images) == 3 * len(POSITIONS)  # start, middle, end of each timed regime, no reference
    assert sorted(ax.get_ylabel() for ax in with_images if ax.get_ylabel()) == ["noise", "toy-cached", "toy-uncached"]
    assert "No reference clip" in caption


def test_descriptor_curves_show_every_window_descriptor(saved_run, golden_run, tmp_path) -> None:
    runs = load_runs([saved_run])
    windows = runs.runs[0].drift_windows
    finite = [m for m in WINDOW_MEAN_COLUMNS if np.isfinite(pd.to_numeric(windows[m], errors="coerce")).any()]
    with paper_style():
        fig, caption = descriptor_curves(runs)
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title().replace("\n", " ") for ax in panels][0] == "pitched fraction"
    assert len(panels) == len(finite) and "reference" in caption
    first = panels[0]
    assert len([ln for ln in first.get_lines() if ln.get_linestyle() == "-"]) == len(DRIFT_REGIMES)
    assert any(ln.get_linestyle() == "--" for ln in first.get_lines())  # the reference clips' mean
    missing = render_figures(load_runs([golden_run]), tmp_path, ["descriptor_curves"])[0]
    assert not missing.rendered and "drift.descriptors" in missing.note


def test_html_shows_the_strips_and_the_descriptor_curves(built_report) -> None:
    _, index = built_report
    html = index.read_text()
    for name in ("spectrogram_strips", "descriptor_curves"):
        assert f'<figure id="fig-{name}"><img src="figures/{name}.png"' in html, name
        assert (index.parent / "figures" / f"{name}.png").stat().st_size > 10_000
    markdown = (index.parent / "report.md").read_text()
    assert "![Music descriptors over stream time](figures/descriptor_curves.png)" in markdown
