"""Reading saved run folders: one run's files as a :class:`RunData`, several as a :class:`RunSet`.

The layout is the one :mod:`bench.core.storage` writes (``manifest.json``, ``peak.json``,
``cells/<generator>__<workload>/status.json`` and the cell tables, ``drift/``); the files are read
through its readers (:func:`~bench.core.storage.read_json`, :func:`~bench.core.storage.read_table`).
Nothing here computes results: the layers above derive them from the tables (for example the
reports' systems summary, :mod:`metrics.systems`).

A folder that is missing, is not a run folder, or is damaged raises :class:`RunFolderError` with a
message that names the problem and the fix.
"""

from __future__ import annotations

import logging
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import pandas as pd

from bench.core.errors import RunFolderError
from bench.core.storage import CELL_TABLES, CONTINUATION_DIR, DRIFT_DIR, STATUS_OK, read_json, read_table

log = logging.getLogger(__name__)

CELL_COLUMNS = ["generator", "workload", "status", "error", "cell_dir", "peak_flops_per_s"]


def status_peak_flops_per_s(status: dict[str, Any]) -> float:
    """The matmul peak a cell's ``status.json`` carries (a Ray cell measures its node's,
    :func:`bench.app.peak.worker_peak`); NaN when it carries none (a local cell: the run's
    ``peak.json`` holds the peak)."""
    value = (status.get("peak") or {}).get("flops_per_s")
    return float(value) if value else float("nan")


@dataclass(eq=False)  # identity: a loaded run is one object (its tables are DataFrames, which have no ==)
class RunData:
    """Everything read from one run folder (nothing else is ever opened)."""

    root: Path
    label: str  # from the manifest (commit and creation time), never from the folder name
    manifest: dict[str, Any]
    peak: dict[str, Any]
    cells: pd.DataFrame  # generator, workload, status, error, cell_dir
    blocks: pd.DataFrame  # the ok cells' tables, concatenated in cell order
    phases: pd.DataFrame
    streams: pd.DataFrame
    flops: pd.DataFrame
    drift_windows: pd.DataFrame | None = None
    drift_summary: pd.DataFrame | None = None
    drift_streams: pd.DataFrame | None = None
    drift_config: dict[str, Any] = field(default_factory=dict)
    quality: pd.DataFrame | None = None  # optional tidy table: generator, workload, metric, value, ci_low, ci_high
    continuation: pd.DataFrame | None = None  # the continuation stage's scores (one row per system)
    continuation_config: dict[str, Any] = field(default_factory=dict)

    @property
    def peak_flops_per_s(self) -> float | None:
        """The measured machine peak (FLOP/s), or None when the run did not measure one."""
        value = self.peak.get("flops_per_s") if self.peak else None
        return float(value) if value else None

    @property
    def cell_peaks(self) -> dict[tuple[str, str], float]:
        """(generator, workload) -> the peak measured on the node that ran the cell, for the cells
        that carry one (Ray cells); the others use :attr:`peak_flops_per_s`."""
        if "peak_flops_per_s" not in self.cells:
            return {}
        known = self.cells[self.cells.peak_flops_per_s.notna()]
        return {(str(r.generator), str(r.workload)): float(r.peak_flops_per_s) for r in known.itertuples()}

    def cell_peak(self, generator: str, workload: str) -> float | None:
        """The peak a cell's fraction of peak divides by: its node's (:attr:`cell_peaks`), else the run's."""
        return self.cell_peaks.get((str(generator), str(workload))) or self.peak_flops_per_s

    def cell_dir(self, generator: str, workload: str) -> Path:
        """The folder of cell ``generator`` x ``workload`` (KeyError when the run has no such cell)."""
        row = self.cells[(self.cells.generator == generator) & (self.cells.workload == workload)]
        if row.empty:
            raise KeyError(f"no cell {generator} x {workload} in {self.root}")
        return self.root / str(row.iloc[0]["cell_dir"])


@dataclass
class RunSet:
    """One or more runs, reported together (labels made unique in the order given)."""

    runs: list[RunData]

    @property
    def multi(self) -> bool:
        """Whether more than one run is reported (tables then get a ``run`` column)."""
        return len(self.runs) > 1

    def __iter__(self) -> Iterator[RunData]:
        return iter(self.runs)


def read_run_json(path: Path) -> dict[str, Any] | None:
    """The JSON object of a run-folder file, or None when the file does not exist.

    Unlike :func:`bench.core.storage.read_json`, a file that exists but cannot be read as JSON
    raises :class:`RunFolderError` (a damaged run folder is reported, never read as empty).
    """
    path = Path(path)
    if not path.exists():
        return None
    data = read_json(path)
    if data is None:
        raise RunFolderError(f"{path} is not valid JSON or cannot be read; the run folder is damaged: rerun the cell")
    return data


def read_run_table(folder: Path, name: str) -> pd.DataFrame | None:
    """Table ``<name>.parquet`` of ``folder`` without its ``schema_version`` column; None when missing."""
    if not (Path(folder) / f"{name}.parquet").exists():
        return None
    return read_table(folder, name).drop(columns=["schema_version"], errors="ignore")


