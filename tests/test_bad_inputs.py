"""A battery of bad inputs and faults through ``run_all.py``'s entry point (``bench.app.cli.main``, in
process): each case checks the exit status, that the message names the problem, that nothing was
written outside the case's folder, and that no traceback escaped (main returns an int and never logs
"unexpected error", the harness's last-resort catch)."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import bench.core.storage as storage
from bench.app.cli import main
from bench.app.clocks import FakeClock
from bench.core.contract import NULL_RECORDER, StepResult
from bench.core.registry import GENERATORS
from bench.core.storage import read_json, read_table
from tests.bench.app.test_runner import PHASE_NS, FakeGenerator

BASE = ["--preset", "tiny", "--workload", "smoke", "--no-peak", "--progress", "off", "--no-drift", "--no-report",
        "--set", "workload.horizon_s=0.5", "--set", "workload.prompts=0:a;0.25:b"]
TRACEBACK_MARK = "unexpected error"  # what cli.main logs when an exception reached its last-resort catch


class Toy(FakeGenerator):
    """FakeGenerator whose block ``at`` is replaced by ``bad(audio)`` (or which raises ``raise_`` there)."""

    at = 2
    bad = None
    raise_: BaseException | None = None

    def step(self, state, control, recorder=NULL_RECORDER):  # noqa: ANN001
        result, new = super().step(state, control, recorder)
        if state.block_index == self.at:
            if self.raise_ is not None:
                raise self.raise_
            return StepResult(type(self).bad(result.audio), result.info), new
        return result, new


def _nan(a):  # noqa: ANN001, ANN202
    a = a.copy()
    a[0, 41:53] = np.nan
    return a


def _inf(a):  # noqa: ANN001, ANN202
    a = a.copy()
    a[0, 3] = np.inf
    return a


def _neg_inf(a):  # noqa: ANN001, ANN202
    a = a.copy()
    a[0, -1] = -np.inf
    return a


def _hang(state, control, recorder=NULL_RECORDER):  # noqa: ANN001, ANN202
    time.sleep(30)


def _sigint_self():  # noqa: ANN202 - a real Ctrl-C delivered to this process
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(1)


BAD_AUDIO = {  # name -> (bad(audio), message)
    "nan": (_nan, "12 of "), "inf": (_inf, "NaN/inf (first at sample 3)"), "neg-inf": (_neg_inf, "non-finite audio"),
    "all-nan": (lambda a: np.full_like(a, np.nan), "check its weights"),
    "one-d": (lambda a: a[0], "1 dimension(s)"), "three-d": (lambda a: a[None], "3 dimension(s)"),
    "short": (lambda a: a[:, :-1], "samples per block"), "long": (lambda a: np.concatenate([a, a], 1), "samples per block"),
    "zero-length": (lambda a: a[:, :0], "zero-length"), "stereo": (lambda a: np.concatenate([a, a], 0), "2 channel(s)"),
    "no-channels": (lambda a: a[:0], "0 channel(s)"), "list": (lambda a: a.tolist(), "not a numpy array"),
    "tensor-like": (lambda a: object(), "not a numpy array"), "ints": (lambda a: (a * 100).astype(np.int16), "dtype int16"),
    "scalar": (lambda a: np.float32(1.0), "not a numpy array"), "none": (lambda a: None, "NoneType"),
}
RAISES = {  # name -> (exception raised in a step, message)
    "system-exit": (SystemExit(3), "SystemExit"), "keyboard-interrupt": (KeyboardInterrupt(), "KeyboardInterrupt"),
    "generator-exit": (GeneratorExit(), "GeneratorExit"), "runtime-error": (RuntimeError("boom"), "boom"),
    "memory-error": (MemoryError("big"), "MemoryError"), "recursion": (RecursionError("deep"), "RecursionError"),
}


def _toy(name: str, **attrs) -> type:  # noqa: ANN003
    return type(f"Toy_{name}", (Toy,), {"name": f"toy-{name}", **attrs})


@pytest.fixture(autouse=True)
def _fast_provenance(monkeypatch):
    """The manifest's git and package queries (subprocesses) are not what this battery tests."""
    monkeypatch.setattr("bench.app.manifest.git_info", lambda root=None: {"commit": None, "short": "test"})
    monkeypatch.setattr("bench.app.manifest.package_versions", lambda names=(): {})


