"""A cell's folder as files in memory, and back: how a cell run on a remote worker reaches the run
folder without a shared filesystem. The worker reads its scratch cell folder
(:func:`read_cell_files`); the driver writes the files into the run folder atomically with
:mod:`bench.core.storage`, ``status.json`` last (:func:`write_cell_files`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from bench.core.storage import RunStore, atomic_write_bytes

STATUS_FILE = "status.json"


@dataclass(frozen=True)
class CellOutput:
    """What a remote cell sends back: its status and every other file of its folder (relative POSIX
    path -> bytes: tables as Parquet and CSV, audio as WAV)."""

    status: dict[str, Any]
    files: dict[str, bytes]


def read_cell_files(folder: Path) -> dict[str, bytes]:
    """Every file under a cell folder except ``status.json`` and hidden (temporary) files."""
    folder = Path(folder)
    out = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if path.is_file() and rel.as_posix() != STATUS_FILE and not any(p.startswith(".") for p in rel.parts):
            out[rel.as_posix()] = path.read_bytes()
    return out


def _inside(folder: Path, rel: str) -> Path:
    """``folder / rel``, refusing a path that would leave the folder."""
    parts = PurePosixPath(rel).parts
    if not parts or PurePosixPath(rel).is_absolute() or ".." in parts or rel == STATUS_FILE:
        raise ValueError(f"a cell file must be a relative path inside the cell folder, got {rel!r}")
    return folder.joinpath(*parts)


def write_cell_files(store: RunStore, output: CellOutput) -> None:
    """Replace the cell's folder in ``store`` by ``output``: whatever an earlier attempt left is removed,
    each file is written atomically, and ``status.json`` comes last (the cell counts as done only then)."""
    generator, workload = output.status["generator"], output.status["workload"]
    folder = store.reset_cell(generator, workload)
    targets = {rel: _inside(folder, rel) for rel in output.files}  # check every path before writing any
    for rel, path in targets.items():
        atomic_write_bytes(path, output.files[rel])
    store.write_status(generator, workload, output.status)
