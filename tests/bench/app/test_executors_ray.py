"""``run_all.py --executor ray`` on a local Ray cluster (2 CPUs, shared by the module's tests): the
same cells as the local executor, a killed worker is a failed cell that ``--resume`` completes, and
every node is recorded.

Slow (Ray starts in ~10 s); skipped only when ``import ray`` fails.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pandas as pd
import pytest
import soundfile as sf

from bench.app.cli import main
from bench.core.registry import GENERATORS
from bench.core.run_folder import load_run
from bench.core.storage import read_json, read_table
from bench.app.executors.ray_cluster import stale_scratch
from tests.bench.app.executor_toys import FAULT_FLAG_ENV, TARGETS

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'live-music-bench[ray]')")
pytestmark = pytest.mark.slow

# --threads 1: the same torch thread count in this process and in the worker, so the numbers match.
BASE = ["--preset", "tiny", "--workload", "smoke", "--no-peak", "--progress", "off", "-q", "--no-drift",
        "--no-report", "--threads", "1"]
# Columns that hold times (or the memory a process happened to use): they differ between any two runs.
TIMING = {
    "blocks": ["latency_ns", "latency_ms", "gen_start_ns", "gen_end_ns"],
    "phases": ["latency_ms"],
    "streams": ["start_ns", "start_ms", "wall_s", "peak_mem_bytes", "peak_mem_baseline_bytes"],
    # the attainable model's replay times and copy bandwidth are measured where the cell runs
    "flops": ["attainable_ms", "attainable_replayed_ms", "attainable_memory_ms", "attainable_cold_ms",
              "bandwidth_bytes_per_s"],
}


@pytest.fixture(scope="module")
def fault_flag(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One local Ray cluster for the module; its workers see :data:`FAULT_FLAG_ENV` (the returned path).
    The toy generators are registered by their ``module:Class`` targets, as an entry point would be."""
    flag = tmp_path_factory.mktemp("fault") / "on"
    before = os.environ.get(FAULT_FLAG_ENV)
    os.environ[FAULT_FLAG_ENV] = str(flag)  # before ray.init: the raylet, and so every worker, inherits it
    for name, target in TARGETS.items():
        GENERATORS.register(name, target)
    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield flag
    ray.shutdown()
    for name in TARGETS:
        GENERATORS.unregister(name)
    if before is None:
        os.environ.pop(FAULT_FLAG_ENV, None)
    else:
        os.environ[FAULT_FLAG_ENV] = before


def _files(run: Path) -> list[str]:
    return sorted(p.relative_to(run).as_posix() for p in run.rglob("*") if p.is_file())


def _samples_sha(path: Path) -> tuple[int, int, str]:
    """Sample rate, channels and sha256 of the float32 samples (libsndfile stamps the time into a
    float WAV's PEAK chunk, so two runs' file bytes differ even when every sample is the same)."""
    audio, rate = sf.read(path, dtype="float32", always_2d=True)
    return rate, audio.shape[1], hashlib.sha256(audio.tobytes()).hexdigest()


def test_ray_cells_equal_local_cells(fault_flag: Path, tmp_path: Path) -> None:
    local, remote = tmp_path / "local", tmp_path / "ray"
    args = [a for a in BASE if a != "--no-peak"] + ["--generators", "lmdm-causal,lmm"]  # peaks measured
    assert main(args + ["--out", str(local)]) == 0
    assert main(args + ["--out", str(remote), "--executor", "ray"]) == 0
    assert _files(local) == _files(remote)  # the same run folder layout
    cells = ["lmdm-causal__smoke", "lmm__smoke", "noise__smoke"]
    for cell in cells:
        a, b = read_json(local / "cells" / cell / "status.json"), read_json(remote / "cells" / cell / "status.json")
        assert a["status"] == b["status"] == "ok"
        assert a["cell_hash"] == b["cell_hash"]  # so --resume works across executors
        assert a["node"]["executor"] == "local" and b["node"]["executor"] == "ray"
        assert b["node"]["ray"]["node_id"] == ray.get_runtime_context().get_node_id()
        assert b["node"]["ray"]["worker_pid"] != os.getpid()  # timed in a worker, not here
        assert b["node"]["machine"]["threads"]["torch_threads"] == 1
        for table, timing in TIMING.items():
            ta, tb = (read_table(run / "cells" / cell, table).drop(columns=timing) for run in (local, remote))
            assert ta.to_csv(index=False) == tb.to_csv(index=False), f"{cell} {table}"  # byte for byte
        wav = Path("cells") / cell / "audio" / "repeat0.wav"
        assert _samples_sha(local / wav) == _samples_sha(remote / wav)
    # The compared columns carry the numbers that matter (not only labels).
    blocks, flops = read_table(remote, "blocks"), read_table(remote, "flops")
    assert len(blocks) == 3 * 8 and (blocks.groupby("generator").size() == 8).all()
    assert (blocks[blocks.generator == "lmdm-causal"].tokens_processed > 0).all()
    assert (flops[flops.generator != "noise"].measured_flops > 0).all()
    assert (flops[flops.generator != "noise"].analytic_flops > 0).all()
    manifest = read_json(remote / "manifest.json")
    (node,) = manifest["nodes"].values()
    assert node["executor"] == "ray" and node["machine"]["cpu"]["model"] and node["machine"]["packages"]["torch"]
    assert sorted(c["generator"] for c in manifest["cell_nodes"]) == ["lmdm-causal", "lmm", "noise"]
    assert "cells timed on 1 node(s)" in (remote / "summary.md").read_text()
    _check_node_peaks(local, remote, cells)


