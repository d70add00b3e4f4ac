"""The HTML report: one self-contained folder that opens from the file system (no server, no script,
no network): ``index.html`` beside ``tables/``, ``figures/`` and ``audio/``, all linked relatively.

Sections: a loud warning when compared runs differ in hardware or software; the tables; the
figures (or, for a figure the run lacks, a visible note saying what to run); audio players for each
regime's excerpts; the A-versus-B comparison when asked for; the runs (manifest in readable form,
cell statuses and failures, the full manifest JSON folded away).
"""

from __future__ import annotations

import json
import shlex
import string
from html import escape
from pathlib import Path
from typing import Any, Sequence

from reports.audio_clips import Clip
from reports.figures import FigureResult
from bench.core.run_folder import RunData, RunSet, manifest_resume_command, recorded_argv
from reports.formatting import format_fixed, format_value, node_peaks_text
from reports.table_model import Table

PAGE = string.Template("""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>$title</title>
<style>
$css
</style>
</head>
<body>
<header>
<h1>$title</h1>
<p class="sub">$subtitle</p>
</header>
$warning
<nav>$nav</nav>
<section id="tables">
<h2>Tables</h2>
$tables
</section>
<section id="figures">
<h2>Figures</h2>
$figures
</section>
<section id="audio">
<h2>Listen</h2>
$audio
</section>
$comparison
<section id="runs">
<h2>Runs (manifest)</h2>
$runs
</section>
<footer>$footer</footer>
</body>
</html>
""")

CSS = """
body { font-family: "DejaVu Sans", Helvetica, Arial, sans-serif; margin: 1.5em auto; max-width: 80em;
       padding: 0 1em; color: #222; line-height: 1.4; }
h1 { margin-bottom: 0.1em; } .sub { color: #555; margin-top: 0; }
nav a { margin-right: 1em; }
section { margin-top: 2em; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }
th, td { border-bottom: 1px solid #ddd; padding: 0.25em 0.6em; text-align: right; vertical-align: top; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
table.kv td, table.kv th { text-align: left; } table.kv th { width: 14em; }
td.best { font-weight: bold; background: #e8f4e8; }
th.text, td.text { text-align: left; }
.note, .missing { background: #fff8e1; border-left: 4px solid #f0b400; padding: 0.4em 0.8em; margin: 0.6em 0; }
.warning { background: #fde2e1; border: 3px solid #c00000; color: #700; font-weight: bold; padding: 0.8em 1em;
           margin: 1em 0; font-size: 1.05em; }
.failed { color: #a00000; font-weight: bold; }
.legend, .notes { font-size: 0.8em; color: #444; }
figure { margin: 1em 0 2em 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: 0.85em; color: #333; max-width: 60em; }
pre { background: #f7f7f7; padding: 0.8em; overflow-x: auto; font-size: 0.75em; }
audio { width: 18em; vertical-align: middle; }
footer { margin-top: 3em; font-size: 0.8em; color: #666; }
"""


def _kv(rows: Sequence[tuple[str, str]]) -> str:
    body = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in rows)
    return f'<table class="kv">{body}</table>'


def _dig(d: Any, *keys: str, default: Any = None) -> Any:
    for key in keys:
        if not isinstance(d, dict) or key not in d:
            return default
        d = d[key]
    return d


