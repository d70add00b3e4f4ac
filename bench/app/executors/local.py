"""The local executor (the default): the cells one after another in this process, each written
straight into the run folder by :func:`bench.app.cells.run_cell`."""

from __future__ import annotations

from typing import Any, Sequence

from bench.app.cells import CellJob, ProgressBar, run_cell
from bench.app.clocks import Clock, make_clock
from bench.app.manifest import node_record
from bench.core.storage import RunStore


class LocalExecutor:
    """Runs cells in order in this process with one clock (the device's, unless a test gives one)."""

    name = "local"

    def __init__(self, store: RunStore, device: str, clock: Clock | None, progress: ProgressBar) -> None:
        self.store = store
        self.device = device
        self.clock = clock if clock is not None else make_clock(device)
        self.progress = progress

    def run(self, jobs: Sequence[CellJob]) -> list[dict[str, Any]]:
        """Run every job in order; one status per job."""
        node = node_record(self.device, self.name)  # one machine: gathered once, with the run's threads in effect
        statuses = []
        bar = self.progress(total=len(jobs), desc="cells", unit="cell")
        for job in jobs:
            bar.set_postfix_str(job.label)
            statuses.append(run_cell(job, self.store, self.clock, self.progress, node))
            bar.update(1)
        bar.close()
        return statuses
