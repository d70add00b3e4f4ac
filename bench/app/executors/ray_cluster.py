"""The Ray executor: every cell is a Ray task on a cluster (``run_all.py --executor ray``).

Resources: a CUDA cell asks for one whole GPU (Ray gives the task that GPU alone); a CPU cell asks
for every CPU of one node and is pinned to that node, so two timed cells never share a device.
Ray does not retry a task (``max_retries=0``): a cell timed twice would hide a failure.

A task runs :func:`bench.app.cells.run_cell` (the local executor's code) in a scratch folder on its
worker, then measures its node's matmul peak (:func:`bench.app.peak.worker_peak`, into the cell's
status; not with ``--no-peak``), and returns the cell's files
(:class:`~bench.app.executors.cell_files.CellOutput`); the driver writes them into the run folder
atomically, ``status.json`` last, so no shared filesystem is needed. A task that raises, or is lost
(its worker killed, its node gone), becomes a failed cell whose ``status.json`` says why; the other
cells go on.

``ray`` is imported only by :func:`import_ray`: the local executor and ``--report-only`` never need it.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import os
import re
import shutil
import socket
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any, Sequence

import torch

from bench.app.cells import CellJob, NullBar, ProgressBar, cell_status, run_cell, torch_threads
from bench.app.clocks import Clock, make_clock
from bench.app.executors.cell_files import CellOutput, read_cell_files, write_cell_files
from bench.app.manifest import node_record, utc_now
from bench.app.peak import worker_peak
from bench.app.runner import code_hash
from bench.core.errors import ConfigError
from bench.core.registry import GENERATORS
from bench.core.storage import STATUS_FAILED, STATUS_OK, RunStore

log = logging.getLogger("bench")

INSTALL_HINT = "pip install 'live-music-bench[ray]'"
# Ray errors that mean the task's worker (or its node) is gone, not that the cell's code raised.
WORKER_DEATHS = ("WorkerCrashedError", "NodeDiedError", "OutOfMemoryError", "LocalRayletDiedError",
                 "ObjectLostError", "OwnerDiedError")


class WorkerCodeMismatch(RuntimeError):
    """A worker's generator or harness code differs from the driver's (a different checkout)."""


def import_ray() -> ModuleType:
    """The ``ray`` module, or a :class:`ConfigError` saying how to install it."""
    try:
        # Lazy on purpose: Ray is a heavy optional package (the [ray] extra). Only --executor ray needs
        # it; the local executor, --report-only and --compare run where it is not installed.
        import ray
        import ray.util.scheduling_strategies  # noqa: F401 - NodeAffinitySchedulingStrategy (pinning)
    except ImportError as exc:
        raise ConfigError(f"--executor ray needs Ray, which cannot be imported here ({exc}); "
                          f"install it with: {INSTALL_HINT}") from None
    return ray


# ------------------------------------------------------------------------------------------
# In the worker

SCRATCH_PREFIX = "lmb-cell-"  # <temp dir>/lmb-cell-<host>-<pid>-<random>: one task's scratch folder


def _scratch_host() -> str:
    """This host's name reduced to letters, digits, dots and underscores (no ``-``: it separates the pid)."""
    return re.sub(r"[^A-Za-z0-9._]", "_", socket.gethostname())


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def stale_scratch(root: str | Path | None = None) -> list[Path]:
    """The scratch folders under ``root`` (the temp dir) of this host's processes that no longer exist.
    Folders of other hosts (a temp dir shared between containers) and of live processes are not listed."""
    host = _scratch_host()
    stale = []
    for path in Path(root if root is not None else tempfile.gettempdir()).glob(f"{SCRATCH_PREFIX}{host}-*"):
        pid = path.name[len(SCRATCH_PREFIX) + len(host) + 1:].split("-", 1)[0]
        if pid.isdigit() and path.is_dir() and not _process_exists(int(pid)):
            stale.append(path)
    return stale


def remove_stale_scratch(root: str | Path | None = None) -> list[Path]:
    """Remove :func:`stale_scratch` and return it. A worker killed mid-cell (out of memory, a crash)
    cannot remove its own folder, and it may hold a partial WAV of a whole stream."""
    removed = stale_scratch(root)
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
    if removed:
        log.info("removed %d scratch folder(s) of ended workers: %s", len(removed), ", ".join(p.name for p in removed))
    return removed


def cell_scratch() -> tempfile.TemporaryDirectory[str]:
    """One task's scratch folder, named after this process, once stale ones are removed."""
    remove_stale_scratch()
    return tempfile.TemporaryDirectory(prefix=f"{SCRATCH_PREFIX}{_scratch_host()}-{os.getpid()}-")


