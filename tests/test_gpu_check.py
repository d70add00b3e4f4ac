"""scripts/gpu_check.py and scripts/gpu_wheels.py: the GPU check's plumbing, run on the CPU.

A GPU is lent to this project's sessions rarely and for minutes, so the script that spends them
must work the first time: every step runs here with ``--device cpu`` (the ``gpu`` tests skip), a
missing package stops it in a second, naming the package, and the results come back as one archive.
"""

import json
import tarfile

import pytest

from tests.script_loader import loaded_script


@pytest.fixture(scope="module")
def gpu_check():  # noqa: ANN201
    yield from loaded_script("gpu_check")


@pytest.fixture(scope="module")
def gpu_wheels():  # noqa: ANN201
    yield from loaded_script("gpu_wheels")


def test_every_step_runs_on_the_cpu_into_one_archive(gpu_check, tmp_path):
    out, archive = tmp_path / "gpu-results", tmp_path / "gpu-results" / "all.tgz"  # inside: leaves itself out
    code = gpu_check.main(["--device", "cpu", "--preset", "tiny", "--workload", "smoke", "--dtype", "float32",
                           "--horizon-s", "1", "--runs", "paper", "--out", str(out), "--archive", str(archive)])
    record = json.loads((out / "gpu_check.json").read_text())
    assert code == 0, record
    assert [s["name"] for s in record["steps"]] == ["pytest", "timer_cost", "profiler_after_effect", "paper"]
    assert all(s["exit_code"] == 0 for s in record["steps"])
    assert "skipped" in (out / "pytest.txt").read_text()  # the gpu tests ran, and skipped without CUDA
    summary = (out / "paper" / "summary.md").read_text()
    assert all(f"| {name} |" in summary for name in ("outpaint", "lmdm-encdec", "lmdm-causal", "lmm", "noise-phased"))
    assert "Harness cost per phase entry" in summary
    assert '"timer": "wall"' in (out / "timer_cost.txt").read_text()
    assert '"summary": "median after / before"' in (out / "profiler_after_effect.txt").read_text()
    assert not (out / "paper-run").exists()  # the full run folder (audio, parquet) is not kept
    cell = out / "paper" / "cells" / "lmm__smoke"  # each cell's own tables come back too
    assert {"blocks.csv", "phases.csv", "status.json"} <= {p.name for p in cell.iterdir()}
    assert not any(p.suffix in (".wav", ".parquet") for p in cell.iterdir())
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
    assert {"gpu-results/gpu_check.json", "gpu-results/pytest.txt", "gpu-results/timer_cost.txt",
            "gpu-results/paper/summary.md",
            "gpu-results/paper/manifest.json"} <= names
    assert not any(n.endswith((".wav", ".parquet", ".tgz", ".partial")) for n in names)


def test_a_run_cut_off_by_the_budget_still_brings_back_its_finished_cells(gpu_check, tmp_path):
    run = tmp_path / "paper-run"  # killed after its first cell: no summary, no run tables
    cell = run / "cells" / "lmdm-causal__paper"
    (cell / "audio").mkdir(parents=True)
    (run / "manifest.json").write_text("{}")
    (cell / "blocks.csv").write_text("block_index,latency_ms\n0,114.3\n")
    (cell / "status.json").write_text('{"status": "ok"}')
    (cell / "blocks.parquet").write_bytes(b"PAR1")
    (cell / "audio" / "repeat0.wav").write_bytes(b"RIFF")
    (run / "cells" / "lmm__paper").mkdir()  # started, nothing written yet
    gpu_check._compact(run, tmp_path / "paper")
    kept = sorted(str(p.relative_to(tmp_path / "paper")) for p in (tmp_path / "paper").rglob("*") if p.is_file())
    assert kept == ["cells/lmdm-causal__paper/blocks.csv", "cells/lmdm-causal__paper/status.json", "manifest.json"]


def test_a_missing_package_stops_it_before_anything_runs(gpu_check, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(gpu_check, "NEEDED", ("numpy", "no_such_package_lmb"))
    out = tmp_path / "gpu-results"
    assert gpu_check.main(["--device", "cpu", "--out", str(out), "--archive", str(tmp_path / "r.tgz")]) == 3
    record = json.loads((out / "gpu_check.json").read_text())
    assert record["steps"] == [] and len(record["missing_packages"]) == 1
    assert record["missing_packages"][0].startswith("no_such_package_lmb (ModuleNotFoundError")
    assert "no_such_package_lmb" in capsys.readouterr().out and "gpu_wheels.py" in gpu_check.__doc__
    assert sorted(p.name for p in out.iterdir()) == ["gpu_check.json"]
    assert (tmp_path / "r.tgz").is_file()


def test_wheels_are_the_locked_versions_for_the_gpu_machines_python(gpu_wheels, tmp_path):
    lock = tmp_path / "lock.txt"
    lock.write_text("# pins\nsoundfile==0.14.0\ncffi==2.1.1  # a comment\npycparser==3.12\nPyLoudNorm==0.2.0\n")
    assert gpu_wheels.pinned(lock=lock) == ["soundfile==0.14.0", "cffi==2.1.1", "pycparser==3.12", "pyloudnorm==0.2.0"]
    with pytest.raises(ValueError, match="pins no version of torchcodec"):
        gpu_wheels.pinned(("soundfile", "torchcodec"), lock=lock)
    pins = gpu_wheels.pinned()  # the project's own lock pins every one
    assert [p.split("==")[0] for p in pins] == list(gpu_wheels.PACKAGES)
    cmd = gpu_wheels.download_command(tmp_path, "3.12", pins)
    assert cmd[cmd.index("--python-version") + 1] == "3.12" and "--no-deps" in cmd and "--only-binary=:all:" in cmd
    assert cmd[-len(pins):] == pins and cmd.count("--platform") == len(gpu_wheels.PLATFORMS)
