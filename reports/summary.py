"""The short Markdown summary of a run, built from the run folder's saved files only.

``write_summary(run_dir)`` reads ``manifest.json``, ``peak.json``, the run tables (``cells``,
``summary``, ``pairs``, ``overhead``, ``phase_summary``) and the drift stage's files, and writes
``summary.md``; it never runs a model, so it can be rebuilt at any time
(``python -m reports.summary runs/<run>``).

Where the cells were timed comes from the ``cells`` table's ``node`` and ``hardware`` columns
(:func:`hardware_groups`): cells timed on different hardware get a loud warning naming which cells
ran on which node, CPU and GPU (their latencies are not comparable across groups).

The systems table of each workload shows the values of :func:`reports.systems_rows.systems_record`
(the same rows as the report's latency and compute tables) with fixed decimals; the real-time verdict is
the live model's, beside the offline (throughput) verdict
(:func:`reports.formatting.format_fixed`); the drift section is
:func:`reports.drift_summary.render_drift_summary`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.core.phases import PHASE_ORDER
from bench.core.run_folder import RunSet, load_run, manifest_resume_command, read_run_json, read_run_table
from bench.core.storage import CONTINUATION_DIR, atomic_write_text
from reports.continuation_table import continuation_table
from reports.drift_summary import render_drift_summary
from reports.formatting import (
    NOT_MEASURED,
    format_fixed,
    format_significant,
    format_value,
    is_finite,
    markdown_code,
    markdown_table,
    markdown_text,
    node_peaks_text,
)
from reports.systems_rows import playback_views, systems_record, what_ran

SYSTEMS_HEADER = ["regime", "TTFA ms", "p50 ms", "p90 ms", "p99 ms", "RTF", "x real time", "look-ahead s",
                  "underruns (live)", "min pre-buffer s (live)", "verdict (live)", "offline verdict (throughput)",
                  "GFLOP/block", "meas/analytic", "GFLOP/s", "% peak",
                  "peak mem MB", "KV MB kept / in-block", "params M"]
SYSTEMS_NOTE = (
    "`*` percentile not valid: fewer samples than MLPerf's minimum (64 for p90, 662 for p99). "
    "Latencies are per block (one `step` call); RTF = compute s / audio s; GFLOP/block is the "
    "analytic count of a steady block; meas/analytic is FlopCounterMode's count over the analytic one; "
    "peak memory: {peak_mem_kind}; KV kept = caches held between blocks, in-block = caches "
    "rebuilt inside every block (enc-dec context, LMM decoders). Live: playback simulated from the measured "
    "block times with the generator at most the look-ahead ahead of the listener (the real-time verdict); "
    "offline: the same blocks back to back with an unbounded lead (throughput only; docs/harness.md)."
)
NO_LOOKAHEAD_NOTE = (
    " Live values n/m (not measured): a run recorded before the live model (no look-ahead in its streams)."
)


def hardware_groups(cells: pd.DataFrame | None) -> dict[str, dict[str, list[str]]]:
    """The ok cells by hardware label, then node: ``{hardware: {node: ["generator x workload", ...]}}``.
    Empty for runs whose ``cells`` table has no hardware column (made before nodes were recorded)."""
    if cells is None or "hardware" not in cells.columns:
        return {}
    groups: dict[str, dict[str, list[str]]] = {}
    for _, row in cells[(cells.status == "ok") & cells.hardware.fillna("").astype(bool)].iterrows():
        cell = f"{markdown_text(row.generator)} x {markdown_text(row.workload)}"
        groups.setdefault(str(row.hardware), {}).setdefault(str(row.node), []).append(cell)
    return groups


def describe_hardware_groups(groups: dict[str, dict[str, list[str]]]) -> list[str]:
    """One line per (hardware, node): ``node [hardware]: cell, cell``."""
    return [f"{node} [{hardware}]: {', '.join(cells)}"
            for hardware, nodes in groups.items() for node, cells in nodes.items()]


def _hardware_lines(cells: pd.DataFrame | None) -> list[str]:
    """A loud warning when the cells were timed on different hardware; the nodes when a run used several
    (or a remote executor); nothing for a local run on one machine (the header names its CPU)."""
    groups = hardware_groups(cells)
    nodes = {node for g in groups.values() for node in g}
    if len(groups) > 1:
        lines = ["- **WARNING: the cells were timed on different hardware; compare latencies only between cells "
                 "timed on the same hardware:**"]
        return lines + [f"  - {line}" for line in describe_hardware_groups(groups)]
    executors = set(cells.executor.fillna("")) if cells is not None and "executor" in cells.columns else set()
    if len(nodes) > 1 or (groups and executors - {"", "local"}):
        return [f"- cells timed on {len(nodes)} node(s), all with the same hardware:"] + \
            [f"  - {line}" for line in describe_hardware_groups(groups)]
    return []


def _header_lines(run_dir: Path, manifest: dict[str, Any], peak: dict[str, Any], cells: pd.DataFrame | None) -> list[str]:
    """Title, code and machine, matmul peak, and the cells' statuses (failures listed)."""
    run, git = manifest.get("run", {}), manifest.get("git", {})
    threads = manifest.get("threads", {})
    gpus = manifest.get("gpu", {}).get("gpus") or []
    dirty = " (dirty)" if git.get("dirty") else ""
    lines = [f"# Run summary: {run_dir.name}", ""]
    lines.append(
        f"- code: {git.get('commit') or 'unknown'}{dirty}; created {manifest.get('created_utc', '?')}; "
        f"schema {manifest.get('schema_version', '?')}"
    )
    lines.append(
        f"- preset `{run.get('preset', '?')}` on {run.get('device', '?')} ({run.get('dtype', '?')}); "
        f"torch {manifest.get('torch', {}).get('version', '?')}; CPU {manifest.get('cpu', {}).get('model', '?')}"
        f" ({threads.get('torch_threads', '?')} torch threads of {threads.get('affinity_cpus', '?')} cores)"
        + (f"; GPU {', '.join(gpus)}" if gpus else "")
    )
    node_peaks = cells.peak_flops_per_s.dropna() if cells is not None and "peak_flops_per_s" in cells else ()
    if peak.get("flops_per_s"):
        lines.append(f"- matmul peak ({peak.get('dtype')}, n={peak.get('size')}): "
                     f"{format_fixed(peak['flops_per_s'], 1, 1e-9)} GFLOP/s")
    elif len(node_peaks):
        lines.append(f"- matmul peak: {node_peaks_text(node_peaks, peak.get('dtype'))} (`cells` table)")
    else:
        lines.append(f"- matmul peak: not measured ({peak.get('note', 'no peak.json')})")
    if cells is not None:
        failed = cells[cells.status != "ok"]
        lines.append(f"- cells: {int((cells.status == 'ok').sum())} ok, {len(failed)} failed")
        for _, row in failed.iterrows():
            lines.append(f"  - FAILED {markdown_text(row.generator)} x {markdown_text(row.workload)}: "
                         f"{markdown_text(row.error.splitlines()[0]) if row.error else ''}")
        again = manifest_resume_command(manifest, run_dir) if len(failed) else None
        if again:
            lines.append(f"  - to finish the failed cells (same configuration): `{again}`")
        lines += _hardware_lines(cells)
    return lines + [""]