def worker_device(device: str) -> str:
    """The device inside a task: Ray shows a GPU task only its own GPU, so ``cuda:N`` becomes ``cuda``."""
    return "cuda" if torch.device(device).type == "cuda" else device


def _ray_ids(ray: ModuleType) -> dict[str, Any]:
    """Where this task runs: Ray node id, IP address, the GPUs Ray gave it, the worker's pid."""
    return {"node_id": ray.get_runtime_context().get_node_id(), "ip": ray.util.get_node_ip_address(),
            "gpu_ids": [str(g) for g in ray.get_gpu_ids()], "worker_pid": os.getpid()}


def run_cell_task(job: CellJob, clock: Clock | None) -> CellOutput:
    """The Ray task: check the worker's code against the driver's, run the cell in a scratch folder
    with the run's thread setting, and return its status (with this node's record) and files."""
    ray = import_ray()
    if job.generator_target:  # a worker is a fresh process: register what the driver's registry held
        GENERATORS.register(job.generator, job.generator_target)
    GENERATORS.get(job.generator)  # an unimportable generator fails here, with the registry's message
    with torch_threads(job.threads), cell_scratch() as scratch:
        worker_code = code_hash(job.generator)
        if worker_code != job.code_hash:
            raise WorkerCodeMismatch(
                f"the code of {job.generator!r} or of the harness on this worker (hash {worker_code}) differs "
                f"from the driver's ({job.code_hash}); install the same commit on every node")
        job = dataclasses.replace(job, device=worker_device(job.device))
        node = node_record(job.device, "ray", _ray_ids(ray))
        store = RunStore(Path(scratch))
        status = run_cell(job, store, clock if clock is not None else make_clock(job.device), NullBar, node)
        if job.peak:  # after the cell, with its thread setting: this node's peak, for its fraction of peak
            status["peak"] = worker_peak(job.device, job.dtype)
        return CellOutput(status, read_cell_files(store.cell_dir(job.generator, job.workload.name)))


# ------------------------------------------------------------------------------------------
# In the driver


def task_failure(ray: ModuleType, job: CellJob, exc: BaseException, node_id: str | None) -> dict[str, Any]:
    """The status of a cell whose task raised outside the cell (ray.get re-raises it) or was lost."""
    first_line = (str(exc).strip().splitlines() or [""])[0]
    where = f" (Ray node {node_id[:8]})" if node_id else ""
    if any(c.__name__ in WORKER_DEATHS for c in type(exc).__mro__):
        error = f"worker died: {type(exc).__name__}: {first_line}{where}"
    elif isinstance(exc, ray.exceptions.RayTaskError):
        cause = exc.cause if isinstance(exc.cause, BaseException) else exc
        error = f"{type(cause).__name__}: {(str(cause).strip().splitlines() or [''])[0]}"
    else:
        error = f"ray task lost: {type(exc).__name__}: {first_line}{where}"
    return cell_status(job, status=STATUS_FAILED, error=error, traceback=str(exc), finished_utc=utc_now(),
                       wall_s=None, resumed=False, node=None)