@pytest.fixture
def case(tmp_path, monkeypatch, caplog):
    """Run main in an empty working folder; afterwards check nothing appeared outside ``tmp_path/run``."""
    work = tmp_path / "cwd"
    work.mkdir()
    (tmp_path / "in").mkdir()  # the test's own input files
    monkeypatch.chdir(work)
    registered: list[str] = []
    before = {p for p in tmp_path.rglob("*")}

    def run(argv: list[str], clock: FakeClock | None = None, generators: dict[str, type] | None = None) -> int:
        for name, cls in (generators or {}).items():
            GENERATORS.register(name, cls)
            registered.append(name)
        code = main(argv, clock=clock or FakeClock(PHASE_NS))
        assert isinstance(code, int)
        assert TRACEBACK_MARK not in caplog.text, caplog.text
        return code

    run.out = tmp_path / "run"
    run.tmp = tmp_path
    yield run
    for name in registered:
        GENERATORS.unregister(name)
    mine = (run.out, tmp_path / "in")
    outside = [p for p in tmp_path.rglob("*") if p not in before and not any(m in (p, *p.parents) for m in mine)]
    assert outside == [], f"written outside the run folder: {outside}"


# --------------------------------------------------------------------------- bad blocks and plug-in faults
@pytest.mark.parametrize("kind", sorted(BAD_AUDIO))
def test_a_bad_block_fails_its_cell_and_the_run_goes_on(case, kind):
    bad, message = BAD_AUDIO[kind]
    name = f"toy-{kind}"
    code = case(BASE + ["--generators", name, "--out", str(case.out), "-q", "--no-flops"],
                generators={name: _toy(kind, bad=staticmethod(bad))})
    assert code == 1
    status = read_json(case.out / "cells" / f"{name}__smoke" / "status.json")
    assert status["status"] == "failed" and "block 2" in status["error"] and message in status["error"]
    cells = read_table(case.out, "cells")
    assert dict(zip(cells.generator, cells.status)) == {name: "failed", "noise": "ok"}
    summary = read_table(case.out, "summary")  # the other cells are still summarised
    assert list(summary.generator) == ["noise"]


def test_a_nan_block_message_is_precise(case):
    case(BASE + ["--generators", "toy-nan", "--out", str(case.out), "-q"],
         generators={"toy-nan": _toy("nan", bad=staticmethod(_nan))})
    error = read_json(case.out / "cells" / "toy-nan__smoke" / "status.json")["error"]
    assert "block 2: 12 of 125 samples are NaN/inf (first at sample 41)" in error


@pytest.mark.parametrize("kind", sorted(RAISES))
def test_an_exception_in_a_step_is_contained_to_its_cell(case, kind):
    exc, message = RAISES[kind]
    name = f"toy-{kind}"
    code = case(BASE + ["--generators", name, "--out", str(case.out), "-q"],
                generators={name: _toy(kind, raise_=exc)})
    assert code == 1
    assert message in read_json(case.out / "cells" / f"{name}__smoke" / "status.json")["error"]
    assert read_json(case.out / "cells" / "noise__smoke" / "status.json")["status"] == "ok"
    assert (case.out / "summary.parquet").exists()


@pytest.mark.parametrize("where", ["warm-up", "timed"])
def test_a_hung_step_fails_its_cell_after_the_time_limit(case, where):
    cls = _toy("hang", at=0 if where == "warm-up" else 1)
    cls.step = lambda self, state, control, recorder=NULL_RECORDER: (
        _hang(state, control) if state.block_index == self.at else Toy.step(self, state, control, recorder))
    t0 = time.monotonic()
    # --no-flops: the FLOPs pass's first use of the counter can take longer than 0.3 s on a loaded machine
    code = case(BASE + ["--generators", "toy-hang", "--step-timeout", "0.3", "--no-flops", "--out", str(case.out), "-q",
                        "--set", f"workload.warmup_blocks={1 if where == 'warm-up' else 0}"],
                generators={"toy-hang": cls})
    assert code == 1 and time.monotonic() - t0 < 20
    status = read_json(case.out / "cells" / "toy-hang__smoke" / "status.json")
    assert "did not return within 0.3 s" in status["error"] and status["step_timeout_s"] == 0.3
    assert read_json(case.out / "cells" / "noise__smoke" / "status.json")["status"] == "ok"


