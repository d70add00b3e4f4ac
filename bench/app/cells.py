"""A plan's (generator, workload) cells: what one cell needs (:class:`CellJob`), how one cell runs
(:func:`run_cell`, the same code under every executor) and the run's loop over them
(:func:`run_cells`): each cell is skipped when ``--resume`` finds it complete with the same hash,
else handed to the executor (:mod:`bench.app.executors`). A failing cell is recorded with its
traceback and the others still run."""

from __future__ import annotations

import contextlib
import gc
import logging
import time
import traceback
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Protocol, Sequence

import torch

from bench.app.clocks import Clock
from bench.app.config import DEFAULT_STEP_TIMEOUT_S
from bench.app.gc_heap import frozen_startup_heap
from bench.app.guards import contain
from bench.app.manifest import utc_now
from bench.app.plan import Plan
from bench.app.runner import Runner, code_hash
from bench.core.presets import Preset
from bench.core.registry import GENERATORS
from bench.core.storage import STATUS_FAILED, STATUS_OK, RunStore
from bench.core.workloads import Workload

log = logging.getLogger("bench")

ProgressBar = Callable[..., Any]  # tqdm-like: ProgressBar(total=..., desc=..., unit=..., leave=...)


@dataclass(frozen=True)
class CellJob:
    """One cell to run: self-contained and picklable, so a Ray task can receive it.

    ``generator_target`` is the registry's ``module:Class`` of the generator (a Ray worker is a new
    process and registers it under ``generator`` before building); ``code_hash`` is the driver's
    :func:`~bench.app.runner.code_hash`, which a worker checks its own code against.
    """

    generator: str
    generator_target: str | None
    workload: Workload
    cell_hash: str
    code_hash: str
    preset: Preset
    device: str
    dtype: torch.dtype
    count_flops: bool
    threads: int  # torch intra-op threads (0: leave the process's setting alone)
    step_timeout_s: float = DEFAULT_STEP_TIMEOUT_S  # a step running longer fails the cell (bench.app.guards)
    cell_timeout_s: float | None = None  # the cell's steps running longer in all fail it (None: no limit)
    compile: str = "off"  # torch.compile mode of the generator's step passes ("off": eager)
    peak: bool = True  # the run measures the matmul peak (--no-peak: False); a Ray task measures its node's

    @property
    def label(self) -> str:
        """``generator x workload``, as log lines and warnings name a cell."""
        return f"{self.generator} x {self.workload.name}"


class Executor(Protocol):
    """Runs cells and returns one status per cell, in the order given; each cell's folder (tables,
    audio, ``status.json`` last) is in the run folder when ``run`` returns."""

    name: str

    def run(self, jobs: Sequence[CellJob]) -> list[dict[str, Any]]: ...


