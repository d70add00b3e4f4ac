"""Run storage: one folder per run, atomic writes, per-cell status, tables as Parquet and CSV.

Layout of a run folder (``runs/<UTC timestamp>_<short sha>/`` by default)::

    manifest.json                 written before any work
    peak.json                     the measured matmul peak (reused by --resume; under Ray: a note)
    cells/<generator>__<workload>/
        status.json               ok, or failed with the traceback; carries the cell hash (and under
                                  Ray the matmul peak of the node that ran it)
        blocks.parquet|csv        one row per timed block
        phases.parquet|csv        one row per (block, phase)
        streams.parquet|csv       one row per timed stream (repeat)
        flops.parquet|csv         one row per (counted block, phase)
        audio/repeat<r>.wav       float32 WAV, appended block by block while streaming
    blocks|phases|streams|flops|summary|phase_summary|pairs|overhead .parquet|csv   run tables
    drift/                        the drift stage (DRIFT_DIR): config.json, streams, window tables
    continuation/                 the continuation stage (CONTINUATION_DIR): scores, config.json, examples/
    summary.md

Every file carries the schema version (a ``schema_version`` key or column). Every write goes to
a temporary file in the same folder and is moved into place with ``os.replace``, so a killed run
leaves either the old file or the new one, never half of one. A cell is complete only when its
``status.json`` says ok; it is written last.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import socket
import tempfile
import time
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

SCHEMA_VERSION = 1
TABLE_FORMATS = ("parquet", "csv")
CELL_TABLES = ("blocks", "phases", "streams", "flops")
STATUS_OK = "ok"
STATUS_FAILED = "failed"
DRIFT_DIR = "drift"  # sub-folder of a run folder written by the drift stage
CONTINUATION_DIR = "continuation"  # sub-folder written by the continuation stage
CONTINUATION_TRUE_ROW = "true continuation"  # its row of the real continuations (the ceiling)
WEIGHTS_TRAINED, WEIGHTS_RANDOM_INIT = "trained", "random init"  # its ``weights`` column
LOCK_FILE = ".lock"  # held by the process writing the run folder

log = logging.getLogger("bench")

__all__ = [
    "SCHEMA_VERSION", "DRIFT_DIR", "atomic_write_bytes", "atomic_write_text", "write_json", "read_json", "write_table",
    "read_table", "safe_name", "cell_dir_name", "AudioWriter", "RunStore", "RunLock", "RunFolderBusy",
]


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, (np.bool_,)):
        return bool(obj)
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot write {type(obj).__name__} to JSON")


def _clean_floats(obj: Any) -> Any:
    """Replace NaN/inf by None (JSON has no NaN)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _clean_floats(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean_floats(v) for v in obj]
    return obj


def write_json(path: Path, obj: dict[str, Any]) -> None:
    """Atomic JSON write; adds ``schema_version`` if missing."""
    obj = {"schema_version": SCHEMA_VERSION, **obj}
    atomic_write_text(path, json.dumps(_clean_floats(obj), indent=2, default=_json_default, sort_keys=False) + "\n")


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object at ``path``, or None when missing or unreadable (e.g. a foreign file)."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def write_table(folder: Path, name: str, df: pd.DataFrame) -> None:
    """Write ``df`` as ``<name>.parquet`` and ``<name>.csv`` (atomic), with a schema_version column."""
    df = df.copy()
    df["schema_version"] = SCHEMA_VERSION
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for fmt in TABLE_FORMATS:
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=f".{fmt}.tmp", dir=folder)
        os.close(fd)
        try:
            if fmt == "parquet":
                df.to_parquet(tmp, index=False)
            else:
                df.to_csv(tmp, index=False)
            os.replace(tmp, folder / f"{name}.{fmt}")
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def read_table(folder: Path, name: str) -> pd.DataFrame:
    """Read ``<name>.parquet`` from ``folder``."""
    return pd.read_parquet(Path(folder) / f"{name}.parquet")