def _slow_step(self, state, control, recorder=NULL_RECORDER):  # noqa: ANN001, ANN202
    time.sleep(1.0)
    return FakeGenerator.step(self, state, control, recorder)


@pytest.mark.parametrize("kind", ["slow steps", "hung step"])
def test_a_cell_over_its_time_limit_fails_naming_the_cell_limit(case, kind):
    cls = _toy("slow")
    cls.step = _slow_step if kind == "slow steps" else (
        lambda self, state, control, recorder=NULL_RECORDER: _hang(state, control))
    t0 = time.monotonic()
    # 3 s: the null generator (always run beside) must finish well within it on a loaded machine
    code = case(BASE + ["--generators", "toy-slow", "--cell-timeout", "3", "--no-flops", "--out", str(case.out), "-q",
                        "--set", "workload.warmup_blocks=0"], generators={"toy-slow": cls})
    assert code == 1 and time.monotonic() - t0 < 25  # 4 blocks x 1 s (or a 30 s hang) cut at 3 s
    status = read_json(case.out / "cells" / "toy-slow__smoke" / "status.json")
    assert "cell time limit, --cell-timeout" in status["error"] and status["cell_timeout_s"] == 3
    assert read_json(case.out / "cells" / "noise__smoke" / "status.json")["status"] == "ok"


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "1e12"])
def test_a_bad_cell_time_limit_is_refused(case, caplog, value):
    assert case(BASE + ["--cell-timeout", value, "--out", str(case.out)]) == 2
    assert "cell_timeout_s (--cell-timeout)" in caplog.text and not case.out.exists()


def test_stop_runs_even_when_a_step_fails(case):
    stopped = []
    cls = _toy("stop", raise_=RuntimeError("x"), stop=lambda self, state: stopped.append(state.block_index))
    assert case(BASE + ["--generators", "toy-stop", "--out", str(case.out), "-q"], generators={"toy-stop": cls}) == 1
    assert 2 in stopped  # the timed stream's stop got the state of the block that failed


def test_a_real_ctrl_c_stops_the_run_with_the_resume_command(case, caplog):
    cls = _toy("sigint", raise_=None)
    cls.step = lambda self, state, control, recorder=NULL_RECORDER: (
        _sigint_self() if state.block_index == 1 else FakeGenerator.step(self, state, control, recorder))
    argv = BASE + ["--generators", "fake,toy-sigint", "--out", str(case.out), "--set", "workload.warmup_blocks=0"]
    before = signal.getsignal(signal.SIGINT)  # Python's default_int_handler, or SIG_IGN in a background job
    assert case(argv, generators={"toy-sigint": cls, "fake": FakeGenerator}) == 130
    assert "interrupted (Ctrl-C): 1 cell(s) finished ok (fake x smoke)" in caplog.text
    assert f"--out {case.out}" in caplog.text and caplog.text.rstrip().endswith("--resume")
    assert not (case.out / ".lock").exists()
    assert signal.getsignal(signal.SIGINT) is before  # the handler was restored


# --------------------------------------------------------------------------- faults of the machine
@pytest.mark.parametrize("err, message", [
    (errno.ENOSPC, "is full"), (errno.EACCES, "cannot be written"), (errno.EROFS, "cannot be written"),
    (errno.EIO, "failed"),
])
def test_a_failed_write_stops_the_run_with_one_paragraph(case, monkeypatch, caplog, err, message):
    def failing(path, data):  # noqa: ANN001, ANN202
        raise OSError(err, os.strerror(err), str(path))

    monkeypatch.setattr(storage, "atomic_write_bytes", failing)
    assert case(BASE + ["--generators", "fake", "--out", str(case.out)], generators={"fake": FakeGenerator}) == 1
    assert message in caplog.text and "--resume" in caplog.text and "manifest.json" in caplog.text