def _what_ran_lines(streams: pd.DataFrame | None) -> list[str]:
    """One row per regime: how its cells ran (eager or compiled:<mode>) and the attention kernels
    of their first warm-up block; nothing for a run without streams."""
    ran = what_ran(streams) if streams is not None else {}
    if not ran:
        return []
    per_generator: dict[str, dict[str, list[str]]] = {}
    for (generator, _), record in ran.items():
        entry = per_generator.setdefault(generator, {"execution": [], "attention_kernels": []})
        for key, value in record.items():
            if value not in entry[key]:
                entry[key].append(value)
    rows = [[markdown_text(g), markdown_text(" / ".join(e["execution"])),
             markdown_text(" / ".join(e["attention_kernels"]))] for g, e in per_generator.items()]
    return ["What ran (every cell records it; attention kernels: the aten ops of its first warm-up block):", "",
            *markdown_table(["regime", "execution", "attention kernels"], rows), ""]


def _percentile_cell(record: dict[str, Any], name: str) -> str:
    """``p90``/``p99`` in ms with ``*`` when it has fewer samples than MLPerf's minimum."""
    return format_fixed(record[f"{name}_ms"], 2) + ("" if record[f"{name}_valid"] else "*")


def _systems_cells(record: dict[str, Any]) -> list[str]:
    """One row of the summary's systems table (columns of :data:`SYSTEMS_HEADER`)."""
    f = format_fixed
    return [
        markdown_text(record["generator"]), f(record["ttfa_ms"]), f(record["p50_ms"], 2), _percentile_cell(record, "p90"),
        _percentile_cell(record, "p99"), f(record["rtf"], 3), f(record["x_realtime"], 2),
        f(record["lookahead_s"], 2),
        format_value(record["underruns"], "int") if is_finite(record["underruns"]) else NOT_MEASURED,
        f(record["min_prebuffer_s"], 2),
        record["verdict"], record["offline_verdict"],
        f(record["analytic_gflop_per_block"], 2), f(record["measured_over_analytic"], 3),
        f(record["achieved_gflop_per_s"], 1), f(record["peak_fraction"], 1, 100.0), f(record["peak_mem_mib"], 0),
        f(record["kv_cache_mib"], 2) + " / " + f(record["transient_kv_mib"], 2), f(record["params_m"], 2),
    ]


