"""The run tables: every ok cell's saved tables concatenated, and the summaries computed from them
(:mod:`metrics.systems`), written at the top of the run folder; ``cells`` lists every cell's status
and where it was timed (node and hardware label, from its ``status.json``; empty for cells of runs
made before nodes were recorded)."""

from __future__ import annotations

import logging
import math
from typing import Any

import pandas as pd

from bench.core.run_folder import status_peak_flops_per_s
from bench.core.storage import STATUS_OK, TABLE_FORMATS, RunStore
from metrics import systems

log = logging.getLogger("bench")

# Tables rebuilt from the cells on every invocation (``cells`` is always rewritten).
RUN_TABLES = ("blocks", "phases", "streams", "flops", "summary", "phase_summary", "pairs", "overhead")


def _cells_table(statuses: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per cell: status, hash, error, wall time, resumed or run, the node and hardware it ran on,
    and the matmul peak measured there (Ray cells; NaN for local ones, whose peak is the run's)."""
    return pd.DataFrame([{
        "generator": s["generator"], "workload": s["workload"], "status": s["status"], "cell_hash": s["cell_hash"],
        "error": s.get("error") or "", "wall_s": s.get("wall_s"), "resumed": bool(s.get("resumed")),
        "node": (s.get("node") or {}).get("id", ""), "executor": (s.get("node") or {}).get("executor", ""),
        "hardware": (s.get("node") or {}).get("hardware", ""), "peak_flops_per_s": status_peak_flops_per_s(s),
    } for s in statuses])


def write_run_tables(store: RunStore, statuses: list[dict[str, Any]], peak_flops_per_s: float | None) -> None:
    """Write ``cells`` and, from the cells whose status is ok, the run tables of :data:`RUN_TABLES`."""
    store.write_run_table("cells", _cells_table(statuses))
    for name in RUN_TABLES:  # a resumed folder may hold tables of an earlier invocation
        for fmt in TABLE_FORMATS:
            (store.root / f"{name}.{fmt}").unlink(missing_ok=True)
    ok_cells = [(s["generator"], s["workload"]) for s in statuses if s["status"] == STATUS_OK]
    if not ok_cells:
        return
    tables = store.read_cell_tables(ok_cells)
    for name, df in tables.items():
        store.write_run_table(name, df)
    try:
        node_peaks = {(s["generator"], s["workload"]): status_peak_flops_per_s(s) for s in statuses}
        cell_peaks = {cell: peak for cell, peak in node_peaks.items() if math.isfinite(peak)}  # else the run's
        summary = systems.summarize(tables["blocks"], tables["streams"], tables["flops"], peak_flops_per_s,
                                    cell_peaks)
        store.write_run_table("summary", summary)
        phases = systems.phase_summary(tables["phases"], tables["flops"])
        store.write_run_table("phase_summary", phases)
        store.write_run_table("pairs", systems.pairwise_ratios(summary))
        store.write_run_table("overhead", systems.null_overhead(summary, phases))
    except (ValueError, KeyError, IndexError, ZeroDivisionError) as exc:  # OSError (disk) goes up to the run
        # The cell tables are saved; a summary problem must not hide them (python -m reports.summary RUN later).
        log.error("run tables: the summaries could not be computed from the cell tables (%s: %s)",
                  type(exc).__name__, exc)