class RayExecutor:
    """Cells as Ray tasks; statuses come back in the order of the jobs."""

    name = "ray"

    def __init__(self, ray: ModuleType, store: RunStore, device: str, clock: Clock | None, progress: ProgressBar,
                 owns_connection: bool) -> None:
        self.ray = ray
        self.store = store
        self.cuda = torch.device(device).type == "cuda"
        self.clock = clock  # None: each worker uses its device's clock (a test's clock must be picklable)
        self.progress = progress
        self._owns_connection = owns_connection
        self._busy_nodes: set[str] = set()

    @classmethod
    def connect(cls, store: RunStore, address: str | None, device: str, clock: Clock | None,
                progress: ProgressBar) -> "RayExecutor":
        """Connect to the cluster at ``address`` (``auto``, ``host:port``, ``ray://host:10001``), or start a
        local one when ``address`` is None and ``RAY_ADDRESS`` is unset; reuse an existing connection."""
        ray = import_ray()
        owns = not ray.is_initialized()
        if owns:
            new_local = address is None and not os.environ.get("RAY_ADDRESS")
            extra = {"include_dashboard": False} if new_local else {}  # a new local cluster: no dashboard
            try:
                ray.init(address=address, **extra)
            except Exception as exc:  # noqa: BLE001 - any failure to connect is a configuration problem
                raise ConfigError(f"cannot reach the Ray cluster {address or '(new local cluster)'}: {exc}") from None
        executor = cls(ray, store, device, clock, progress, owns)
        try:
            executor._check_resources()
        except ConfigError:
            executor.close()
            raise
        return executor

    def close(self) -> None:
        """Disconnect, if this executor made the connection."""
        if self._owns_connection and self.ray.is_initialized():
            self.ray.shutdown()

    def _check_resources(self) -> None:
        """A cluster that cannot run any cell is a configuration error (tasks would wait forever)."""
        resources = self.ray.cluster_resources()
        if self.cuda and resources.get("GPU", 0) < 1:
            raise ConfigError("--device cuda but the Ray cluster has no GPU; add GPU nodes or use --device cpu")
        if not self.cuda and resources.get("CPU", 0) < 1:
            raise ConfigError("the Ray cluster has no CPU to run cells on")
        log.info("Ray cluster: %d node(s), %s", len([n for n in self.ray.nodes() if n.get("Alive")]),
                 ", ".join(f"{k} {v:g}" for k, v in sorted(resources.items()) if k in ("CPU", "GPU")))

    def _placement(self) -> tuple[str | None, dict[str, Any]] | None:
        """Resources of the next task: one whole GPU; or, for CPU timing, every CPU of a free node and a
        hard pin to it. None when every node is busy with one of this run's cells."""
        if self.cuda:
            return None, {"num_gpus": 1, "num_cpus": 1}
        for node in self.ray.nodes():
            node_id, cpus = node["NodeID"], node.get("Resources", {}).get("CPU", 0)
            if node.get("Alive") and cpus >= 1 and node_id not in self._busy_nodes:
                self._busy_nodes.add(node_id)
                pin = self.ray.util.scheduling_strategies.NodeAffinitySchedulingStrategy(node_id, soft=False)
                return node_id, {"num_cpus": cpus, "scheduling_strategy": pin}
        return None

    def run(self, jobs: Sequence[CellJob]) -> list[dict[str, Any]]:
        """Submit the jobs as their resources allow, collect each as it finishes, write it to the run folder.
        If the driver is interrupted, the cells still running are cancelled (none is left on the cluster)."""
        remote = self.ray.remote(run_cell_task)
        pending = collections.deque(enumerate(jobs))
        running: dict[Any, tuple[int, CellJob, str | None]] = {}
        statuses: dict[int, dict[str, Any]] = {}
        bar = self.progress(total=len(jobs), desc="cells (ray)", unit="cell")
        try:
            while pending or running:
                while pending and (placement := self._placement()) is not None:
                    i, job = pending.popleft()
                    options = {"max_retries": 0, "name": f"cell {job.label}", **placement[1]}
                    running[remote.options(**options).remote(job, self.clock)] = (i, job, placement[0])
                if not running:  # nothing in flight and no node free: no alive node can take a cell
                    lost = RuntimeError("no alive Ray node with CPUs left to run this cell")
                    for i, job in pending:
                        statuses[i] = self._write(job, task_failure(self.ray, job, lost, None))
                    break
                (ref,), _ = self.ray.wait(list(running), num_returns=1)
                i, job, node_id = running.pop(ref)
                self._busy_nodes.discard(node_id)
                statuses[i] = self._collect(ref, job, node_id)
                bar.update(1)
        except BaseException:
            self._cancel(running)
            raise
        finally:
            bar.close()
        return [statuses[i] for i in range(len(jobs))]

    def _cancel(self, running: dict[Any, Any]) -> None:
        """Cancel the tasks still running (the driver was interrupted)."""
        for ref in running:
            try:
                self.ray.cancel(ref, force=True)
            except Exception as exc:  # noqa: BLE001 - keep cancelling the others; the interruption is re-raised
                log.warning("could not cancel a Ray task: %s", exc)

    def _collect(self, ref: Any, job: CellJob, node_id: str | None) -> dict[str, Any]:
        """The finished task's cell written into the run folder (a failed cell's status when it raised or was lost)."""
        try:
            output = self.ray.get(ref)
        except Exception as exc:  # noqa: BLE001 - a failed or lost task is a failed cell; the others go on
            return self._write(job, task_failure(self.ray, job, exc, node_id))
        write_cell_files(self.store, output)
        status = output.status
        if status["status"] == STATUS_OK:
            log.info("%s: ok on %s in %.1f s", job.label, status["node"]["id"], status["wall_s"])
        else:
            log.error("%s: failed on %s: %s", job.label, status["node"]["id"], status["error"])
        return status

    def _write(self, job: CellJob, status: dict[str, Any]) -> dict[str, Any]:
        """A failed cell without files: its folder holds only ``status.json``."""
        log.error("%s: failed: %s", job.label, status["error"])
        write_cell_files(self.store, CellOutput(status, {}))
        return status