def _systems_lines(group: pd.DataFrame) -> list[str]:
    """The systems table of one workload (rows of the run's ``summary`` table) and its note."""
    rows = [_systems_cells(systems_record(r)) for _, r in group.iterrows()]
    note = SYSTEMS_NOTE.format(peak_mem_kind=group.iloc[0].peak_mem_kind)
    lookahead = group["lookahead_s"] if "lookahead_s" in group else pd.Series([float("nan")])
    if not all(is_finite(x) for x in lookahead):
        note += NO_LOOKAHEAD_NOTE
    return markdown_table(SYSTEMS_HEADER, rows) + ["", note, ""]


def _phase_lines(phases: pd.DataFrame | None, workload: str) -> list[str]:
    """Median ms per phase and block (first block / steady blocks), with calls per block."""
    if phases is None or phases.empty:
        return []
    part = phases[phases.workload == workload]
    present = [p for p in PHASE_ORDER if p in set(part.phase)] + sorted(set(part.phase) - set(PHASE_ORDER))
    rows = []
    for gen, g in part.groupby("generator", sort=False):
        cells = []
        for phase in present:
            cell = []
            for kind in ("first", "steady"):
                r = g[(g.phase == phase) & (g.block_kind == kind)]
                cell.append(f"{format_fixed(r.median_ms.iloc[0], 2)} ({format_significant(r.calls.iloc[0], 6)}x)"
                            if len(r) else "-")
            cells.append(" / ".join(cell))
        rows.append([markdown_text(gen)] + cells)
    return ["Median ms per block in each phase, first block / steady blocks (calls per block):", ""] + \
        markdown_table(["regime"] + present, rows) + [""] + _attainable_lines(part, present)


def _attainable_lines(part: pd.DataFrame, present: list[str]) -> list[str]:
    """Steady blocks: each phase's attainable ms on this machine and the share of it reached."""
    if "attainable_ms" not in part or not np.isfinite(part.attainable_ms.astype(float)).any():
        return []
    steady = part[part.block_kind == "steady"]
    rows = []
    for gen, g in steady.groupby("generator", sort=False):
        cells = []
        for phase in present:
            r = g[g.phase == phase]
            if r.empty or not is_finite(r.attainable_ms.iloc[0]):
                cells.append("-")
                continue
            cells.append(f"{format_fixed(r.attainable_ms.iloc[0], 2)} ({format_fixed(r.attainable_fraction.iloc[0], 0, 100.0)}%)")
        rows.append([markdown_text(gen)] + cells)
    return (["Attainable ms per steady block in each phase on this machine (its matmuls and attention replayed "
             "alone at their shapes, other operations at the measured memory bandwidth) and the share of it the "
             "measured median reaches (100% = the code adds nothing to the hardware's cost):", ""]
            + markdown_table(["regime"] + present, rows) + [""])


def _control_lines(group: pd.DataFrame) -> list[str]:
    """Control latency of the regimes whose workload changes prompts (none otherwise): live, and offline."""
    changes = group[group.prompt_changes > 0]
    if changes.empty:
        return []
    rows = []
    for _, r in changes.iterrows():
        v = playback_views(r)
        rows.append([markdown_text(r.generator), str(int(r.prompt_changes))] + [format_fixed(v[key]) for key in (
            "control_latency_best_ms", "control_latency_worst_ms", "offline_control_latency_best_ms",
            "offline_control_latency_worst_ms")])
    header = ["regime", "changes", "live best ms (mean)", "live worst ms (max)", "offline best ms (mean)",
              "offline worst ms (max)"]
    return (["Control latency (prompt change until audio under the new prompt plays; live = bounded look-ahead, "
             "offline = unbounded lead, which grows it):", ""] + markdown_table(header, rows) + [""])