def test_a_full_disk_in_the_run_tables_keeps_the_finished_cells(case, monkeypatch, caplog):
    real = storage.write_table

    def table(folder, name, df):  # noqa: ANN001, ANN202
        if name == "summary":
            raise OSError(errno.ENOSPC, "No space left on device", str(Path(folder) / "summary.parquet"))
        return real(folder, name, df)

    monkeypatch.setattr(storage, "write_table", table)
    assert case(BASE + ["--generators", "fake", "--out", str(case.out)], generators={"fake": FakeGenerator}) == 1
    assert "is full" in caplog.text and "2 cell(s) finished ok" in caplog.text


# --------------------------------------------------------------------------- identity
def test_a_second_run_on_the_same_folder_is_refused(case, caplog):
    case.out.mkdir()
    (case.out / ".lock").write_text(json.dumps({"pid": os.getpid(), "host": os.uname().nodename,
                                                "started_utc": "2026-01-01T00:00:00Z"}))
    assert case(BASE + ["--out", str(case.out)]) == 2
    assert f"in use by another run: pid {os.getpid()}" in caplog.text and "2026-01-01T00:00:00Z" in caplog.text
    assert not (case.out / "manifest.json").exists()


def test_a_stale_lock_is_taken_over(case, caplog):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    case.out.mkdir()
    (case.out / ".lock").write_text(json.dumps({"pid": dead.pid, "host": os.uname().nodename,
                                                "started_utc": "2026-01-01T00:00:00Z"}))
    assert case(BASE + ["--generators", "noise", "--out", str(case.out)]) == 0
    assert "stale lock" in caplog.text and not (case.out / ".lock").exists()


@pytest.mark.parametrize("change", [["--set", "workload.steps=2"], ["--preset", "cpu"], ["--threads", "1"],
                                    ["--no-flops"], ["--generators", "fake"]])
def test_resume_with_another_configuration_is_refused(case, caplog, change):
    assert case(BASE + ["--generators", "noise", "--out", str(case.out)]) == 0
    before = (case.out / "manifest.json").read_bytes()
    assert case(BASE + ["--generators", "noise", "--out", str(case.out), "--resume"] + change,
                generators={"fake": FakeGenerator}) == 2
    assert "was made with another configuration" in caplog.text
    assert (case.out / "manifest.json").read_bytes() == before and not list(case.out.glob("manifest-resume-*"))


