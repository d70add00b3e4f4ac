"""Executors without a cluster: choosing one, a missing Ray, where cells were timed (status, cells
table, manifest, the summary's warning), a cell's files in memory and back, why a Ray task failed,
and the Ray executor's placement against a fake multi-node Ray (a whole node's CPUs per CPU cell,
one GPU per CUDA cell). The Ray executor on a real local cluster: test_executors_ray.py."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from bench.app.cells import CellJob, NullBar, cell_status
from bench.app.cli import main
from bench.app.executors.cell_files import CellOutput, read_cell_files, write_cell_files
from bench.app.executors.ray_cluster import (INSTALL_HINT, SCRATCH_PREFIX, RayExecutor, cell_scratch,
                                             remove_stale_scratch, task_failure)
from bench.app.manifest import REPO_ROOT, cpu_model
from bench.app.plan import resolve_device
from bench.core.errors import ConfigError
from bench.core.presets import get_preset
from bench.core.registry import GENERATORS
from bench.core.storage import RunStore, read_json, read_table, write_json
from bench.core.workloads import get_workloads
from tests.bench.app.test_cli import BASE, plan_for, run
from tests.bench.app.test_runner import fakes  # noqa: F401 (fixture)


def test_local_is_the_default_and_ray_is_an_option_or_a_config_key(tmp_path: Path) -> None:
    assert plan_for([]).config.executor == "local" and plan_for([]).config.ray_address is None
    cfg = plan_for(["--executor", "ray", "--ray-address", "auto"]).config
    assert (cfg.executor, cfg.ray_address) == ("ray", "auto")
    toml = tmp_path / "run.toml"
    toml.write_text('executor = "ray"\nray_address = "ray://head:10001"\n')
    cfg = plan_for(["--config", str(toml)]).config
    assert (cfg.executor, cfg.ray_address) == ("ray", "ray://head:10001")
    assert plan_for(["--config", str(toml), "--executor", "local"]).config.executor == "local"  # flags win


def test_an_unknown_executor_is_named(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    toml = tmp_path / "run.toml"
    toml.write_text('executor = "rey"\n')
    assert main(["--config", str(toml), "--no-peak"]) == 2
    assert "did you mean 'ray'" in caplog.text


def test_a_missing_ray_is_a_configuration_error_before_any_work(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now fails, as where it is not installed
    out = tmp_path / "run"
    assert main(BASE + ["--generators", "noise", "--executor", "ray", "--out", str(out)]) == 2
    assert INSTALL_HINT == "pip install 'live-music-bench[ray]'" and INSTALL_HINT in caplog.text
    assert not (out / "manifest.json").exists()


def test_the_local_executor_never_imports_ray(tmp_path: Path) -> None:
    script = textwrap.dedent(f"""
        import sys
        from bench.app.cli import main
        import reports.compare, reports.summary  # reports never import ray (nor torch: tests/test_architecture.py)
        code = main({BASE + ["--generators", "noise", "--out", str(tmp_path / "run")]!r})
        assert code == 0, code
        assert "ray" not in sys.modules, "the local executor or the reports imported ray"
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_local_cells_record_their_node(fakes, tmp_path: Path) -> None:  # noqa: ANN001, F811
    out = tmp_path / "run"
    assert run(["--generators", "fake", "--threads", "1", "--out", str(out)]) == 0
    node = read_json(out / "cells" / "fake__smoke" / "status.json")["node"]
    assert node["executor"] == "local" and node["machine"]["threads"]["torch_threads"] == 1
    assert node["hardware"] == f"{cpu_model()} ({node['machine']['threads']['os_cpu_count']} CPUs, 1 torch threads)"
    cells = read_table(out, "cells")
    assert set(cells.node) == {node["id"]} and set(cells.hardware) == {node["hardware"]}
    manifest = read_json(out / "manifest.json")
    assert list(manifest["nodes"]) == [node["id"]] and manifest["nodes"][node["id"]]["hardware"] == node["hardware"]
    assert [(c["generator"], c["node"]) for c in manifest["cell_nodes"]] == [("fake", node["id"]),
                                                                           ("noise", node["id"])]
    summary = (out / "summary.md").read_text()
    assert "WARNING" not in summary and "cells timed on" not in summary  # one local machine: nothing to flag


