"""The drift section of the run summary (``drift/drift.md``), rendered from the drift stage's saved
files only: ``drift/summary.parquet`` (one row per regime and metric) and ``drift/config.json``
(the drift workload, the scoring config and the status of every regime).

One row per regime: for a few compact metrics, ``first window -> last window (OLS slope per minute
[t-based 95% CI])``, the last window's silence and clipping ratios, and the metrics that degraded
within the horizon. Numbers have 3 significant digits (:func:`reports.formatting.format_significant`).

When the drift stage computed music descriptors (``drift/stream_stability.parquet`` exists), a second
table follows: per regime, each stream's modal key, key agreement, key changes with their times and
tempo CV, and the pitched fraction and key strength from first to last window.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from bench.core.run_folder import read_run_json, read_run_table
from bench.core.storage import DRIFT_DIR
from metrics.drift.summary import BandRule
from reports.formatting import (
    NOT_MEASURED, format_fixed, format_significant, is_finite, markdown_table, markdown_text,
)

COMPACT_METRICS = (  # (metric, column title): first -> last, slope per minute [95% CI]
    ("kad_{emb}", "KAD {emb}"), ("self_kad_{emb}", "self-KAD {emb}"), ("clap_score", "CLAP"),
    ("loudness_lufs", "loudness LUFS"), ("spectral_centroid_hz", "centroid Hz"), ("spectral_flatness", "flatness"),
)
DEFAULT_EMBEDDER = "logmel"
MUSIC_METRICS = (("pitched_fraction", "pitched fraction"), ("key_strength", "key strength"))


def _cell(r: Mapping[str, Any]) -> str:
    """``first -> last (slope/min [low, high])`` of one summary row."""
    first = format_significant(r["first"]) if is_finite(r["first"]) else "-"
    return (f"{first} &rarr; {format_significant(r['last'])} ({format_significant(r['slope_per_min'])}/min "
            f"[{format_significant(r['slope_ci_low'])}, {format_significant(r['slope_ci_high'])}])")


def _header_lines(drift: Mapping[str, Any], scoring: Mapping[str, Any],
                  execution: Mapping[str, Any] | None = None) -> list[str]:
    """Title, the drift workload (description and seeds), the scoring (embedder, reference, rule),
    and the worker processes when the streams ran in them."""
    seeds = drift["seeds"]  # seed of stream i, for i in 0..n_streams-1
    lines = [
        "## Drift over stream time",
        "",
        f"{drift['description']}; seeds {seeds[0]}..{seeds[-1]}. "
        "Cells: first window &rarr; last window (OLS slope per minute [t-based 95% CI]).",
    ]
    if scoring:
        emb = scoring.get("embedder", "")
        rule = {k: v for k, v in scoring.get("band_rule", {}).items() if k != "thresholds"}
        kind = ("pretrained" if scoring.get("embedder_pretrained")
                else "weight-free log-mel features, NOT a pretrained-model metric")
        lines += [
            f"Quality embedder: `{emb}` ({kind}). "
            f"Reference: {scoring.get('reference', '')}. CLAP: {scoring.get('clap_identity', 'not measured')}.",
            f"Degraded: metrics whose time to degrade is within the horizon ({BandRule(**rule).describe()}; "
            "thresholds in docs/drift.md). Every metric, with CIs: `drift/summary.csv`; per window: "
            "`drift/windows.csv`.",
        ]
    if execution and int(execution.get("workers", 1)) > 1:
        lines.append(f"Streams generated and scored in {int(execution['workers'])} worker processes of "
                     f"{int(execution['threads_per_worker'])} torch thread(s) each ({execution.get('reason', '')}; "
                     "docs/drift.md, \"Worker processes\").")
    return lines + [""]


def _failure_lines(statuses: Sequence[Mapping[str, Any]]) -> list[str]:
    """One line per regime whose drift stage failed."""
    return [f"- **{markdown_text(s['generator'])}: drift stage failed** ({markdown_text(s['error'])}); "
            "traceback in drift/config.json."
            for s in statuses if s["status"] != "ok"]


def _regime_cells(rows: Mapping[str, Mapping[str, Any]], metrics: Sequence[str]) -> list[str]:
    """The cells of one regime's row after its name (``rows``: its summary rows by metric)."""
    cells = []
    for metric in metrics:
        if metric in rows:
            cells.append(_cell(rows[metric]))
        else:
            cells.append("not measured (no CLAP checkpoint)" if metric == "clap_score" else NOT_MEASURED)
    sil, clip = rows.get("silence_ratio"), rows.get("clipping_ratio")
    last = [format_significant(r["last"]) if r else NOT_MEASURED for r in (sil, clip)]
    cells.append(f"{last[0]} / {last[1]}")
    degraded = [f"{m} at {format_fixed(r['time_to_degrade_s'], 0, thousands=False)} s ({r['degrade_direction']})"
                for m, r in rows.items() if r.get("drifted")]
    cells.append("; ".join(degraded) if degraded else "none")
    return cells


