"""Tidy result tables from saved run folders: one table per question, as CSV, Markdown and LaTeX.

Questions and their tables (built by :func:`build_tables`, in this order):

- ``latency``: latency and real time per (regime, workload): time to first audio, first-block and
  steady-block latency (median with a 95 % CI), p90/p99 (with MLPerf validity), RTF (median per
  block, with CI), x real time, underruns, stall, minimum pre-buffer, control latency, verdict;
- ``phases``: median latency of each phase, first block vs steady blocks;
- ``compute``: parameters, analytic and measured FLOPs, FLOPs per generated second, achieved
  FLOP/s and its fraction of the measured machine peak, peak memory, KV-cache size;
- ``quality``: distances to the reference set per regime (from a ``quality`` table when a run has
  one, else the median over the drift stage's windows; the embedder is named in every header);
- ``drift``: per regime and metric, the drift summary (first/last window, last/first, slope per
  minute with its CI, time to degrade).

The first three are :mod:`reports.systems_tables`, the last two :mod:`reports.quality_tables`; the
table model and its formats are :mod:`reports.table_model`. Everything is computed from the run
folder's saved files (read by :mod:`bench.core.run_folder`) through the harness's own pure
functions (:mod:`metrics.systems`), never by running a model.

Determinism: rows are sorted (workload, regime order, metric), numbers are printed with fixed
rules (:mod:`reports.formatting`), and nothing in a table depends on the folder's name or the time
the report was built, so rebuilding from the same (or a copied) run folder gives byte-identical files.
"""

from __future__ import annotations

from pathlib import Path

from bench.core.run_folder import RunSet
from reports.continuation_table import continuation_table
from reports.quality_tables import drift_table, quality_table
from reports.systems_tables import compute_table, latency_table, phase_table
from reports.table_model import Table


def build_tables(runs: RunSet) -> dict[str, Table]:
    """Every table of the report, keyed by name (in display order)."""
    return {t.name: t for t in (latency_table(runs), phase_table(runs), compute_table(runs), quality_table(runs),
                                continuation_table(runs), drift_table(runs))}


def write_tables(tables: dict[str, Table], folder: Path) -> list[Path]:
    """Write every table as CSV, Markdown and LaTeX into ``folder``."""
    paths: list[Path] = []
    for table in tables.values():
        paths += table.write(folder)
    return paths


__all__ = ["build_tables", "write_tables"]