def test_cells_timed_on_different_hardware_are_flagged(fakes, tmp_path: Path) -> None:  # noqa: ANN001, F811
    """A run resumed on another machine: the cell timed there has another node and hardware."""
    out = tmp_path / "run"
    assert run(["--generators", "fake,fake-slow", "--out", str(out)]) == 0
    path = out / "cells" / "fake-slow__smoke" / "status.json"
    status = read_json(path)
    status["node"].update(id="other-host", hardware="Other CPU (64 CPUs, 64 torch threads)")
    write_json(path, status)
    assert run(["--generators", "fake,fake-slow", "--out", str(out), "--resume"]) == 0  # every cell skipped
    summary = (out / "summary.md").read_text()
    assert "WARNING: the cells were timed on different hardware" in summary
    assert "  - other-host [Other CPU (64 CPUs, 64 torch threads)]: fake-slow x smoke" in summary
    assert f"[{cpu_model()} (" in summary and "]: fake x smoke, noise x smoke" in summary
    (resume,) = out.glob("manifest-resume-*.json")
    assert len(read_json(resume)["nodes"]) == 2


def test_cell_files_travel_as_bytes_and_land_atomically(tmp_path: Path) -> None:
    worker = tmp_path / "scratch" / "cell"
    (worker / "audio").mkdir(parents=True)
    files = {"blocks.parquet": b"PAR1 table", "audio/repeat0.wav": bytes(range(256)) * 3}
    for rel, data in files.items():
        (worker / rel).write_bytes(data)
    (worker / "status.json").write_text("{}")
    (worker / "audio" / ".repeat1.wav.tmp").write_bytes(b"half a stream")  # a killed stream's leftover
    assert read_cell_files(worker) == files

    store = RunStore(tmp_path / "run")
    (store.reset_cell("g", "w") / "stale.csv").write_text("from an earlier attempt")
    status = {"generator": "g", "workload": "w", "status": "ok"}
    write_cell_files(store, CellOutput(status, files))
    folder = store.cell_dir("g", "w")
    assert read_cell_files(folder) == files and read_json(folder / "status.json")["status"] == "ok"
    assert not list(folder.rglob("*.tmp")) and not (folder / "stale.csv").exists()
    for bad in ("../escape.csv", "/abs.csv", "status.json"):
        with pytest.raises(ValueError, match="inside the cell folder"):
            write_cell_files(store, CellOutput(status, {"ok.csv": b"x", bad: b"x"}))
        assert not (folder / "ok.csv").exists()  # every path is checked before any file is written


class WorkerCrashedError(Exception):
    """Stands in for ray.exceptions.WorkerCrashedError (the classification goes by name)."""


class _RayTaskError(Exception):
    def __init__(self, cause: BaseException) -> None:
        super().__init__(f"remote traceback...\n{cause!r}")
        self.cause = cause


def test_a_failed_or_lost_task_says_why() -> None:
    fake_ray = SimpleNamespace(exceptions=SimpleNamespace(RayTaskError=_RayTaskError))
    (job,) = _jobs(["g"])
    died = task_failure(fake_ray, job, WorkerCrashedError("The worker died unexpectedly.\nmore"), "abcdef123456")
    assert died["error"] == "worker died: WorkerCrashedError: The worker died unexpectedly. (Ray node abcdef12)"
    assert died["status"] == "failed" and died["cell_hash"] == "h" * 16 and died["traceback"].endswith("more")
    raised = task_failure(fake_ray, job, _RayTaskError(ValueError("bad code hash")), None)
    assert raised["error"] == "ValueError: bad code hash"
    lost = task_failure(fake_ray, job, TimeoutError("gone"), None)
    assert lost["error"] == "ray task lost: TimeoutError: gone"
    json.dumps(died)  # the status is written as JSON