class NullBar:
    """A progress bar that shows nothing (where no terminal is watching, e.g. a Ray worker)."""

    total = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def update(self, n: int = 1) -> None:
        """Nothing to show."""

    def set_postfix_str(self, text: str) -> None:
        """Nothing to show."""

    def close(self) -> None:
        """Nothing to close."""


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Use ``n`` torch intra-op threads inside the block (0: leave torch's setting alone)."""
    if not n:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def generator_target(name: str) -> str | None:
    """The ``module:Class`` a registered generator is imported from (what a Ray worker imports); None
    when it cannot be imported here (its cell then fails when it is built, with the registry's message)."""
    try:
        cls = GENERATORS.get(name)
    except Exception:  # noqa: BLE001 - like code_hash: an unimportable generator fails its own cell, not the run
        return None
    return f"{cls.__module__}:{cls.__qualname__}"


def cell_jobs(plan: Plan, hashes: dict[tuple[str, str], str]) -> list[CellJob]:
    """The plan's cells in run order as jobs, with the hashes computed here (in the driver)."""
    targets = {g: generator_target(g) for g in plan.generators}
    codes = {g: code_hash(g) for g in plan.generators}
    return [CellJob(g, targets[g], w, hashes[(g, w.name)], codes[g], plan.preset, plan.device, plan.dtype,
                    plan.config.flops, plan.config.threads, float(plan.config.step_timeout_s),
                    plan.config.cell_timeout_s, plan.config.compile, plan.config.peak)
            for g, w in plan.cells()]


def cell_status(job: CellJob, **fields: Any) -> dict[str, Any]:
    """A cell's status dictionary: who it is, plus ``fields``."""
    return {"kind": "cell_status", "generator": job.generator, "workload": job.workload.name,
            "cell_hash": job.cell_hash, "workload_hash": job.workload.fingerprint(), **fields}


@frozen_startup_heap()  # the collections below walk only what the cell made
def run_cell(job: CellJob, store: RunStore, clock: Clock, progress: ProgressBar,
             node: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run one cell into its folder of ``store``; its status (ok, or failed with the traceback), saved
    last. ``node`` (:func:`~bench.app.manifest.node_record`) says where it ran. Every executor calls
    this, so the timed code is the same wherever a cell runs."""
    name = job.workload.name
    folder = store.reset_cell(job.generator, name)
    started, t0 = utc_now(), time.perf_counter()
    bar = progress(total=0, desc=job.label, unit="block", leave=False)
    runner = Runner(clock, progress=bar.update, count_flops=job.count_flops, step_timeout_s=job.step_timeout_s,
                    cell_timeout_s=job.cell_timeout_s, compile_mode=job.compile)
    bar.total = runner.total_steps(job.workload)
    status = cell_status(job, started_utc=started, step_timeout_s=job.step_timeout_s,
                         cell_timeout_s=job.cell_timeout_s)
    try:
        result = runner.run_cell(job.generator, job.preset, job.workload, job.device, job.dtype, folder,
                                 job.cell_hash)
        store.write_cell_tables(job.generator, name, result.tables())
        status.update({"status": STATUS_OK, "error": None, "traceback": None, "info": result.info})
        log.info("%s: ok in %.1f s", job.label, time.perf_counter() - t0)
    except BaseException as raised:  # noqa: BLE001 - one failure never stops the other cells
        exc = contain(raised)  # SystemExit etc. from generator code: this cell's error; a real Ctrl-C re-raises
        status.update({"status": STATUS_FAILED, "error": f"{type(exc).__name__}: {exc}",
                       "traceback": traceback.format_exc()})
        log.error("%s: failed: %s", job.label, status["error"])
    finally:
        bar.close()
        gc.collect()  # release this cell's model before the next one measures its memory
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    status.update({"finished_utc": utc_now(), "wall_s": time.perf_counter() - t0, "resumed": False,
                   "node": node})
    store.write_status(job.generator, name, status)  # last: the cell counts as done only now
    return status


def run_cells(plan: Plan, store: RunStore, executor: Executor,
              hashes: dict[tuple[str, str], str]) -> list[dict[str, Any]]:
    """Every cell of ``plan`` in order: skipped when ``--resume`` finds it complete with the same hash,
    the rest run by ``executor``. One status per cell, in plan order."""
    statuses: dict[int, dict[str, Any]] = {}
    todo: list[tuple[int, CellJob]] = []
    for i, job in enumerate(cell_jobs(plan, hashes)):
        if plan.config.resume and store.is_complete(job.generator, job.workload.name, job.cell_hash):
            log.info("%s: complete with the same hash, skipped (--resume)", job.label)
            statuses[i] = {**store.status(job.generator, job.workload.name), "resumed": True}
        else:
            todo.append((i, job))
    if todo:
        log.info("running %d cell(s) with the %s executor", len(todo), executor.name)
        for (i, _), status in zip(todo, executor.run([job for _, job in todo]), strict=True):
            statuses[i] = status
    return [statuses[i] for i in range(len(statuses))]


def log_failures(store: RunStore, statuses: list[dict[str, Any]]) -> None:
    """One error line per failed cell, naming its ``status.json``."""
    for s in statuses:
        if s["status"] != STATUS_OK:
            log.error("%s x %s failed: %s (traceback in %s)", s["generator"], s["workload"], s.get("error"),
                      store.cell_dir(s["generator"], s["workload"]) / "status.json")