# --------------------------------------------------------------------------- bad configuration (exit 2)
BAD_ARGV = [  # (argv added to BASE, a substring of the message)
    (["--workload", "smoke,smoke"], "listed twice"),
    (["--generators", "noise,noise"], "listed twice"),
    (["--workload", "context-sweep,context-sweep"], "listed twice"),
    (["--set", "workload.repeats=100000"], "repeats is 100000"),
    (["--set", "workload.repeats=1e9"], "workload.repeats"),
    (["--set", "workload.repeats=0"], "repeats"),
    (["--set", "workload.repeats=-1"], "repeats"),
    (["--set", "workload.repeats=1.5"], "workload.repeats"),
    (["--set", "workload.repeats=abc"], "workload.repeats"),
    (["--set", "workload.warmup_blocks=1000000"], "warmup_blocks"),
    (["--set", "workload.horizon_s=1e9"], "n_blocks"),
    (["--set", "workload.horizon_s=nan"], "not a finite number"),
    (["--set", "workload.horizon_s=inf"], "not a finite number"),
    (["--set", "workload.horizon_s=-inf"], "not a finite number"),
    (["--set", "workload.horizon_s=0"], "horizon_s"),
    (["--set", "workload.horizon_s=abc"], "workload.horizon_s"),
    (["--set", "workload.block_s=nan"], "not a finite number"),
    (["--set", "workload.block_s=0.001", "--set", "workload.context_s=0.002", "--set", "workload.horizon_s=0.05",
      "--set", "workload.prompts=0:a"],
     "shorter than one frame"),
    (["--set", "workload.prebuffer_s=inf"], "not a finite number"),
    (["--set", "workload.prebuffer_s=-1"], "prebuffer_s"),
    (["--set", "workload.temperature=nan"], "not a finite number"),
    (["--set", "workload.temperature=0"], "temperature"),
    (["--set", "workload.steps=0"], "steps"),
    (["--set", "workload.steps=2.5"], "workload.steps"),
    (["--set", "workload.top_k=-3"], "top_k"),
    (["--set", "workload.seed=-1"], "seed"),
    (["--set", "workload.seed=x"], "workload.seed"),
    (["--set", "workload.scenario=live-ish"], "scenario"),
    (["--set", "workload.sampler=ddim"], "sampler"),
    (["--set", "workload.cfg=maybe"], "workload.cfg"),
    (["--set", "workload.prompts=5:late"], "prompts"),
    (["--set", "workload.prompts=0:a;0:b"], "prompts"),
    (["--set", "workload.name=x"], "cannot be overridden"),
    (["--set", "workload.nope=1"], "unknown field"),
    (["--set", "dit.width=nan"], "not a finite number"),
    (["--set", "dit.width=abc"], "dit.width"),
    (["--set", "dit.width=0"], "width"),
    (["--set", "dit.width=65"], "divisible"),
    (["--set", "dit.cfg_scale=inf"], "not a finite number"),
    (["--set", "dit.rope_mode=spiral"], "rope_mode"),
    (["--set", "dit.codec.hop=0"], "hop"),
    (["--set", "lmm.heads=0"], "heads"),
    (["--set", "dit=3"], "group"),
    (["--set", "nope.x=1"], "unknown field"),
    (["--set", "settings.steps=4"], "use workload.steps=4"),
    (["--set", "novalue"], "key=value"),
    (["--set", "=5"], "has no key"),
    (["--set", "dit.weights=builtin:nope"], "no built-in checkpoints"),
    (["--generators", "lmm", "--set", "lmm.weights=builtin:nope"], "no built-in checkpoints"),
    (["--generators", "lmdm-casual"], "did you mean 'lmdm-causal'"),
    (["--generators", ""], "no generator selected"),
    (["--workload", ","], "no workload selected"),
    (["--preset", "cpuu"], "did you mean 'cpu'"),
    (["--workload", "defualt"], "did you mean 'default'"),
    (["--dtype", "float8"], "dtype"),
    (["--device", "tpu"], "device"),
    (["--device", "cuda:x"], "device"),
    (["--threads", "-1"], "threads"),
    (["--threads", "100000"], "threads must be <="),
    (["--threads", "two"], ""),
    (["--drift-workers", "-1"], "drift_workers (--drift-workers) must be an integer from 0"),
    (["--drift-workers", "100000"], "drift_workers (--drift-workers) must be an integer from 0"),
    (["--step-timeout", "0"], "step_timeout_s"),
    (["--step-timeout", "-5"], "step_timeout_s"),
    (["--step-timeout", "nan"], "step_timeout_s"),
    (["--step-timeout", "inf"], "step_timeout_s"),
    (["--step-timeout", "soon"], ""),
    (["--progress", "loud"], ""),
    (["--executor", "slurm"], ""),
    (["--set", "workload.context_s=0.3"], "context_s"),
    (["--allow-config-change"], "only means something with --resume"),
    (["--no-such-flag"], ""),
    (["--set", "drift.n_streams=0", "--no-drift", "--generators", "noise"], "n_streams"),  # checked even with --no-drift
]
DRIFT_ARGV = [
    (["--set", "drift.n_streams=1e9"], "drift.n_streams"),
    (["--set", "drift.n_streams=100000"], "drift.n_streams is 100000"),
    (["--set", "drift.n_streams=0"], "n_streams"),
    (["--set", "drift.horizon_s=1e9"], "drift.horizon_s"),
    (["--set", "drift.horizon_s=nan"], "not a finite number"),
    (["--set", "drift.window_s=inf"], "not a finite number"),
    (["--set", "drift.nope=1"], "unknown drift field"),
]