def test_scratch_of_ended_workers_on_this_host_is_removed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with cell_scratch() as scratch:  # named after this process
        own = Path(scratch)
        host, pid = own.name[len(SCRATCH_PREFIX):].rsplit("-", 2)[:2]
        assert pid == str(os.getpid()) and host
        ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                               text=True, check=True)
        dead = tmp_path / f"{SCRATCH_PREFIX}{host}-{ended.stdout.strip()}-abc"  # a killed worker's, with a partial WAV
        (dead / "cells" / "g__w" / "audio").mkdir(parents=True)
        (dead / "cells" / "g__w" / "audio" / ".repeat0.wav.tmp").write_bytes(b"RIFF")
        other_host = tmp_path / f"{SCRATCH_PREFIX}elsewhere-{ended.stdout.strip()}-abc"
        unrelated = tmp_path / f"{SCRATCH_PREFIX}{host}-notapid"
        for path in (other_host, unrelated):
            path.mkdir()
        assert remove_stale_scratch() == [dead]
        assert not dead.exists() and own.exists() and other_host.exists() and unrelated.exists()
    assert not own.exists()


def test_a_cluster_device_is_not_checked_against_this_machine() -> None:
    assert resolve_device("cuda", local=False) == "cuda"
    if torch.cuda.is_available():
        return
    with pytest.raises(ConfigError, match="CUDA is not available here"):
        resolve_device("cuda")
    with pytest.raises(ConfigError, match="drift and continuation stages run here"):
        plan_for(["--executor", "ray", "--device", "cuda"])
    with pytest.raises(ConfigError, match="--no-drift --no-continuation"):
        plan_for(["--executor", "ray", "--device", "cuda", "--no-drift"])  # the continuation stage still runs here
    assert plan_for(["--executor", "ray", "--device", "cuda", "--no-drift", "--no-continuation"]).device == "cuda"


class FakeRay:
    """Enough of Ray for :class:`RayExecutor.run`: nodes, remote tasks that finish newest first, and a
    check at every submission that no two of the run's tasks are pinned to the same node at once."""

    exceptions = SimpleNamespace(RayTaskError=_RayTaskError)

    def __init__(self, nodes: list[dict]) -> None:
        self._nodes = nodes
        self.running: dict[int, tuple[CellJob, dict]] = {}
        self.submitted: list[tuple[str, dict]] = []
        self.most_running = 0
        pin = lambda node_id, soft: ("pin", node_id, soft)  # noqa: E731
        self.util = SimpleNamespace(scheduling_strategies=SimpleNamespace(NodeAffinitySchedulingStrategy=pin))

    def nodes(self) -> list[dict]:
        return self._nodes

    def remote(self, fn):  # noqa: ANN001, ANN201
        fake = self

        class Task:
            def options(self, **options):  # noqa: ANN003, ANN202
                return SimpleNamespace(remote=lambda job, clock: fake._submit(job, options))

        return Task()

    def _submit(self, job: CellJob, options: dict) -> int:
        pins = [o["scheduling_strategy"][1] for _, o in self.running.values() if "scheduling_strategy" in o]
        assert "scheduling_strategy" not in options or options["scheduling_strategy"][1] not in pins
        ref = len(self.submitted)
        self.submitted.append((job.generator, options))
        self.running[ref] = (job, options)
        self.most_running = max(self.most_running, len(self.running))
        return ref

    def wait(self, refs: list[int], num_returns: int) -> tuple[list[int], list[int]]:
        return [max(refs)], [r for r in refs if r != max(refs)]

    def get(self, ref: int) -> CellOutput:
        job, options = self.running.pop(ref)
        if job.generator == "dies":
            raise WorkerCrashedError("The worker died unexpectedly while executing this task.")
        node = {"id": str(options.get("scheduling_strategy", ("", "gpu-node"))[1]), "executor": "ray", "hardware": "x"}
        status = cell_status(job, status="ok", error=None, wall_s=0.5, resumed=False, node=node)
        return CellOutput(status, {"blocks.csv": job.generator.encode()})


