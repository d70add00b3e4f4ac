"""run_all.py end to end with fake generators and a FakeClock: configuration, failures, resume."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
import torch

from bench.app.cli import _setup_logging, build_parser, main
from bench.app.config import resolve_config
from bench.app.clocks import FakeClock
from bench.app.manifest import REPO_ROOT
from bench.app.plan import build_plan
from bench.core.registry import GENERATORS
from bench.core.storage import read_json, read_table
from bench.core.phases import PHASE_BOOTSTRAP, PHASE_DECODE, PHASE_STEP
from tests.bench.app.test_runner import MS, PHASE_NS, FailingGenerator, FakeGenerator, fakes  # noqa: F401 (fixture)

# The drift stage and the report are covered end to end in test_cli_stages.py.
BASE = ["--preset", "tiny", "--workload", "smoke", "--no-peak", "--progress", "off", "-q", "--no-drift", "--no-report"]
RUN_TABLES = ("blocks", "phases", "streams", "flops", "summary", "phase_summary", "pairs", "overhead", "cells")
# Columns that legitimately differ between two runs of the same cells on a FakeClock.
VOLATILE = {"peak_mem_bytes", "peak_mem_baseline_bytes", "wall_s", "resumed"}


def run(args: list[str]) -> int:
    return main(BASE + args, clock=FakeClock(PHASE_NS))


def plan_for(argv: list[str]):  # noqa: ANN201
    return build_plan(resolve_config(build_parser().parse_args(argv)))


def test_help_is_usable(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for needle in ("--workload", "--resume", "workload.horizon_s", "examples:", "exit status", "[set]", "--executor",
                   "--ray-address", "executor = \"ray\""):
        assert needle in text


def test_list_names_everything(capsys):
    assert main(["--list"]) == 0
    text = capsys.readouterr().out
    assert "default" in text and "cpu" in text and "noise" in text and "workload.horizon_s" in text


@pytest.fixture
def logging_levels():
    """Restores the root and fontTools logger levels that ``_setup_logging`` changes."""
    loggers = [logging.getLogger(), logging.getLogger("fontTools")]
    saved = [lg.level for lg in loggers]
    yield
    for lg, level in zip(loggers, saved):
        lg.setLevel(level)


@pytest.mark.parametrize("verbose", [0, 1])
def test_pdf_font_subsetting_chatter_is_logged_only_when_verbose(verbose, logging_levels, tmp_path, caplog):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    _setup_logging(verbose, quiet=False)
    fig, ax = plt.subplots()
    ax.set_title("latency_ms")
    # TrueType embedding (the report's figures use it) is what calls fontTools to subset the font
    with caplog.at_level(logging.DEBUG if verbose else logging.INFO), matplotlib.rc_context({"pdf.fonttype": 42}):
        fig.savefig(tmp_path / "figure.pdf")
    plt.close(fig)
    chatter = [r for r in caplog.records if r.name.startswith("fontTools")]
    assert (tmp_path / "figure.pdf").stat().st_size > 0
    assert bool(chatter) == bool(verbose)


def test_no_arguments_means_every_generator_default_workload_cpu_preset():
    plan = plan_for([])
    assert plan.preset.name == "cpu" and [w.name for w in plan.workloads] == ["default"]
    assert plan.generators == GENERATORS.names() and plan.dtype == torch.float32
    assert plan.device == ("cuda" if torch.cuda.is_available() else "cpu")


def test_config_file_then_flags_then_overrides(tmp_path):
    cfg = tmp_path / "run.toml"
    cfg.write_text(textwrap.dedent("""
        preset = "tiny"
        workload = "smoke"
        generators = ["noise"]
        [set]
        "workload.horizon_s" = 0.75
        "dit.width" = 64
        "workload.cfg" = true
    """))
    plan = plan_for(["--config", str(cfg)])
    assert plan.preset.name == "tiny" and plan.preset.dit.width == 64
    (w,) = plan.workloads
    assert w.horizon_s == 0.75 and w.cfg is True and w.n_blocks == 6
    plan = plan_for(["--config", str(cfg), "--preset", "cpu", "--set", "workload.horizon_s=0.625"])
    assert plan.preset.name == "cpu" and plan.workloads[0].horizon_s == 0.625  # flags win, later --set wins


def test_the_null_generator_always_runs(fakes):
    assert plan_for(["--generators", "fake"]).generators == ["fake", "noise"]


@pytest.mark.parametrize("argv, message", [
    (["--set", "settings.steps=4"], "use workload.steps=4"),
    (["--generators", "lmdm-casual"], "did you mean 'lmdm-causal'"),
    (["--preset", "cpuu"], "did you mean 'cpu'"),
    (["--workload", "defualt"], "did you mean 'default'"),
    (["--set", "workload.horizon_s=-1"], "horizon_s"),
    (["--dtype", "float8"], "dtype"),
    (["--resume"], "--resume needs --out"),
])
def test_bad_configuration_exits_2_with_a_clear_message(argv, message, caplog):
    assert main(argv + ["--no-peak"]) == 2
    assert message in caplog.text


def test_unknown_config_key_is_named(tmp_path, caplog):
    cfg = tmp_path / "bad.toml"
    cfg.write_text('presett = "cpu"\n')
    assert main(["--config", str(cfg)]) == 2
    assert "did you mean 'preset'" in caplog.text


def test_summary_follows_the_fake_clock_in_closed_form(fakes, tmp_path):
    """smoke: 8 blocks of 0.125 s, 3 steps, prompt change at 0.5 s (block 4 re-bootstraps), 1-block pre-buffer.
    Blocks take 190 ms (bootstrap 40 + 3 x 50) or 150 ms: every block after the first is late."""
    out = tmp_path / "run"
    slow = {PHASE_BOOTSTRAP: 40 * MS, PHASE_STEP: 50 * MS, PHASE_DECODE: 0}
    assert main(BASE + ["--generators", "fake", "--out", str(out)], clock=FakeClock(slow)) == 0
    s = read_table(out, "summary").set_index("generator").loc["fake"]
    lat = [0.19, 0.15, 0.15, 0.15, 0.19, 0.15, 0.15, 0.15]
    f = [sum(lat[: k + 1]) for k in range(8)]  # back to back from t = 0
    assert s.ttfa_ms == pytest.approx(190) and s.p50_ms == pytest.approx(150) and s.p90_ms == pytest.approx(190)
    assert not s.p90_valid and not s.p99_valid
    assert s.rtf == pytest.approx(sum(lat) / 1.0) and s.x_realtime == pytest.approx(1.0 / sum(lat))
    # p_0 = f_0; block k is due at p_{k-1} + 0.125 and always late, so p_k = f_k and stall_k = f_k - f_{k-1} - 0.125
    assert s.underruns == 7 and s.stall_s == pytest.approx(sum(f[k] - f[k - 1] - 0.125 for k in range(1, 8)))
    assert s.verdict.startswith("not real time (7 underruns")
    assert s.min_start_delay_s == pytest.approx(max(f[k] - 0.125 * k for k in range(8)))  # f_7 - A_6
    assert s.min_prebuffer_s == pytest.approx(0.375)  # first f_m >= 0.405 is f_2 = 0.49: three blocks
    assert s.prompt_changes == 1
    assert s.control_latency_best_ms == pytest.approx(1e3 * (f[4] - f[3]))  # p_4 - s_4 with p_4 = f_4, s_4 = f_3
    assert s.control_latency_worst_ms == pytest.approx(1e3 * (f[4] - f[2]))  # p_4 - s_3
    assert s.blocks == 8 and s.kv_cache_bytes == 800 and s.params == 8


def test_threads_apply_during_the_run_only(fakes, tmp_path):
    seen = []

    class Threads(FakeGenerator):
        name = "fake-threads"

        def __init__(self, *args, **kwargs):  # noqa: ANN002, ANN003
            seen.append(torch.get_num_threads())
            super().__init__(*args, **kwargs)

    before = torch.get_num_threads()
    GENERATORS.register("fake-threads", Threads)
    try:
        assert run(["--generators", "fake-threads", "--threads", "1", "--out", str(tmp_path / "run")]) == 0
    finally:
        GENERATORS.unregister("fake-threads")
    assert seen == [1] and torch.get_num_threads() == before
    assert read_json(tmp_path / "run" / "manifest.json")["threads"]["torch_threads"] == 1
    assert main(["--threads", "-1"]) == 2


def test_a_failing_generator_fails_its_cell_only(fakes, tmp_path):
    out = tmp_path / "run"
    assert run(["--generators", "fake,fake-fail", "--out", str(out)]) == 1
    status = read_json(out / "cells" / "fake-fail__smoke" / "status.json")
    assert status["status"] == "failed" and "fake failure at block 3" in status["traceback"]
    assert "Traceback" in status["traceback"] and status["error"].startswith("RuntimeError")
    for ok in ("fake__smoke", "noise__smoke"):
        assert read_json(out / "cells" / ok / "status.json")["status"] == "ok"
    summary = read_table(out, "summary")
    assert sorted(summary.generator) == ["fake", "noise"]
    cells = read_table(out, "cells")
    assert dict(zip(cells.generator, cells.status)) == {"fake": "ok", "fake-fail": "failed", "noise": "ok"}
    text = (out / "summary.md").read_text()
    assert "FAILED fake-fail x smoke" in text and "| fake |" in text and "Null generator" in text


def test_manifest_is_written_before_any_work(fakes, tmp_path):
    out = tmp_path / "run"

    class Checking(FakeGenerator):
        name = "fake-check"

        def __init__(self, *args, **kwargs):  # noqa: ANN002, ANN003
            assert (out / "manifest.json").exists()
            super().__init__(*args, **kwargs)

    GENERATORS.register("fake-check", Checking)
    try:
        assert run(["--generators", "fake-check", "--out", str(out)]) == 0
    finally:
        GENERATORS.unregister("fake-check")
    manifest = read_json(out / "manifest.json")
    assert [c["generator"] for c in manifest["run"]["cells"]] == ["fake-check", "noise"]
    assert manifest["run"]["workloads"]["smoke"]["fingerprint"] and manifest["run"]["seeds"] == {"smoke": [0]}


def test_resume_skips_completed_cells_and_reruns_failed_ones(fakes, tmp_path, monkeypatch):
    out = tmp_path / "run"
    assert run(["--generators", "fake,fake-fail", "--out", str(out)]) == 1
    assert main(BASE + ["--generators", "fake", "--out", str(out)]) == 2  # no silent overwrite
    FakeGenerator.built = []
    monkeypatch.setattr(FailingGenerator, "fail_at", None)  # the failure is fixed; same code, same hash
    assert run(["--generators", "fake,fake-fail", "--out", str(out), "--resume"]) == 0
    assert [type(g).name for g in FakeGenerator.built] == ["fake-fail"]  # ok cells were not run again
    assert read_json(out / "cells" / "fake-fail__smoke" / "status.json")["status"] == "ok"
    assert list(out.glob("manifest-resume-*.json"))
    cells = read_table(out, "cells")
    assert dict(zip(cells.generator, cells.resumed)) == {"fake": True, "fake-fail": False, "noise": True}


def test_a_changed_workload_is_refused_on_resume_unless_allowed(fakes, tmp_path, caplog):
    out = tmp_path / "run"
    assert run(["--generators", "fake", "--out", str(out)]) == 0
    FakeGenerator.built = []
    changed = ["--generators", "fake", "--out", str(out), "--resume", "--set", "workload.steps=2"]
    assert run(changed) == 2 and FakeGenerator.built == []  # refused: nothing re-run or overwritten
    assert "was made with another configuration" in caplog.text and "--allow-config-change" in caplog.text
    assert run(changed + ["--allow-config-change"]) == 0
    assert len(FakeGenerator.built) == 1  # the hash changed, so the cell ran again
    assert (read_table(out, "phases").query("phase == 'step'").calls == 2).all()
    manifest = read_json(out / "manifest.json")  # both configurations recorded where reports look
    (change,) = manifest["config_changes"]
    assert change["manifest"].startswith("manifest-resume-") and "workloads" in change["changes"][0]
    assert manifest["current_identity"]["workloads"] != change["previous_identity"]["workloads"]
    assert run(changed) == 0  # the new configuration is now the run's: resuming with it skips the cell


KILL_SCRIPT = """
import os, signal, sys
from tests.bench.app import test_runner as t
t.register_fakes()
t.SlowFakeGenerator.kill_at = 2
t.SlowFakeGenerator.kill = staticmethod(lambda: os.kill(os.getpid(), signal.SIGKILL))
from bench.app.clocks import FakeClock
from bench.app.cli import main
sys.exit(main(sys.argv[1:], clock=FakeClock(t.PHASE_NS)))
"""


def _tables(out: Path) -> dict[str, pd.DataFrame]:
    return {name: read_table(out, name).drop(columns=list(VOLATILE), errors="ignore") for name in RUN_TABLES}


def test_a_killed_run_resumed_equals_an_uninterrupted_one(fakes, tmp_path):
    args = ["--generators", "fake,fake-slow"]
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    assert run(args + ["--out", str(whole)]) == 0
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", KILL_SCRIPT, *BASE, *args, "--out", str(killed)],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr  # SIGKILL in the middle of fake-slow's stream
    assert read_json(killed / "cells" / "fake__smoke" / "status.json")["status"] == "ok"
    assert not (killed / "cells" / "fake-slow__smoke" / "status.json").exists()
    assert not (killed / "summary.parquet").exists()

    FakeGenerator.built = []
    assert run(args + ["--out", str(killed), "--resume"]) == 0
    assert [type(g).name for g in FakeGenerator.built] == ["fake-slow"]
    a, b = _tables(whole), _tables(killed)
    for name in RUN_TABLES:
        pd.testing.assert_frame_equal(a[name], b[name], check_dtype=False, obj=name)
    blocks = b["blocks"]
    assert not blocks.duplicated(["generator", "workload", "repeat", "block_index"]).any()
    assert len(blocks) == 3 * 8  # fake, fake-slow, noise x 8 blocks
    assert not list((killed / "cells" / "fake-slow__smoke" / "audio").glob(".*.tmp"))