def manifest_rows(run: RunData) -> list[tuple[str, str]]:
    """The manifest's fields in readable form."""
    m = run.manifest
    git = m.get("git") or {}
    r = m.get("run") or {}
    threads = m.get("threads") or {}
    gpu = m.get("gpu") or {}
    rows = [
        ("run", run.label),
        ("created (UTC)", str(m.get("created_utc", "?"))),
        ("code", f"{git.get('commit') or 'unknown'}" + (" (dirty: uncommitted changes)" if git.get("dirty") else "")
         + (f"; {git.get('untracked')} untracked file(s)" if git.get("untracked") else "")),
        ("Python", f"{_dig(m, 'python', 'version', default='?')} ({_dig(m, 'python', 'implementation', default='?')})"),
        ("torch", f"{_dig(m, 'torch', 'version', default='?')}; CUDA {_dig(m, 'torch', 'cuda') or 'none'}; "
                  f"cuDNN {_dig(m, 'torch', 'cudnn') or 'none'}"),
        ("CPU", str(_dig(m, "cpu", "model", default="?"))),
        ("GPU", (", ".join(gpu.get("gpus") or []) or "none") + (f"; driver {gpu.get('driver')}" if gpu.get("driver") else "")
         + (f" ({gpu.get('note')})" if gpu.get("note") else "")),
        ("threads", f"torch {threads.get('torch_threads', '?')} (inter-op {threads.get('torch_interop_threads', '?')}); "
                    f"{threads.get('affinity_cpus', '?')} usable of {threads.get('os_cpu_count', '?')} CPUs"),
        ("platform", str(_dig(m, "platform", "system", default="?"))),
        ("preset", f"{r.get('preset', '?')} (fingerprint {r.get('preset_fingerprint', '?')})"
                   + (f"; overrides {r.get('preset_overrides')}" if r.get("preset_overrides") else "")),
        ("device / dtype", f"{r.get('device', '?')} / {r.get('dtype', '?')}"),
    ]
    for name, w in sorted((r.get("workloads") or {}).items()):
        rows.append((f"workload {name}", (
            f"context {format_value(w.get('context_s'))} s, block {format_value(w.get('block_s'))} s, horizon "
            f"{format_value(w.get('horizon_s'))} s, {w.get('steps', '?')} steps, cfg {w.get('cfg')}, "
            f"{w.get('scenario', '?')}, pre-buffer {format_value(w.get('prebuffer_s'))} s, repeats {w.get('repeats', '?')}, "
            f"seed {w.get('seed', '?')}; fingerprint {w.get('fingerprint', '?')}"
        )))
    node_peaks = list(run.cell_peaks.values())
    if run.peak.get("flops_per_s"):
        rows.append(("machine peak", f"{format_fixed(run.peak['flops_per_s'] / 1e9, 1, thousands=False)} GFLOP/s ({run.peak.get('dtype')}, "
                                     f"{run.peak.get('device')}, matmul n={run.peak.get('size')})"))
    elif node_peaks:
        rows.append(("machine peak", node_peaks_text(node_peaks, run.peak.get("dtype"))))
    else:
        rows.append(("machine peak", f"not measured ({run.peak.get('note', 'no peak.json')})"))
    packages = m.get("packages") or {}
    rows.append(("packages", ", ".join(f"{k} {v or 'not installed'}" for k, v in sorted(packages.items()))))
    if r.get("argv"):
        rows.append(("command", shlex.join(["python", "run_all.py", *recorded_argv(m)])))
    rows.append(("schema version", str(m.get("schema_version", "?"))))
    return rows


def _cells_html(run: RunData) -> str:
    if run.cells.empty:
        return '<p class="missing">No cells in this run folder.</p>'
    rows = []
    for _, c in run.cells.sort_values(["workload", "generator"]).iterrows():
        status = escape(c.status) if c.status == "ok" else f'<span class="failed">{escape(c.status)}</span>'
        rows.append(f"<tr><td>{escape(c.generator)}</td><td>{escape(c.workload)}</td><td>{status}</td>"
                    f"<td>{escape(c.error)}</td></tr>")
    drift = ""
    statuses = run.drift_config.get("statuses") or []
    failed = [s for s in statuses if s.get("status") != "ok"]
    if failed:
        drift = "".join(f'<p class="failed">drift stage failed for {escape(str(s.get("generator")))}: '
                        f'{escape(str(s.get("error")))}</p>' for s in failed)
    planned = [(str(c.get("generator")), str(c.get("workload"))) for c in (run.manifest.get("run") or {}).get("cells") or []]
    present = set(zip(run.cells.generator.astype(str), run.cells.workload.astype(str)))
    missing = [f"{g} x {w}" for g, w in planned if (g, w) not in present]
    unfinished = bool(missing) or bool((run.cells.status != "ok").any())
    again = manifest_resume_command(run.manifest, run.root) if unfinished else None
    finish = (f'<p class="failed">Not run (the run stopped before them): {escape(", ".join(missing))}.</p>'
              if missing else "")
    finish += f'<p class="failed">To finish this run: <code>{escape(again)}</code></p>' if again else ""
    return ("<table><thead><tr><th>regime</th><th>workload</th><th>status</th><th>error</th></tr></thead><tbody>"
            + "".join(rows) + "</tbody></table>" + finish + drift)


def runs_html(runs: RunSet) -> str:
    """The runs section: each run's manifest in readable form, its cells and failures, the full manifest."""
    parts = []
    for run in runs:
        parts.append(f"<h3>{escape(run.label)}</h3>")
        parts.append(_kv(manifest_rows(run)))
        parts.append("<h4>Cells</h4>" + _cells_html(run))
        parts.append("<details><summary>manifest.json</summary><pre>"
                     + escape(json.dumps(run.manifest, indent=2, sort_keys=True)) + "</pre></details>")
    return "\n".join(parts)


def table_html(table: Table, folder: str = "tables") -> str:
    """One table with its legend, notes and links to its CSV, Markdown and LaTeX files."""
    head = f'<h3 id="tab-{escape(table.name)}">{escape(table.title)}</h3>'
    if table.empty:
        note = table.notes[0] if table.notes else "nothing to show"
        return head + f'<p class="missing">{escape(note)}</p>'
    links = " ".join(f'<a href="{folder}/{escape(table.name)}.{ext}">{ext.upper()}</a>' for ext in ("csv", "md", "tex"))
    notes = "".join(f"<li>{escape(n)}</li>" for n in table.notes)
    return (head + table.to_html() + f'<p class="legend">{escape(table.legend())} Download: {links}</p>'
            + f'<ul class="notes">{notes}</ul>')