def _jobs(names: list[str]) -> list[CellJob]:
    (w,) = get_workloads("smoke")
    return [CellJob(g, "m:G", w, "h" * 16, "c" * 16, get_preset("tiny"), "cpu", torch.float32, True, 0) for g in names]


def test_ray_cpu_cells_take_whole_nodes_one_cell_per_node(tmp_path: Path) -> None:
    nodes = [{"NodeID": "n1", "Alive": True, "Resources": {"CPU": 8.0}},
             {"NodeID": "n2", "Alive": False, "Resources": {"CPU": 64.0}},  # dead: never used
             {"NodeID": "n3", "Alive": True, "Resources": {"CPU": 4.0}}]
    fake, store = FakeRay(nodes), RunStore(tmp_path / "run")
    names = ["a", "b", "dies", "c", "d"]
    statuses = RayExecutor(fake, store, "cpu", None, NullBar, owns_connection=False).run(_jobs(names))
    assert [s["generator"] for s in statuses] == names  # in the order given
    assert fake.most_running == 2  # both alive nodes busy, never two cells on one node (checked on submit)
    for _, options in fake.submitted:
        node_id = options["scheduling_strategy"][1]
        assert options["scheduling_strategy"] == ("pin", node_id, False) and options["max_retries"] == 0
        assert options["num_cpus"] == {"n1": 8.0, "n3": 4.0}[node_id]  # every CPU of the node
    assert [s["status"] for s in statuses] == ["ok", "ok", "failed", "ok", "ok"]
    assert statuses[2]["error"].startswith("worker died: WorkerCrashedError: The worker died unexpectedly")
    assert read_cell_files(store.cell_dir("dies", "smoke")) == {}
    assert read_cell_files(store.cell_dir("c", "smoke")) == {"blocks.csv": b"c"}
    assert read_json(store.cell_dir("c", "smoke") / "status.json")["node"]["id"] in ("n1", "n3")


def test_ray_cuda_cells_take_one_gpu_each(tmp_path: Path) -> None:
    fake = FakeRay([{"NodeID": "n1", "Alive": True, "Resources": {"CPU": 8.0, "GPU": 2.0}}])
    statuses = RayExecutor(fake, RunStore(tmp_path / "run"), "cuda:1", None, NullBar, owns_connection=False).run(
        _jobs(["a", "b", "c"]))
    assert [s["status"] for s in statuses] == ["ok"] * 3
    assert fake.most_running == 3  # Ray queues them; it gives each task a GPU of its own
    assert all(o["num_gpus"] == 1 and "scheduling_strategy" not in o for _, o in fake.submitted)


def test_no_alive_node_fails_the_cells_instead_of_waiting(tmp_path: Path) -> None:
    fake = FakeRay([{"NodeID": "n1", "Alive": False, "Resources": {"CPU": 8.0}}])
    statuses = RayExecutor(fake, RunStore(tmp_path / "run"), "cpu", None, NullBar, owns_connection=False).run(
        _jobs(["a", "b"]))
    assert [s["status"] for s in statuses] == ["failed", "failed"] and not fake.submitted
    assert "no alive Ray node" in statuses[0]["error"]


def test_an_unimportable_generator_fails_its_cell_not_the_run(fakes, tmp_path: Path) -> None:  # noqa: ANN001, F811
    GENERATORS.register("gone", "no_such_module_xyz:Gen")
    try:
        assert run(["--generators", "fake,gone", "--out", str(tmp_path / "run")]) == 1
    finally:
        GENERATORS.unregister("gone")
    status = read_json(tmp_path / "run" / "cells" / "gone__smoke" / "status.json")
    assert status["status"] == "failed" and "no_such_module_xyz" in status["error"]
    assert read_json(tmp_path / "run" / "cells" / "fake__smoke" / "status.json")["status"] == "ok"
