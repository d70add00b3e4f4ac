"""Build the whole report from saved run folders: tables, figures, audio excerpts, Markdown, HTML.

    from reports.build import build_report
    index = build_report(["runs/2026-11-24T0830Z_ab12cd34"])               # -> <run>/report/index.html
    index = build_report([a, b], "reports/a-vs-b", compare=(a, b))          # A versus B

The report folder::

    index.html         opens from the file system (no server)
    report.md          the same content in Markdown (tables, figure links or notes, excerpts)
    tables/            <table>.csv|md|tex for latency, phases, compute, quality, drift (+ compare), clips.csv
    figures/           <figure>.pdf|png
    audio/             16-bit WAV excerpts

Only the run folders are read; no model is run. Rebuilding from the same (or a copied) run folder
gives byte-identical tables. A folder that is not empty and was not written by this builder is
refused (so a typo in ``--out`` cannot delete someone's files); a previous report is replaced.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Iterable, Sequence

from bench.core.run_folder import RunSet, load_runs
from bench.core.storage import atomic_write_text
from reports.audio_clips import DEFAULT_CLIP_S, clips_table, cut_clips
from reports.compare import Comparison, compare_runs
from reports.errors import ReportError
from reports.figures import FigureResult, render_figures
from reports.formatting import CSV_FLOAT_FORMAT, format_fixed
from reports.html import render_html
from reports.table_model import Table
from reports.tables import build_tables, write_tables

log = logging.getLogger(__name__)

MARKER = ".live-music-bench-report"
REPORT_PARTS = ("tables", "figures", "audio", "index.html", "report.md")


def default_out_dir(run_dirs: Sequence[str | Path]) -> Path:
    """``<run>/report`` for one run; several runs need an explicit folder."""
    if len(run_dirs) != 1:
        raise ReportError("a report over several runs needs an output folder: pass --out DIR (out_dir=...)")
    return Path(run_dirs[0]) / "report"


def prepare_out_dir(out: Path) -> None:
    """Create ``out``, or clear a previous report in it; refuse a foreign non-empty folder."""
    if out.exists():
        if not out.is_dir():
            raise ReportError(f"{out} exists and is not a folder; choose another --out")
        if any(out.iterdir()) and not (out / MARKER).exists():
            raise ReportError(f"{out} is not empty and holds no previous report; choose an empty or new --out folder")
        for part in REPORT_PARTS:
            target = out / part
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / MARKER, "written by reports.build; safe to delete with the report\n")


def render_markdown(runs: RunSet, tables: dict[str, Table], figures: Sequence[FigureResult], clips_rows: list[dict],
                    comparison: Comparison | None) -> str:
    """The whole report as Markdown (``report.md``): failures, tables, figures or their notes, excerpts."""
    lines = ["# live-music-bench report", "", "Runs: " + ", ".join(f"`{r.label}`" for r in runs), ""]
    if comparison is not None and comparison.warning_text():
        lines += [f"> **{comparison.warning_text()}**", ""]
    for run in runs:
        failed = run.cells[run.cells.status != "ok"]
        for _, c in failed.iterrows():
            lines.append(f"- **FAILED** `{c.generator}` x `{c.workload}` in `{run.label}`: {c.error}")
    lines += ["", "## Tables", ""]
    for table in tables.values():
        lines.append(table.to_markdown())
    lines += ["## Figures", ""]
    for fig in figures:
        if fig.rendered:
            lines += [f"![{fig.title}](figures/{fig.name}.png)", "", f"*{fig.title}.* {fig.caption} "
                      f"([PDF](figures/{fig.name}.pdf))", ""]
        else:
            lines += [f"> **{fig.title}:** {fig.note}", ""]
    lines += ["## Listen", ""]
    if not clips_rows:
        lines.append("No saved stream audio in these runs.")
    for c in clips_rows:
        detail = f" ({c['detail']})" if c["detail"] else ""
        start, end = (format_fixed(t, 2, thousands=False) for t in (c["start_s"], c["start_s"] + c["duration_s"]))
        lines.append(f"- `{c['generator']}` {c['position']}: [{c['file']}]({c['file']}), "
                     f"{start}-{end} s of `{c['source']}`{detail}")
    lines.append("")
    if comparison is not None:
        lines.append(comparison.to_markdown())
    return "\n".join(lines) + "\n"


def build_report(
    run_dirs: Iterable[str | Path], out_dir: str | Path | None = None, compare: tuple[str | Path, str | Path] | None = None,
    clip_s: float = DEFAULT_CLIP_S,
) -> Path:
    """Build the report of ``run_dirs`` into ``out_dir``; returns the path of ``index.html``.

    ``compare=(A, B)`` adds the A-versus-B comparison (A and B are added to the runs if missing).
    """
    dirs = [Path(d) for d in run_dirs]
    if compare is not None:
        for d in compare:
            if Path(d) not in dirs:
                dirs.append(Path(d))
    if not dirs:
        raise ReportError("no run folder given; pass at least one (for example runs/<time>_<sha>)")
    out = Path(out_dir) if out_dir is not None else default_out_dir(dirs)
    runs = load_runs(dirs)
    prepare_out_dir(out)
    tables = build_tables(runs)
    comparison = None
    if compare is not None:
        a = runs.runs[dirs.index(Path(compare[0]))]
        b = runs.runs[dirs.index(Path(compare[1]))]
        comparison = compare_runs(a, b)
        tables_to_write = {**tables, "compare": comparison.deltas}
    else:
        tables_to_write = tables
    write_tables(tables_to_write, out / "tables")
    figures = render_figures(runs, out / "figures")
    clips = cut_clips(runs, out / "audio", clip_s)
    clips_df = clips_table(clips, out)
    atomic_write_text(out / "tables" / "clips.csv", clips_df.to_csv(index=False, float_format=CSV_FLOAT_FORMAT, lineterminator="\n"))
    atomic_write_text(out / "report.md", render_markdown(runs, tables, figures, clips_df.to_dict("records"), comparison))
    index = out / "index.html"
    atomic_write_text(index, render_html(runs, tables, figures, clips, out, comparison))
    skipped = [f.name for f in figures if not f.rendered]
    log.info("report in %s (%d tables, %d figures, %d skipped: %s, %d audio excerpts)", out, len(tables_to_write),
             len(figures) - len(skipped), len(skipped), ", ".join(skipped) or "none", len(clips))
    return index


__all__ = ["build_report", "default_out_dir", "prepare_out_dir", "render_markdown", "MARKER"]