def figures_html(figures: Sequence[FigureResult], folder: str = "figures") -> str:
    """Each figure with its caption and PDF link, or the note saying why it is missing."""
    parts = []
    for f in figures:
        if not f.rendered:
            parts.append(f'<div class="missing" id="fig-{escape(f.name)}"><b>{escape(f.title)}:</b> {escape(f.note)}</div>')
            continue
        parts.append(
            f'<figure id="fig-{escape(f.name)}"><img src="{folder}/{escape(f.name)}.png" alt="{escape(f.title)}">'
            f"<figcaption><b>{escape(f.title)}.</b> {escape(f.caption)} "
            f'<a href="{folder}/{escape(f.name)}.pdf">PDF</a></figcaption></figure>'
        )
    return "\n".join(parts)


def audio_html(clips: Sequence[Clip], root: Path, runs: RunSet) -> str:
    """Audio players for every excerpt, per run."""
    if not clips:
        return '<p class="missing">No saved stream audio in these runs (nothing to listen to).</p>'
    parts = ['<p class="legend">Excerpts of each regime\'s longest saved stream (start, middle, end) and, where '
             "the drift stage detected a degradation, around its onset; and the continuation stage's examples (a held-out "
             "clip's real context, then each system's continuation of it). 16-bit WAV copies; the run folder keeps "
             "the full float32 streams.</p>"]
    for run in runs:
        mine = [c for c in clips if c.run_label == run.label]
        if not mine:
            continue
        if runs.multi:
            parts.append(f"<h3>{escape(run.label)}</h3>")
        rows = []
        for c in mine:
            rel = c.path.relative_to(root).as_posix()
            start, end = (format_fixed(t, 2, thousands=False) for t in (c.start_s, c.start_s + c.duration_s))
            what = f"{start}-{end} s of {c.source}"
            if c.detail:
                what += f" ({c.detail})"
            rows.append(
                f"<tr><td>{escape(c.generator)}</td><td>{escape(c.position)}</td><td>{escape(what)}</td>"
                f'<td><audio controls preload="auto" src="{escape(rel)}" data-duration="{format_fixed(c.duration_s, 6, thousands=False)}"></audio></td></tr>'
            )
        parts.append("<table><thead><tr><th>regime</th><th>where</th><th>excerpt</th><th>play</th></tr></thead><tbody>"
                     + "".join(rows) + "</tbody></table>")
    return "\n".join(parts)


def comparison_html(comparison: Any) -> str:
    """The A-versus-B section (manifest differences and deltas); "" without a comparison."""
    if comparison is None:
        return ""
    parts = ['<section id="comparison">', f"<h2>Comparison: A = {escape(comparison.a.label)}, "
             f"B = {escape(comparison.b.label)}</h2>"]
    if comparison.differences:
        loud = ' class="failed"'
        rows = "".join(
            f"<tr><td>{escape(d.field)}</td><td>{escape(_show(d.a))}</td><td>{escape(_show(d.b))}</td>"
            f"<td{loud if d.loud else ''}>{escape(d.category)}</td></tr>" for d in comparison.differences
        )
        parts.append("<table><thead><tr><th>manifest field</th><th>A</th><th>B</th><th>kind</th></tr></thead>"
                     f"<tbody>{rows}</tbody></table>")
    else:
        parts.append("<p>The manifests agree on hardware, software, code and run settings.</p>")
    parts.append(table_html(comparison.deltas))
    parts.append("</section>")
    return "\n".join(parts)


def _show(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "none"
    return "missing" if value is None else str(value)


def render_html(runs: RunSet, tables: dict[str, Table], figures: Sequence[FigureResult], clips: Sequence[Clip],
                root: Path, comparison: Any = None) -> str:
    """The text of ``index.html`` (paths relative to ``root``, the report folder)."""
    title = "live-music-bench report"
    subtitle = ", ".join(run.label for run in runs)
    warning = ""
    if comparison is not None and comparison.warning_text():
        warning = f'<div class="warning" id="compare-warning">{escape(comparison.warning_text())}</div>'
    sections = [("tables", "Tables"), ("figures", "Figures"), ("audio", "Listen")]
    if comparison is not None:
        sections.append(("comparison", "Comparison"))
    sections.append(("runs", "Runs (manifest)"))
    nav = " ".join(f'<a href="#{a}">{t}</a>' for a, t in sections)
    return PAGE.substitute(
        title=escape(title), subtitle=escape(subtitle), css=CSS.strip(), warning=warning, nav=nav,
        runs=runs_html(runs), tables="\n".join(table_html(t) for t in tables.values()),
        figures=figures_html(figures), audio=audio_html(clips, root, runs), comparison=comparison_html(comparison),
        footer=("Built by <code>python -m reports</code> from the saved run folders only (no model was run). "
                "Tables are also in <code>tables/</code> as CSV, Markdown and LaTeX; figures in <code>figures/</code> "
                "as PDF (embedded TrueType fonts) and PNG."),
    )


__all__ = ["render_html", "manifest_rows", "table_html", "figures_html", "audio_html", "PAGE", "CSS"]
