"""A versus B: deltas between two runs, and loud warnings when their manifests differ.

Typical comparisons: two checkpoints (same code and machine, different ``dit.weights``), two commits
(same machine), or two machines (same commit). The deltas are only about the change under test if
everything else is equal, so the manifests are compared field by field:

- ``hardware`` (CPU model, GPUs, driver, machine type, thread counts): a WARNING;
- ``software`` (Python, torch, CUDA, cuDNN, package versions): a WARNING;
- ``code`` (commit, dirty flag) and ``run`` (preset, device, dtype, workload fingerprints): shown
  as information (they are usually what is being compared).

The manifest describes the machine that started the run; the cells may have been timed elsewhere
(``--executor ray``). So the ``cells`` tables' node and hardware columns are compared too
(:func:`hardware_warnings`): a run whose cells were timed on different hardware, or a cell timed on
different hardware in A and in B, is a WARNING that says which cells ran on which node, CPU and GPU.

Deltas are computed for every (regime, workload) cell present in both runs: ``delta = B - A`` and
``delta_pct = 100 (B - A) / |A|``, with ``change`` = better / worse / same from the metric's
direction (same: equal values).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from bench.core.run_folder import RunData, RunSet, read_run_table
from reports.metric_names import metric_direction, metric_label
from reports.quality_tables import quality_long
from reports.style import regime_sort_key
from reports.summary import describe_hardware_groups, hardware_groups
from reports.systems_tables import compute_table, latency_table
from reports.table_model import Column, Table

log = logging.getLogger(__name__)

# (table, column, label, direction)
DELTA_METRICS: tuple[tuple[str, str, str, str], ...] = (
    ("latency", "ttfa_ms", "TTFA (ms)", "lower"),
    ("latency", "steady_median_ms", "steady block, median (ms)", "lower"),
    ("latency", "p90_ms", "p90 (ms)", "lower"),
    ("latency", "rtf", "RTF, median per block", "lower"),
    ("latency", "x_realtime", "x real time", "higher"),
    ("latency", "underruns", "underruns", "lower"),
    ("latency", "min_prebuffer_s", "min pre-buffer (s)", "lower"),
    ("compute", "measured_gflop_per_audio_s", "measured GFLOP per audio s", "lower"),
    ("compute", "achieved_gflop_per_s", "achieved GFLOP/s", "higher"),
    ("compute", "peak_mem_mib", "peak memory (MiB)", "lower"),
    ("compute", "kv_cache_mib", "KV cache (MiB)", "lower"),
)

HARDWARE_FIELDS = ("cpu.model", "gpu.gpus", "gpu.driver", "platform.machine", "threads.torch_threads",
                   "threads.torch_interop_threads", "threads.affinity_cpus", "threads.os_cpu_count")
SOFTWARE_FIELDS = ("python.version", "python.implementation", "torch.version", "torch.cuda", "torch.cudnn",
                   "gpu.torch_cuda")
CODE_FIELDS = ("git.commit", "git.dirty")
RUN_FIELDS = ("run.preset", "run.preset_fingerprint", "run.device", "run.dtype", "schema_version")


@dataclass(frozen=True)
class ManifestDifference:
    """One manifest field that differs between run A and run B."""

    field: str
    a: Any
    b: Any
    category: str  # hardware, software, code, run

    @property
    def loud(self) -> bool:
        """Whether this difference is a warning (hardware or software), not information."""
        return self.category in ("hardware", "software")


@dataclass
class Comparison:
    """Run A versus run B: manifest differences and the deltas table."""

    a: RunData
    b: RunData
    differences: list[ManifestDifference]
    deltas: Table
    notes: list[str] = field(default_factory=list)
    hardware: list[str] = field(default_factory=list)  # :func:`hardware_warnings` of the cells tables

    @property
    def warnings(self) -> list[ManifestDifference]:
        """The loud manifest differences (hardware and software)."""
        return [d for d in self.differences if d.loud]

    def warning_text(self) -> str:
        """The loud warning (empty when hardware and software match, in the manifests and in the cells)."""
        parts = []
        if self.warnings:
            kinds = sorted({d.category for d in self.warnings})
            items = "; ".join(f"{d.field}: {_show(d.a)} -> {_show(d.b)}" for d in self.warnings)
            parts.append(f"WARNING: run A and run B differ in {' and '.join(kinds)} ({items}). The deltas below "
                         "mix the change under test with these differences; compare on one machine with one "
                         "software stack.")
        return " ".join(parts + self.hardware)

    def to_markdown(self) -> str:
        """The comparison section of report.md: warning, manifest differences, deltas."""
        lines = [f"## Comparison: A = {self.a.label}, B = {self.b.label}", ""]
        warning = self.warning_text()
        if warning:
            lines += [f"> **{warning}**", ""]
        if self.differences:
            lines += ["| manifest field | A | B | kind |", "|---|---|---|---|"]
            lines += [f"| {d.field} | {_show(d.a)} | {_show(d.b)} | {d.category} |" for d in self.differences]
            lines.append("")
        else:
            lines += ["The manifests agree on hardware, software, code and run settings.", ""]
        lines.append(self.deltas.to_markdown())
        return "\n".join(lines) + "\n"


def _show(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "none"
    return "missing" if value is None else str(value)


def _get(manifest: dict[str, Any], dotted: str) -> Any:
    node: Any = manifest
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def manifest_differences(a: dict[str, Any], b: dict[str, Any]) -> list[ManifestDifference]:
    """Fields that differ between two manifests, with their category (see the module docstring)."""
    out = []
    groups = (("hardware", HARDWARE_FIELDS), ("software", SOFTWARE_FIELDS), ("code", CODE_FIELDS), ("run", RUN_FIELDS))
    for category, fields in groups:
        for name in fields:
            va, vb = _get(a, name), _get(b, name)
            if va != vb:
                out.append(ManifestDifference(name, va, vb, category))
    packages = sorted(set(_get(a, "packages") or {}) | set(_get(b, "packages") or {}))
    for pkg in packages:
        if pkg == "live-music-bench":
            continue
        va, vb = (_get(a, "packages") or {}).get(pkg), (_get(b, "packages") or {}).get(pkg)
        if va != vb:
            out.append(ManifestDifference(f"packages.{pkg}", va, vb, "software"))
    wa = {k: v.get("fingerprint") for k, v in (_get(a, "run.workloads") or {}).items()}
    wb = {k: v.get("fingerprint") for k, v in (_get(b, "run.workloads") or {}).items()}
    for name in sorted(set(wa) & set(wb)):
        if wa[name] != wb[name]:
            out.append(ManifestDifference(f"run.workloads.{name}.fingerprint", wa[name], wb[name], "run"))
    return out


def _cells_hardware(run: RunData) -> pd.DataFrame | None:
    """The run's ``cells`` table (node and hardware per cell), or None when it is missing."""
    return read_run_table(run.root, "cells")