def _overhead_lines(overhead: pd.DataFrame | None, workload: str) -> list[str]:
    """The null generator's block latency as a share of the reference regime's."""
    if overhead is None or overhead[overhead.workload == workload].empty:
        return []
    o = overhead[overhead.workload == workload].iloc[0]
    share = format_fixed(o.overhead_fraction, 3, 100.0)
    lines = [f"Null generator (`{o.null_generator}`) block latency: {format_fixed(o.null_median_ms, 3)} ms median, "
             f"{share}% of `{o.reference}`'s median block latency ({format_fixed(o.reference_median_ms, 2)} ms).", ""]
    work_ms = getattr(o, "null_work_ms", float("nan"))
    if pd.notna(work_ms):
        lines[0] += (f" Of it, {format_fixed(work_ms, 3)} ms is the null generator's own work inside its phases "
                     f"(drawing its noise) and {format_fixed(o.harness_ms, 3)} ms "
                     f"({format_fixed(o.harness_fraction, 3, 100.0)}%) the harness around them (differences of medians).")
    per_entry = getattr(o, "per_phase_entry_us", float("nan"))
    if pd.notna(per_entry):
        lines += [f"Harness cost per phase entry: {format_fixed(per_entry, 2)} us (the null generator with "
                  f"{format_fixed(o.extra_phase_entries, 0)} more phase entries per block, the LMM's, takes "
                  f"{format_fixed(o.phased_null_median_ms, 3)} ms median).", ""]
    return lines


def _pair_lines(pairs: pd.DataFrame | None, workload: str) -> list[str]:
    """Measured latency ratios against analytic FLOP ratios for each pair of regimes."""
    part = pairs[pairs.workload == workload] if pairs is not None else None
    if part is None or part.empty:
        return []
    rows = [[markdown_text(r.a), markdown_text(r.b), format_fixed(r.latency_ratio, 3), format_fixed(r.analytic_flop_ratio, 3),
             format_fixed(r.latency_over_flop_ratio, 3), format_fixed(getattr(r, "attainable_ratio", float("nan")), 3),
             format_fixed(getattr(r, "latency_over_attainable_ratio", float("nan")), 3),
             format_fixed(getattr(r, "latency_over_attainable_cold_ratio", float("nan")), 3)] for _, r in part.iterrows()]
    return (["Measured steady block-latency ratio against the analytic FLOP ratio (1.0 = time scales with FLOPs) "
             "and against the ratio of attainable times on this machine (1.0 = the gap is the hardware's), with "
             "operands warm in the caches and cold from memory (a real pass lies between):", ""]
            + markdown_table(["a", "b", "latency a/b", "FLOPs a/b", "latency / FLOP ratio", "attainable a/b",
                              "latency / attainable ratio", "latency / attainable ratio, cold"], rows) + [""])


def render_summary(run_dir: Path) -> str:
    """The Markdown text of a run's summary."""
    run_dir = Path(run_dir)
    manifest = read_run_json(run_dir / "manifest.json") or {}
    peak = read_run_json(run_dir / "peak.json") or {}
    summary = read_run_table(run_dir, "summary")
    lines = _header_lines(run_dir, manifest, peak, read_run_table(run_dir, "cells"))
    if summary is None or summary.empty:
        lines.append("No completed cells: nothing to summarise.")
        return "\n".join(lines) + "\n"
    lines += _what_ran_lines(read_run_table(run_dir, "streams"))
    pairs, overhead = read_run_table(run_dir, "pairs"), read_run_table(run_dir, "overhead")
    phases = read_run_table(run_dir, "phase_summary")
    for workload, group in summary.groupby("workload", sort=False):
        first = group.iloc[0]
        look = playback_views(first)["lookahead_s"]
        look_text = f"live look-ahead {format_significant(look, 6)} s, " if is_finite(look) else ""
        lines += [f"## Workload {markdown_code(workload)} ({first.scenario}, pre-buffer {format_significant(first.prebuffer_s, 6)} s, "
                  f"{look_text}{int(first.blocks / first.repeats)} blocks x {int(first.repeats)} repeat(s))", ""]
        lines += _systems_lines(group)
        lines += _phase_lines(phases, workload)
        lines += _control_lines(group)
        lines += _overhead_lines(overhead, workload)
        lines += _pair_lines(pairs, workload)
    drift = render_drift_summary(run_dir)
    if drift:
        lines += [drift.rstrip(), ""]
    lines += _continuation_lines(run_dir)
    return "\n".join(lines) + "\n"


def _continuation_lines(run_dir: Path) -> list[str]:
    """The continuation stage's table (or why it measured nothing); nothing when it did not run."""
    if not (run_dir / CONTINUATION_DIR / "config.json").exists():
        return []
    table = continuation_table(RunSet([load_run(run_dir)]))
    return [table.to_markdown().rstrip().replace("### ", "## ", 1), ""]


def write_summary(run_dir: Path) -> str:
    """Render and atomically write ``summary.md`` in ``run_dir``; returns the text."""
    text = render_summary(Path(run_dir))
    atomic_write_text(Path(run_dir) / "summary.md", text)
    return text


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.stderr.write("usage: python -m reports.summary RUN_FOLDER\n")
        sys.exit(2)
    sys.stdout.write(write_summary(Path(sys.argv[1])))