def run_label(manifest: dict[str, Any]) -> str:
    """A run's label from its manifest: short commit (+dirty) and UTC creation time."""
    git = manifest.get("git") or {}
    short = git.get("short") or (git.get("commit") or "nogit")[:8]
    dirty = "+dirty" if git.get("dirty") else ""
    return f"{short}{dirty} {manifest.get('created_utc', '?')}"


def _read_cells(root: Path) -> pd.DataFrame:
    """One row per cell folder with a ``status.json`` (a cell without one is not listed)."""
    rows = []
    for status_path in sorted((root / "cells").glob("*/status.json")):
        status = read_run_json(status_path) or {}
        folder = status_path.parent
        name_parts = folder.name.split("__", 1)
        error = status.get("error") or ""
        rows.append({
            "generator": str(status.get("generator") or name_parts[0]),
            "workload": str(status.get("workload") or (name_parts[1] if len(name_parts) > 1 else "?")),
            "status": str(status.get("status") or "incomplete"),
            "error": str(error).splitlines()[0] if error else "",
            "cell_dir": str(folder.relative_to(root)),
            "peak_flops_per_s": status_peak_flops_per_s(status),
        })
    return pd.DataFrame(rows, columns=CELL_COLUMNS)


def _read_cell_tables(root: Path, cells: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The ok cells' tables (blocks, phases, streams, flops), each concatenated in cell order."""
    parts: dict[str, list[pd.DataFrame]] = {name: [] for name in CELL_TABLES}
    for _, cell in cells[cells.status == STATUS_OK].iterrows():
        for name in CELL_TABLES:
            table = read_run_table(root / cell.cell_dir, name)
            if table is None:
                path = root / cell.cell_dir / f"{name}.parquet"
                raise RunFolderError(f"{path} is missing although the cell's status is ok; the run folder is damaged")
            parts[name].append(table)
    return {name: (pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()) for name, frames in parts.items()}


def _read_drift(run: RunData) -> None:
    """Fill the drift stage's tables and config into ``run`` (when the stage wrote its summary)."""
    drift = run.root / DRIFT_DIR
    run.drift_summary = read_run_table(drift, "summary")
    if run.drift_summary is None:
        return
    run.drift_windows = read_run_table(drift, "windows")
    run.drift_streams = read_run_table(drift, "streams")
    run.drift_config = read_run_json(drift / "config.json") or {}


def load_run(run_dir: str | Path) -> RunData:
    """Read one run folder (see :mod:`bench.core.storage` for its layout)."""
    root = Path(run_dir)
    if not root.is_dir():
        raise RunFolderError(f"run folder {root} does not exist; give the folder a run wrote (runs/<time>_<sha>/)")
    manifest = read_run_json(root / "manifest.json")
    if manifest is None:
        raise RunFolderError(
            f"{root} has no manifest.json, so it is not a run folder (results without a manifest do not exist); "
            "give a folder written by `python run_all.py`"
        )
    peak = read_run_json(root / "peak.json") or {}
    cells = _read_cells(root)
    tables = _read_cell_tables(root, cells)
    run = RunData(root=root, label=run_label(manifest), manifest=manifest, peak=peak, cells=cells,
                  blocks=tables["blocks"], phases=tables["phases"], streams=tables["streams"], flops=tables["flops"])
    _read_drift(run)
    run.continuation = read_run_table(root / CONTINUATION_DIR, "scores")
    run.continuation_config = read_run_json(root / CONTINUATION_DIR / "config.json") or {}
    run.quality = read_run_table(root, "quality")
    log.debug("read run %s (%d cells)", run.label, len(cells))
    return run


def load_runs(run_dirs: Iterable[str | Path]) -> RunSet:
    """Load several run folders; duplicate labels get a `` (2)``-style suffix."""
    runs = [load_run(d) for d in run_dirs]
    if not runs:
        raise RunFolderError("no run folder given; pass at least one (for example runs/<time>_<sha>)")
    seen: dict[str, int] = {}
    for run in runs:
        count = seen.get(run.label, 0) + 1
        seen[run.label] = count
        if count > 1:
            run.label = f"{run.label} ({count})"
    return RunSet(runs)


__all__ = ["RunData", "RunSet", "load_run", "load_runs", "run_label", "read_run_json", "read_run_table"]


def resume_command(argv: Sequence[str], out: object) -> str:
    """The command that continues this run: the same options, ``--out`` the run folder, ``--resume``."""
    args = [a for a in argv if a != "--resume"]
    if "--out" not in args and not any(a.startswith("--out=") for a in args):
        args += ["--out", str(out)]
    return shlex.join(["python", "run_all.py", *args, "--resume"])


def recorded_argv(manifest: dict[str, Any]) -> list[str]:
    """The command-line arguments a run was started with, from its manifest (manifests written before
    2026-12 recorded ``sys.argv``, program name first: it is dropped)."""
    argv = [str(a) for a in (manifest.get("run") or {}).get("argv") or []]
    return argv[1:] if argv and argv[0].endswith("run_all.py") else argv


def manifest_resume_command(manifest: dict[str, Any], run_dir: Path) -> str | None:
    """The resume command of a saved run, from the command line its manifest recorded (None when the
    manifest has none)."""
    argv = recorded_argv(manifest)
    return resume_command(argv, run_dir) if (manifest.get("run") or {}).get("argv") else None