def _where(groups: dict[str, dict[str, list[str]]]) -> dict[str, str]:
    """``{"generator x workload": "node [hardware]"}`` from :func:`~reports.summary.hardware_groups`."""
    return {cell: f"{node} [{hardware}]" for hardware, nodes in groups.items() for node, cells in nodes.items()
            for cell in cells}


def hardware_warnings(a: RunData, b: RunData) -> list[str]:
    """Loud lines for cells timed on different hardware: within run A, within run B, and cells present in
    both whose hardware differs between A and B. Runs without node records give none."""
    out = []
    groups = {"A": hardware_groups(_cells_hardware(a)), "B": hardware_groups(_cells_hardware(b))}
    for name, by_hardware in groups.items():
        if len(by_hardware) > 1:
            out.append(f"WARNING: run {name} timed its cells on different hardware "
                       f"({'; '.join(describe_hardware_groups(by_hardware))}).")
    hardware = {name: {cell: hw for hw, nodes in g.items() for cells in nodes.values() for cell in cells}
                for name, g in groups.items()}
    where = {name: _where(g) for name, g in groups.items()}
    moved = [f"{cell} (A: {where['A'][cell]}; B: {where['B'][cell]})"
             for cell in sorted(set(hardware["A"]) & set(hardware["B"])) if hardware["A"][cell] != hardware["B"][cell]]
    if moved:
        out.append("WARNING: these cells were timed on different hardware in A and B, so their deltas measure the "
                   f"hardware too: {'; '.join(moved)}.")
    return out