def _check_node_peaks(local: Path, remote: Path, cells: list[str]) -> None:
    """The driver cannot measure a worker's machine: each Ray cell carries its node's peak, and its
    fraction of peak uses it; local cells use the run's peak.json."""
    for cell in cells:
        node_peak = read_json(remote / "cells" / cell / "status.json")["peak"]
        assert node_peak["flops_per_s"] > 0 and (node_peak["device"], node_peak["dtype"]) == ("cpu", "float32")
        assert node_peak["flops_per_s"] == max(node_peak["measurements"])  # the worker's best so far
        assert "peak" not in read_json(local / "cells" / cell / "status.json")
    remote_peak, local_peak = read_json(remote / "peak.json"), read_json(local / "peak.json")
    assert remote_peak["flops_per_s"] is None and "carry the peak measured on its node" in remote_peak["note"]
    assert local_peak["flops_per_s"] > 0
    for run, expected in ((remote, None), (local, local_peak["flops_per_s"])):
        table = read_table(run, "cells").set_index("generator")
        summary = read_table(run, "summary").set_index("generator")
        for generator in ("lmdm-causal", "lmm", "noise"):
            peak = table.loc[generator, "peak_flops_per_s"]
            assert (peak > 0) if expected is None else pd.isna(peak)
            used = peak if expected is None else expected
            row = summary.loc[generator]
            assert row.peak_flops_per_s == pytest.approx(used)
            assert row.peak_fraction == pytest.approx(row.achieved_flops_per_s / used)
        assert summary.loc["lmdm-causal"].peak_fraction > 0
    assert "measured on each cell's node" in (remote / "summary.md").read_text()
    assert load_run(remote).cell_peaks.keys() == {("lmdm-causal", "smoke"), ("lmm", "smoke"), ("noise", "smoke")}
    assert load_run(local).cell_peaks == {}


def test_a_killed_worker_fails_its_cell_and_resume_completes_it(fault_flag: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    argv = BASE + ["--generators", "toy-crash,toy-raise", "--executor", "ray", "--out", str(out)]
    fault_flag.touch()
    assert main(argv) == 1

    crash = read_json(out / "cells" / "toy-crash__smoke" / "status.json")
    assert crash["status"] == "failed" and crash["error"].startswith("worker died: WorkerCrashedError")
    assert [p.name for p in (out / "cells" / "toy-crash__smoke").iterdir()] == ["status.json"]  # nothing partial
    raised = read_json(out / "cells" / "toy-raise__smoke" / "status.json")
    assert raised["status"] == "failed" and raised["error"] == "RuntimeError: toy failure at block 3"
    assert "Traceback" in raised["traceback"] and raised["node"]["executor"] == "ray"
    assert read_json(out / "cells" / "noise__smoke" / "status.json")["status"] == "ok"  # the others finish
    summary = (out / "summary.md").read_text()
    assert "FAILED toy-crash x smoke: worker died" in summary and "FAILED toy-raise x smoke" in summary

    assert stale_scratch() == []  # the killed worker's scratch folder was removed by the next task here

    fault_flag.unlink()  # the generators are fixed; their code, so their cell hashes, are unchanged
    assert main(argv + ["--resume"]) == 0
    assert stale_scratch() == []
    cells = read_table(out, "cells")
    assert dict(zip(cells.generator, cells.resumed)) == {"toy-crash": False, "toy-raise": False, "noise": True}
    assert set(cells.status) == {"ok"} and set(cells.executor) == {"ray"}
    blocks = read_table(out, "blocks")
    assert len(blocks) == 3 * 8 and not blocks.duplicated(["generator", "workload", "repeat", "block_index"]).any()
    assert list(out.glob("manifest-resume-*.json"))