def safe_name(name: str) -> str:
    """A file or folder name made from a user-given string: every character but letters, digits,
    ``.``, ``_`` and ``-`` replaced by ``_``, and a name of dots only (``.``, ``..``) or an empty
    one made harmless, so the result never leaves the folder it is joined to."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", str(name))
    return safe if safe.strip(".") else "_" * max(1, len(safe))


def cell_dir_name(generator: str, workload: str) -> str:
    """A folder name for a cell: ``<generator>__<workload>`` with unsafe characters replaced."""
    return f"{safe_name(generator)}__{safe_name(workload)}"


class AudioWriter:
    """Float32 WAV written block by block (memory stays bounded over long horizons).

    Blocks go to a temporary file; :meth:`close` moves it into place, so an interrupted stream
    never leaves a truncated file under the final name.
    """

    def __init__(self, path: Path, sample_rate: int, channels: int) -> None:
        import soundfile as sf

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.path.with_name(f".{self.path.name}.tmp")
        self._file = sf.SoundFile(self._tmp, mode="w", samplerate=int(sample_rate), channels=int(channels),
                                  subtype="FLOAT", format="WAV")
        self.channels = int(channels)
        self.samples = 0

    def write(self, audio: np.ndarray) -> int:
        """Append one block, shape (channels, samples); returns the sample offset it starts at."""
        if audio.ndim != 2 or audio.shape[0] != self.channels:
            raise ValueError(f"audio block must have shape (channels={self.channels}, samples), got {audio.shape}")
        offset = self.samples
        self._file.write(np.ascontiguousarray(audio.T))  # soundfile wants (samples, channels)
        self.samples += audio.shape[1]
        return offset

    def close(self) -> None:
        self._file.close()
        os.replace(self._tmp, self.path)

    def abort(self) -> None:
        try:
            self._file.close()
        finally:
            self._tmp.unlink(missing_ok=True)


class RunStore:
    """Reads and writes one run folder (see the module docstring for the layout)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def cell_dir(self, generator: str, workload: str) -> Path:
        return self.root / "cells" / cell_dir_name(generator, workload)

    def status(self, generator: str, workload: str) -> dict[str, Any] | None:
        return read_json(self.cell_dir(generator, workload) / "status.json")

    def is_complete(self, generator: str, workload: str, cell_hash: str) -> bool:
        """True iff the cell finished ok with this hash and all its tables are present."""
        status = self.status(generator, workload)
        if not status or status.get("status") != STATUS_OK or status.get("cell_hash") != cell_hash:
            return False
        if status.get("schema_version") != SCHEMA_VERSION:
            return False
        folder = self.cell_dir(generator, workload)
        return all((folder / f"{name}.parquet").exists() for name in CELL_TABLES)

    def reset_cell(self, generator: str, workload: str) -> Path:
        """Remove whatever a previous (failed or killed) attempt left, and return the cell folder."""
        folder = self.cell_dir(generator, workload)
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        return folder

    def write_cell_tables(self, generator: str, workload: str, tables: dict[str, pd.DataFrame]) -> None:
        folder = self.cell_dir(generator, workload)
        for name in CELL_TABLES:
            write_table(folder, name, tables[name])

    def write_status(self, generator: str, workload: str, status: dict[str, Any]) -> None:
        write_json(self.cell_dir(generator, workload) / "status.json", status)

    def read_cell_tables(self, cells: Iterable[tuple[str, str]]) -> dict[str, pd.DataFrame]:
        """Concatenate the tables of the given completed cells, in the order given."""
        out: dict[str, list[pd.DataFrame]] = {name: [] for name in CELL_TABLES}
        for generator, workload in cells:
            folder = self.cell_dir(generator, workload)
            for name in CELL_TABLES:
                out[name].append(read_table(folder, name).drop(columns=["schema_version"], errors="ignore"))
        return {name: (pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()) for name, frames in out.items()}

    def write_run_table(self, name: str, df: pd.DataFrame) -> None:
        write_table(self.root, name, df)


class RunFolderBusy(RuntimeError):
    """Another live process holds the run folder's lock."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    except (OSError, OverflowError, ValueError):
        return False
    return True


class RunLock:
    """``<run folder>/.lock``: one writer per run folder. Created with ``O_EXCL`` holding the pid, host and
    start time; a lock left by a dead process on this host is taken over with a warning; a live
    holder (or one on another host, which cannot be checked) refuses with :class:`RunFolderBusy`."""

    def __init__(self, root: Path) -> None:
        self.path = Path(root) / LOCK_FILE
        self.held = False

    def acquire(self) -> "RunLock":
        record = {"pid": os.getpid(), "host": socket.gethostname(),
                  "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                self._take_over_if_stale()
                continue
            with os.fdopen(fd, "w") as fh:
                fh.write(json.dumps(record))
            self.held = True
            return self
        raise RunFolderBusy(f"{self.path.parent} is being written by another run (its lock {self.path} came back); "
                            "wait for it to finish or choose another --out")

    def _take_over_if_stale(self) -> None:
        other = read_json(self.path) or {}
        pid, host = other.get("pid"), other.get("host")
        if isinstance(pid, int) and host == socket.gethostname() and not _pid_alive(pid):
            log.warning("%s: taking over a stale lock of process %s (started %s), which is no longer running",
                        self.path.parent, pid, other.get("started_utc"))
            self.path.unlink(missing_ok=True)
            return
        if not other:
            raise RunFolderBusy(f"{self.path.parent} has an unreadable lock file {self.path}; if no run is using "
                                "this folder, delete that file")
        raise RunFolderBusy(f"{self.path.parent} is in use by another run: pid {pid} on {host}, started "
                            f"{other.get('started_utc')}; wait for it to finish or choose another --out (if that "
                            f"process is gone, delete {self.path})")

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()
