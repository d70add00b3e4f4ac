"""Running a plan's (generator, workload) cells: each one skipped when ``--resume`` finds it complete
with the same hash, else run through the :class:`~bench.app.runner.Runner` with its tables and
``status.json`` saved. A failing cell is recorded with its traceback and the next cell runs."""

from __future__ import annotations

import gc
import logging
import time
import traceback
from typing import Any, Callable

import torch

from bench.app.clocks import Clock
from bench.app.manifest import utc_now
from bench.app.plan import Plan
from bench.app.runner import Runner
from bench.core.storage import STATUS_FAILED, STATUS_OK, RunStore
from bench.core.workloads import Workload

log = logging.getLogger("bench")

ProgressBar = Callable[..., Any]  # tqdm-like: ProgressBar(total=..., desc=..., unit=..., leave=...)


def run_cells(plan: Plan, store: RunStore, clock: Clock, hashes: dict[tuple[str, str], str],
              progress: ProgressBar) -> list[dict[str, Any]]:
    """Run (or, resuming, skip) every cell of ``plan`` in order; one status per cell."""
    cells = plan.cells()
    statuses: list[dict[str, Any]] = []
    cell_bar = progress(total=len(cells), desc="cells", unit="cell")
    for generator, workload in cells:
        key = hashes[(generator, workload.name)]
        cell_bar.set_postfix_str(f"{generator} x {workload.name}")
        if plan.config.resume and store.is_complete(generator, workload.name, key):
            log.info("%s x %s: complete with the same hash, skipped (--resume)", generator, workload.name)
            statuses.append({**store.status(generator, workload.name), "resumed": True})
        else:
            statuses.append(run_cell(plan, store, clock, progress, generator, workload, key))
        cell_bar.update(1)
    cell_bar.close()
    return statuses


def run_cell(plan: Plan, store: RunStore, clock: Clock, progress: ProgressBar, generator: str,
             workload: Workload, key: str) -> dict[str, Any]:
    """Run one cell into its folder; its status (ok, or failed with the traceback), saved last."""
    folder = store.reset_cell(generator, workload.name)
    started, t0 = utc_now(), time.perf_counter()
    bar = progress(total=0, desc=f"{generator} x {workload.name}", unit="block", leave=False)
    runner = Runner(clock, progress=bar.update, count_flops=plan.config.flops)
    bar.total = runner.total_steps(workload)
    status: dict[str, Any] = {"kind": "cell_status", "generator": generator, "workload": workload.name,
                              "cell_hash": key, "workload_hash": workload.fingerprint(), "started_utc": started}
    try:
        result = runner.run_cell(generator, plan.preset, workload, plan.device, plan.dtype, folder, key)
        store.write_cell_tables(generator, workload.name, result.tables())
        status.update({"status": STATUS_OK, "error": None, "traceback": None, "info": result.info})
        log.info("%s x %s: ok in %.1f s", generator, workload.name, time.perf_counter() - t0)
    except Exception as exc:  # noqa: BLE001 - one failure never stops the other cells
        status.update({"status": STATUS_FAILED, "error": f"{type(exc).__name__}: {exc}",
                       "traceback": traceback.format_exc()})
        log.error("%s x %s: failed: %s", generator, workload.name, status["error"])
    finally:
        bar.close()
        gc.collect()  # release this cell's model before the next one measures its memory
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    status.update({"finished_utc": utc_now(), "wall_s": time.perf_counter() - t0, "resumed": False})
    store.write_status(generator, workload.name, status)  # last: the cell counts as done only now
    return status


def log_failures(store: RunStore, statuses: list[dict[str, Any]]) -> None:
    """One error line per failed cell, naming its ``status.json``."""
    for s in statuses:
        if s["status"] != STATUS_OK:
            log.error("%s x %s failed: %s (traceback in %s)", s["generator"], s["workload"], s.get("error"),
                      store.cell_dir(s["generator"], s["workload"]) / "status.json")

