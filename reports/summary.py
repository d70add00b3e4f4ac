"""The short Markdown summary of a run, built from the run folder's saved files only.

``write_summary(run_dir)`` reads ``manifest.json``, ``peak.json`` and the run tables (``cells``,
``summary``, ``pairs``, ``overhead``, ``phase_summary``) and writes ``summary.md``; it never runs
a model, so it can be rebuilt at any time (``python -m reports.summary runs/<run>``).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from bench.contract import PHASE_ORDER
from bench.storage import atomic_write_text

NOT_MEASURED = "n/m"


def _read(run_dir: Path, name: str) -> pd.DataFrame | None:
    path = run_dir / f"{name}.parquet"
    return pd.read_parquet(path) if path.exists() else None


def _json(run_dir: Path, name: str) -> dict[str, Any]:
    path = run_dir / name
    return json.loads(path.read_text()) if path.exists() else {}


def _num(value: Any, digits: int = 1, scale: float = 1.0) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return NOT_MEASURED
    return f"{float(value) * scale:,.{digits}f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return out


def render_summary(run_dir: Path) -> str:
    """The Markdown text of a run's summary."""
    run_dir = Path(run_dir)
    manifest, peak = _json(run_dir, "manifest.json"), _json(run_dir, "peak.json")
    cells, summary = _read(run_dir, "cells"), _read(run_dir, "summary")
    pairs, overhead = _read(run_dir, "pairs"), _read(run_dir, "overhead")
    phases = _read(run_dir, "phase_summary")
    run, git = manifest.get("run", {}), manifest.get("git", {})
    threads = manifest.get("threads", {})
    gpus = manifest.get("gpu", {}).get("gpus") or []
    lines = [f"# Run summary: {run_dir.name}", ""]
    dirty = " (dirty)" if git.get("dirty") else ""
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
    if peak.get("flops_per_s"):
        lines.append(f"- matmul peak ({peak.get('dtype')}, n={peak.get('size')}): {_num(peak['flops_per_s'], 1, 1e-9)} GFLOP/s")
    else:
        lines.append(f"- matmul peak: not measured ({peak.get('note', 'no peak.json')})")
    if cells is not None:
        failed = cells[cells.status != "ok"]
        lines.append(f"- cells: {int((cells.status == 'ok').sum())} ok, {len(failed)} failed")
        for _, row in failed.iterrows():
            lines.append(f"  - FAILED {row.generator} x {row.workload}: {row.error.splitlines()[0] if row.error else ''}")
    lines.append("")
    if summary is None or summary.empty:
        lines.append("No completed cells: nothing to summarise.")
        return "\n".join(lines) + "\n"

    for workload, group in summary.groupby("workload", sort=False):
        first = group.iloc[0]
        lines += [f"## Workload `{workload}` ({first.scenario}, pre-buffer {first.prebuffer_s:g} s, "
                  f"{int(first.blocks / first.repeats)} blocks x {int(first.repeats)} repeat(s))", ""]
        header = ["regime", "TTFA ms", "p50 ms", "p90 ms", "p99 ms", "RTF", "x real time", "underruns",
                  "min pre-buffer s", "verdict", "GFLOP/block", "meas/analytic", "GFLOP/s", "% peak",
                  "peak mem MB", "KV MB kept / in-block", "params M"]
        rows = []
        for _, r in group.iterrows():
            rows.append([
                r.generator, _num(r.ttfa_ms), _num(r.p50_ms, 2),
                _num(r.p90_ms, 2) + ("" if r.p90_valid else "*"), _num(r.p99_ms, 2) + ("" if r.p99_valid else "*"),
                _num(r.rtf, 3), _num(r.x_realtime, 2), str(int(r.underruns)), _num(r.min_prebuffer_s, 2), r.verdict,
                _num(r.steady_analytic_flops, 2, 1e-9), _num(r.steady_flop_ratio, 3),
                _num(r.achieved_flops_per_s, 1, 1e-9), _num(r.peak_fraction, 1, 100.0),
                _num(r.peak_mem_bytes, 0, 2**-20), _num(r.kv_cache_bytes, 2, 2**-20) + " / " + _num(r.get("transient_kv_bytes", 0), 2, 2**-20),
                _num(r.params, 2, 1e-6),
            ])
        lines += _table(header, rows)
        lines += ["", "`*` percentile not valid: fewer samples than MLPerf's minimum (64 for p90, 662 for p99). "
                  "Latencies are per block (one `step` call); RTF = compute s / audio s; GFLOP/block is the "
                  "analytic count of a steady block; meas/analytic is FlopCounterMode's count over the analytic one; "
                  f"peak memory: {first.peak_mem_kind}; KV kept = caches held between blocks, in-block = caches "
                  "rebuilt inside every block (enc-dec context, LMM decoders).", ""]
        lines += _phase_lines(phases, workload)
        changes = group[group.prompt_changes > 0]
        if not changes.empty:
            lines += ["Control latency (prompt change until audio under the new prompt plays):", ""]
            lines += _table(["regime", "changes", "best case ms (mean)", "worst case ms (max)"], [
                [r.generator, str(int(r.prompt_changes)), _num(r.control_latency_best_ms), _num(r.control_latency_worst_ms)]
                for _, r in changes.iterrows()
            ])
            lines.append("")
        if overhead is not None and not overhead[overhead.workload == workload].empty:
            o = overhead[overhead.workload == workload].iloc[0]
            share = _num(o.overhead_fraction, 3, 100.0)
            lines += [f"Null generator (`{o.null_generator}`) block latency: {_num(o.null_median_ms, 3)} ms median, "
                      f"{share}% of `{o.reference}`'s median block latency ({_num(o.reference_median_ms, 2)} ms).", ""]
        if pairs is not None:
            part = pairs[pairs.workload == workload]
            if not part.empty:
                lines += ["Measured steady block-latency ratio / analytic FLOP ratio (1.0 = time scales with FLOPs):", ""]
                lines += _table(["a", "b", "latency a/b", "FLOPs a/b", "latency ratio / FLOP ratio"], [
                    [r.a, r.b, _num(r.latency_ratio, 3), _num(r.analytic_flop_ratio, 3), _num(r.latency_over_flop_ratio, 3)]
                    for _, r in part.iterrows()
                ])
                lines.append("")
    drift_md = run_dir / "drift" / "drift.md"
    if drift_md.exists():
        lines += [drift_md.read_text().rstrip(), ""]
    return "\n".join(lines) + "\n"


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
                cell.append(f"{_num(r.median_ms.iloc[0], 2)} ({r.calls.iloc[0]:g}x)" if len(r) else "-")
            cells.append(" / ".join(cell))
        rows.append([gen] + cells)
    return ["Median ms per block in each phase, first block / steady blocks (calls per block):", ""] + \
        _table(["regime"] + present, rows) + [""]


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
