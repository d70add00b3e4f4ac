"""scripts/attainable_sweep.py: repeats in rotated regime order, pairs oriented alike, medians.

The runs themselves are ``run_all.py`` runs (tested elsewhere); here the sweep reads run folders
that already hold their tables, as it does when re-run on an existing ``--out``.
"""

import pandas as pd
import pytest

from bench.core.run_folder import RunFolderError
from metrics.systems import pairwise_ratios
from tests.script_loader import loaded_script


@pytest.fixture(scope="module")
def sweep():  # noqa: ANN201
    yield from loaded_script("attainable_sweep")


# steady median ms, attainable ms (warm, cold) and analytic FLOPs of one run
RUN = {"outpaint": (100.0, 80.0, 90.0, 8e9), "lmdm-encdec": (50.0, 30.0, 36.0, 3e9),
       "lmdm-causal": (40.0, 25.0, 30.0, 2e9), "noise": (0.1, 0.01, 0.01, 0.0)}


def _summary(order: list[str], scale: dict[str, float] | None = None) -> pd.DataFrame:
    """A run's steady summary with its regimes in ``order``; ``scale`` slows a regime's latency."""
    scale = scale or {}
    return pd.DataFrame([{"workload": "default", "generator": g, "steady_median_ms": RUN[g][0] * scale.get(g, 1.0),
                          "steady_attainable_ms": RUN[g][1], "steady_attainable_cold_ms": RUN[g][2],
                          "steady_analytic_flops": RUN[g][3]} for g in order])


def test_each_repeat_starts_with_the_next_regime(sweep):
    orders = [sweep.regime_order(k) for k in range(4)]
    assert [o[0] for o in orders] == ["outpaint", "lmdm-encdec", "lmdm-causal", "outpaint"]
    assert all(sorted(o) == sorted(sweep.REGIMES) for o in orders)


def test_a_run_in_reversed_order_gives_the_same_oriented_pairs(sweep):
    forward = sweep.oriented_pairs(pairwise_ratios(_summary(sweep.REGIMES + ["noise"])))
    reverse = sweep.oriented_pairs(pairwise_ratios(_summary(["noise"] + sweep.REGIMES[::-1])))
    key = ["a", "b"]
    forward, reverse = forward.sort_values(key).reset_index(drop=True), reverse.sort_values(key).reset_index(drop=True)
    assert list(zip(forward.a, forward.b)) == [("lmdm-encdec", "lmdm-causal"), ("outpaint", "lmdm-causal"),
                                               ("outpaint", "lmdm-encdec")]
    pd.testing.assert_frame_equal(forward[key + sweep.RATIOS], reverse[key + sweep.RATIOS], rtol=1e-12)
    row = forward[(forward.a == "outpaint") & (forward.b == "lmdm-causal")].iloc[0]
    assert row.latency_ratio == pytest.approx(100.0 / 40.0)
    assert row.latency_over_attainable_cold_ratio == pytest.approx((100.0 / 40.0) / (90.0 / 30.0))


def test_quotients_are_summarised_by_median_and_range_over_repeats(sweep):
    slow = [1.0, 1.25, 1.1]  # lmdm-causal's latency scaled in each repeat
    pairs = pd.concat([
        sweep.oriented_pairs(pairwise_ratios(_summary(sweep.regime_order(k), {"lmdm-causal": s})))
        .assign(width=384, mode="eager", repeat=k) for k, s in enumerate(slow)])
    out = sweep.pair_summary(pairs).set_index(["a", "b"])
    row = out.loc[("outpaint", "lmdm-causal")]
    base = (100.0 / 40.0) / (80.0 / 25.0)
    assert row.repeats == 3
    assert row.quotient == pytest.approx(base / 1.1)
    assert (row.quotient_min, row.quotient_max) == (pytest.approx(base / 1.25), pytest.approx(base))
    assert row.quotient_cold == pytest.approx((100.0 / 40.0) / (90.0 / 30.0) / 1.1)
    assert out.loc[("outpaint", "lmdm-encdec")].quotient_min == out.loc[("outpaint", "lmdm-encdec")].quotient_max


def test_main_reads_existing_run_folders_and_prints_medians(sweep, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sweep.subprocess, "run", lambda *a, **k: pytest.fail("a folder with tables was run again"))
    for k, s in enumerate([1.0, 1.2]):
        folder = tmp_path / ("w384-eager" + (f"-r{k}" if k else ""))
        folder.mkdir()
        pairwise_ratios(_summary(sweep.regime_order(k), {"lmdm-causal": s})).to_csv(folder / "pairs.csv", index=False)
        pd.DataFrame([{"generator": g, "phase": "step", "block_kind": "steady", "median_ms": RUN[g][0],
                       "attainable_ms": RUN[g][1], "attainable_cold_ms": RUN[g][2],
                       "attainable_fraction": RUN[g][1] / RUN[g][0] * (1.0 if k else 0.5),
                       "attainable_cold_fraction": RUN[g][2] / RUN[g][0]} for g in RUN]
                     ).to_csv(folder / "phase_summary.csv", index=False)
        if k:  # the second run measured its matmul peak, the first did not (--no-peak)
            (folder / "peak.json").write_text('{"flops_per_s": 150e9}')
    assert sweep.main(["--out", str(tmp_path), "--widths", "384", "--modes", "eager", "--repeats", "2"]) == 0
    text = capsys.readouterr().out
    causal = next(line for line in text.splitlines() if line.startswith("| 384 | eager | outpaint | lmdm-causal |"))
    cells = [c.strip() for c in causal.strip("|").split("|")]
    base = (100.0 / 40.0) / (80.0 / 25.0)
    assert cells[4] == "2"  # repeats
    median, low, high = base * (1 + 1 / 1.2) / 2, base / 1.2, base  # median of two: their mean
    assert [float(c) for c in cells[7:10]] == [pytest.approx(v, abs=1e-3) for v in (median, low, high)]
    outpaint = next(line for line in text.splitlines() if line.startswith("| 384 | eager | outpaint | step |"))
    assert float(outpaint.split("|")[7]) == pytest.approx(100 * 0.75 * 80.0 / 100.0, abs=0.1)  # median of 40% and 80%
    assert "noise" not in text
    assert text.strip().splitlines()[-1] == ("Matmul peak measured by 1 of 2 runs (each its own micro-benchmark; "
                                             "the others have no peak.json): median 150 GFLOP/s, range 150-150 (1.00x).")


def test_the_peak_line_gives_the_runs_median_and_range(sweep, tmp_path):
    folders = []
    for k, gflops in enumerate([120.0, 190.0, 170.0]):
        folder = tmp_path / f"run{k}"
        folder.mkdir()
        (folder / "peak.json").write_text(f'{{"flops_per_s": {gflops * 1e9}}}')
        folders.append(folder)
    assert sweep.peak_line(folders) == ("Matmul peak measured by 3 of 3 runs (each its own micro-benchmark): "
                                        "median 170 GFLOP/s, range 120-190 (1.58x).")
    (tmp_path / "bare").mkdir()
    assert sweep.peak_line([tmp_path / "bare"]) == "Matmul peak: not measured (no peak.json in the 1 run folders)."
    (folders[0] / "peak.json").write_text("{not json")
    with pytest.raises(RunFolderError, match="damaged"):  # a damaged run folder is reported, never skipped
        sweep.peak_line(folders)


def test_repeats_must_be_positive(sweep, tmp_path):
    with pytest.raises(SystemExit):
        sweep.main(["--out", str(tmp_path), "--repeats", "0"])