def _table_lines(summary: pd.DataFrame, emb: str) -> list[str]:
    """The Markdown table: one row per regime (in the summary's order)."""
    columns = [(m.format(emb=emb), t.format(emb=emb)) for m, t in COMPACT_METRICS]
    header = ["regime"] + [t for _, t in columns] + ["silence / clipping (last)", "degraded"]
    rows = []
    for generator, frame in summary.groupby("generator", sort=False):
        by_metric = {r["metric"]: r for r in frame.to_dict("records")}
        rows.append([markdown_text(generator)] + _regime_cells(by_metric, [m for m, _ in columns]))
    return markdown_table(header, rows)


def _changes(row: Mapping[str, Any]) -> str:
    """``1 (at 25 s)`` / ``0``: a stream's key changes and their times."""
    times = row.get("key_change_times_s")
    times = times if isinstance(times, str) else ""  # "" (no change) may come back as NaN
    count = int(row["key_changes"])
    return f"{count} (at {times.replace('; ', ', ')} s)" if count and times else str(count)


def _music_lines(stability: pd.DataFrame, summary: pd.DataFrame) -> list[str]:
    """The music table: one row per regime, per-stream values separated by ``;`` in stream order."""
    header = ["regime", "modal key (per stream)", "key agreement", "key changes", "tempo CV"]
    header += [title for _, title in MUSIC_METRICS]
    rows = []
    for generator, frame in stability.groupby("generator", sort=False):
        frame = frame.sort_values("stream")
        by_metric = {r["metric"]: r for r in summary[summary["generator"] == generator].to_dict("records")}
        cells = [markdown_text(generator), "; ".join(str(k) for k in frame["modal_key"]),
                 "; ".join(format_significant(v) for v in frame["key_agreement_fraction"]),
                 "; ".join(_changes(r) for r in frame.to_dict("records")),
                 "; ".join(format_significant(v) for v in frame["tempo_cv"])]
        cells += [_cell(by_metric[m]) if m in by_metric else NOT_MEASURED for m, _ in MUSIC_METRICS]
        rows.append(cells)
    intro = ("Music over stream time (key per window: Krumhansl-Schmuckler on CQT chroma; a key change is dated "
             "between the two windows' centres). Per stream: `drift/stream_stability.csv`; per window: "
             "`drift/stream_windows.csv`.")
    return ["", intro, ""] + markdown_table(header, rows)


def render_drift_summary(run_dir: Path) -> str:
    """The Markdown drift section of run ``run_dir`` from its saved drift files; "" when the run has
    no drift stage (no ``drift/config.json``, which the stage writes after its tables)."""
    folder = Path(run_dir) / DRIFT_DIR
    config = read_run_json(folder / "config.json")
    if config is None:
        return ""
    scoring = config.get("scoring") or {}
    lines = (_header_lines(config["drift"], scoring, config.get("execution"))
             + _failure_lines(config.get("statuses") or []))
    summary = read_run_table(folder, "summary")
    if summary is None or summary.empty:
        lines.append("No drift results.")
        return "\n".join(lines) + "\n"
    lines += _table_lines(summary, scoring.get("embedder", DEFAULT_EMBEDDER) if scoring else DEFAULT_EMBEDDER)
    stability = read_run_table(folder, "stream_stability")
    if stability is not None and not stability.empty:
        lines += _music_lines(stability, summary)
    return "\n".join(lines) + "\n"


__all__ = ["render_drift_summary", "COMPACT_METRICS"]