def _change(a: float, b: float, direction: str | None) -> str:
    if not (math.isfinite(a) and math.isfinite(b)):
        return "n/a"
    if a == b:
        return "same"
    if direction is None:
        return "changed"
    better = b < a if direction == "lower" else b > a
    return "better" if better else "worse"


def compare_runs(a: RunData, b: RunData) -> Comparison:
    """Deltas of the headline metrics for the cells both runs completed, and the manifest differences."""
    tables = {"latency": latency_table(RunSet([a])).data, "compute": compute_table(RunSet([a])).data}
    tables_b = {"latency": latency_table(RunSet([b])).data, "compute": compute_table(RunSet([b])).data}
    rows = []
    for table, key, label, direction in DELTA_METRICS:
        ta, tb = tables[table], tables_b[table]
        if ta.empty or tb.empty:
            continue
        merged = ta[["generator", "workload", key]].merge(tb[["generator", "workload", key]],
                                                          on=["generator", "workload"], suffixes=("_a", "_b"))
        for _, r in merged.iterrows():
            rows.append(_delta_row(r.generator, r.workload, key, label, direction, r[f"{key}_a"], r[f"{key}_b"]))
    qa, _ = quality_long(a)
    qb, _ = quality_long(b)
    if not qa.empty and not qb.empty:
        merged = qa.merge(qb, on=["generator", "workload", "metric"], suffixes=("_a", "_b"))
        for _, r in merged.iterrows():
            rows.append(_delta_row(r.generator, r.workload, r.metric, metric_label(r.metric), metric_direction(r.metric),
                                   r.value_a, r.value_b))
    data = pd.DataFrame(rows, columns=["generator", "workload", "metric", "metric_label", "a", "b", "delta",
                                       "delta_pct", "change", "order"])
    if not data.empty:
        data["_regime"] = [regime_sort_key(g) for g in data.generator]
        data = data.sort_values(["workload", "_regime", "order"], kind="stable").drop(columns=["_regime", "order"])
        data = data.reset_index(drop=True)
    else:
        data = data.drop(columns=["order"])
    columns = [
        Column("generator", "regime", kind="text"), Column("workload", "workload", kind="text"),
        Column("metric_label", "metric", kind="text"), Column("a", "A"), Column("b", "B"),
        Column("delta", "B - A"), Column("delta_pct", "B - A (%)"), Column("change", "change", kind="text"),
    ]
    only_a = _cells(a) - _cells(b)
    only_b = _cells(b) - _cells(a)
    notes = ["Deltas are B - A for the cells both runs completed; change says better / worse by the metric's direction."]
    if only_a or only_b:
        notes.append("Cells in one run only (no delta): "
                     + ", ".join(f"{g} x {w} (A only)" for g, w in sorted(only_a))
                     + (", " if only_a and only_b else "")
                     + ", ".join(f"{g} x {w} (B only)" for g, w in sorted(only_b)) + ".")
    deltas = Table("compare", f"A versus B: {a.label} -> {b.label}", data, columns, [], notes)
    comparison = Comparison(a, b, manifest_differences(a.manifest, b.manifest), deltas,
                            hardware=hardware_warnings(a, b))
    if comparison.warning_text():
        log.warning("%s", comparison.warning_text())
    return comparison


_ORDER = {key: i for i, (_, key, _, _) in enumerate(DELTA_METRICS)}


def _delta_row(generator: str, workload: str, key: str, label: str, direction: str | None, a: Any, b: Any) -> dict:
    a, b = float(a), float(b)
    delta = b - a if math.isfinite(a) and math.isfinite(b) else math.nan
    pct = 100.0 * delta / abs(a) if math.isfinite(delta) and a != 0 else math.nan
    return {"generator": generator, "workload": workload, "metric": key, "metric_label": label, "a": a, "b": b,
            "delta": delta, "delta_pct": pct, "change": _change(a, b, direction),
            "order": _ORDER.get(key, len(_ORDER))}


def _cells(run: RunData) -> set[tuple[str, str]]:
    ok = run.cells[run.cells.status == "ok"]
    return set(zip(ok.generator, ok.workload))


__all__ = ["Comparison", "ManifestDifference", "compare_runs", "hardware_warnings", "manifest_differences",
           "DELTA_METRICS"]