@pytest.mark.parametrize("argv, message", BAD_ARGV + DRIFT_ARGV, ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_bad_configuration_is_refused_before_any_work(case, caplog, capsys, argv, message):
    base = [a for a in BASE if a != "--no-drift"] if argv in [a for a, _ in DRIFT_ARGV] else BASE
    code = case(base + argv + ["--out", str(case.out)])
    if message is None:
        assert code == 0
        return
    assert code == 2
    assert message in caplog.text + capsys.readouterr().err
    assert not (case.out / "manifest.json").exists()


TOML_CASES = [  # (config file text, a substring of the message)
    ('drift = "false"\n', "'drift'"), ('resume = "yes"\n', "'resume'"), ('flops = 0\n', "'flops'"),
    ('peak = "no"\n', "a boolean"), ('report = 1\n', "'report'"), ('threads = "4"\n', "'threads' in"),
    ('threads = 1.5\n', "an integer"), ('threads = true\n', "an integer"),
    ('drift_workers = 2.5\n', "an integer"), ('step_timeout_s = "x"\n', "a number"),
    ('step_timeout_s = nan\n', "step_timeout_s"), ('step_timeout_s = inf\n', "step_timeout_s"),
    ('workload = 5\n', "'workload'"), ('generators = [1, 2]\n', "'generators'"), ('preset = 3\n', "'preset'"),
    ('device = ["cpu"]\n', "'device'"), ('out = 1\n', "'out'"), ('set = 5\n', "'set'"),
    ('[set]\n"workload.horizon_s" = nan\n', "not a finite number"),
    ('[set]\n"workload.horizon_s" = inf\n', "not a finite number"),
    ('[set]\n"workload.repeats" = 1e9\n', "workload.repeats"),
    ('[set]\n"workload.prompts" = [1, 2]\n', "[set] values"),
    ('[set]\n[set.dit]\nwidth = 3\n', "[set] values"),
    ('presett = "cpu"\n', "did you mean 'preset'"), ('preset = \n', "not valid TOML"),
    ('allow_config_change = "true"\n', "'allow_config_change'"), ('executor = "slurm"\n', "executor"),
]


@pytest.mark.parametrize("text, message", TOML_CASES)
def test_bad_config_file_values_are_named(case, caplog, text, message):
    path = case.tmp / "in" / "run.toml"
    path.write_text(text)
    assert case(BASE + ["--config", str(path), "--out", str(case.out)]) == 2
    assert message in caplog.text


def test_a_missing_config_file_is_named(case, caplog):
    assert case(BASE + ["--config", str(case.tmp / "nope.toml")]) == 2
    assert "does not exist" in caplog.text


@pytest.mark.parametrize("layout", ["file", "under-file"])
def test_an_output_path_that_is_a_file_is_named(case, caplog, layout):
    blocker = case.tmp / "in" / "blocker"
    blocker.write_text("x")
    out = blocker if layout == "file" else blocker / "run"
    assert case(BASE + ["--out", str(out)]) == 2
    assert "is a file" in caplog.text and blocker.read_text() == "x"


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_an_unwritable_output_folder_is_named(case, caplog):
    locked = case.tmp / "in" / "locked"
    locked.mkdir(mode=0o500)
    assert case(BASE + ["--out", str(locked / "run")]) == 2
    assert "not writable" in caplog.text


def test_more_audio_than_the_disk_holds_is_refused_up_front(case, caplog, monkeypatch):
    monkeypatch.setattr("bench.app.plan.shutil.disk_usage", lambda path: type("Usage", (), {"free": 1000})())
    assert case(BASE + ["--out", str(case.out)]) == 2
    assert "GB of audio" in caplog.text and "GB free" in caplog.text


def test_drift_keys_are_checked_even_when_the_stage_is_off(case, caplog):
    # BASE has --no-drift: a misspelt drift key is still an error, a valid one a warning that it does nothing
    assert case(BASE + ["--set", "drift.horizonn_s=3", "--out", str(case.out)]) == 2
    assert "unknown drift field 'horizonn_s'" in caplog.text and not case.out.exists()
    caplog.clear()
    assert case(BASE + ["--generators", "noise", "--set", "drift.horizon_s=3", "--out", str(case.out), "-q"]) == 0
    assert "--no-drift: the drift stage does not run, so drift.horizon_s has no effect" in caplog.text
