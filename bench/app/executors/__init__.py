"""Executors: who runs a plan's cells, behind one small interface
(:class:`~bench.app.cells.Executor`: ``run(jobs) -> statuses``).

- ``local`` (:mod:`.local`, the default): one cell after another in this process, written straight
  into the run folder. Needs nothing beyond the core install.
- ``ray`` (:mod:`.ray_cluster`): every cell is a Ray task with declared resources (a whole GPU, or a
  whole node's CPUs), run in a scratch folder on its worker; the task returns the cell's files and
  the driver writes them into the run folder atomically (:mod:`.cell_files`). Needs
  ``pip install 'live-music-bench[ray]'``; ``ray`` is imported only when this executor is chosen.

Both call :func:`bench.app.cells.run_cell`, so the timed code is the same wherever a cell runs.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

from bench.app.cells import Executor, ProgressBar
from bench.app.clocks import Clock
from bench.app.executors.local import LocalExecutor
from bench.app.executors.ray_cluster import RayExecutor
from bench.app.plan import Plan
from bench.core.storage import RunStore

__all__ = ["Executor", "LocalExecutor", "RayExecutor", "open_executor"]


@contextlib.contextmanager
def open_executor(plan: Plan, store: RunStore, clock: Clock | None, progress: ProgressBar) -> Iterator[Executor]:
    """The plan's executor, ready to run (a Ray executor is connected to its cluster, and disconnected
    on leaving the block if it started the connection). ``clock`` (tests) replaces the device's clock.

    Raises :class:`~bench.core.errors.ConfigError` when Ray is missing or its cluster cannot be reached.
    """
    if plan.config.executor == "local":
        yield LocalExecutor(store, plan.device, clock, progress)
        return
    executor = RayExecutor.connect(store, plan.config.ray_address, plan.device, clock, progress)
    try:
        yield executor
    finally:
        executor.close()
