"""Paper-style figures from saved runs (PDF with embedded TrueType fonts + PNG).

Every figure is built with ``matplotlib.figure.Figure`` (no pyplot, no global figure registry, no
backend switch) inside :func:`reports.style.paper_style`, so nothing global changes. A figure whose
data the run lacks is not drawn; it is returned with a note that says why and what to run
(``not in this run: run --workload context-sweep``), and the HTML and Markdown show that note.

Figures (``FIGURES``, in report order):

- ``latency_timeline``: per-block latency over stream time, one line per regime, the real-time
  deadline (the block's audio length) dashed, underrun blocks of the playback simulation marked x;
- ``latency_cdf``: empirical CDF of block latency per regime, deadline marked;
- ``rtf_bars``: median per-block RTF with its 95 % CI, the real-time line at 1;
- ``context_scaling``: steady-block latency and FLOPs versus context length (``context-sweep``),
  with the analytic FLOPs and the latency predicted from them overlaid;
- ``flops_by_phase``: measured FLOPs per generated second of audio, stacked by phase, with the
  analytic total marked;
- ``peak_fraction``: achieved fraction of the machine's measured matmul peak;
- ``drift_curves``: drift metrics over stream time with their CI bands (or the across-stream range
  when a metric has no CI), detected onsets marked;
- ``quality_vs_rtf``: a quality metric against the real-time factor, one point per regime.
"""

from __future__ import annotations

import logging
import math
import re
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from bench.contract import PHASE_ORDER
from reports.style import (
    new_figure, paper_style, phase_colour, regime_colour, regime_sort_key, save_figure, sort_regimes,
)
from reports.tables import (
    NULL_GENERATORS, RunData, RunSet, drift_workload_name, latency_table, median_ci, metric_direction, metric_label,
    quality_long,
)

log = logging.getLogger(__name__)

SWEEP = re.compile(r"^context-sweep-c(?P<context>[0-9.]+)s$")
RUN_STYLES = ("-", "--", ":", "-.")
MAX_PANELS = 4
DRIFT_PANEL_METRICS = ("kad_", "self_kad_", "fad_", "clap_score", "loudness_lufs", "spectral_centroid_hz",
                       "spectral_flatness", "silence_ratio")


@dataclass
class FigureResult:
    """A rendered figure (``files``) or a skipped one (``note`` says why)."""

    name: str
    title: str
    caption: str = ""
    files: list[Path] = field(default_factory=list)
    note: str = ""

    @property
    def rendered(self) -> bool:
        return bool(self.files)


class Missing(Exception):
    """Raised by a figure function whose data the run lacks; the message is the visible note."""


# ------------------------------------------------------------------------------------------------
# Helpers


def _is_sweep(workload: str) -> bool:
    return bool(SWEEP.match(workload))


def main_workloads(runs: RunSet) -> list[str]:
    """Workloads with systems records, context-sweep points excluded, in sorted order."""
    names: set[str] = set()
    for run in runs:
        if not run.blocks.empty:
            names.update(w for w in run.blocks.workload.unique() if not _is_sweep(str(w)))
    return sorted(names)


def _series_label(run: RunData, runs: RunSet, generator: str) -> str:
    return f"{generator} ({run.label})" if runs.multi else generator


def _run_style(runs: RunSet, run: RunData) -> str:
    return RUN_STYLES[runs.runs.index(run) % len(RUN_STYLES)]


def _panels(fig, n: int):  # noqa: ANN001, ANN202
    axes = fig.subplots(1, n, squeeze=False)[0]
    return list(axes)


def _legend(ax, **kw) -> None:  # noqa: ANN001
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(handles, labels, **kw)


# ------------------------------------------------------------------------------------------------
# Systems figures


def latency_timeline(runs: RunSet):  # noqa: ANN201
    from metrics.systems import playback_table

    workloads = main_workloads(runs)[:MAX_PANELS]
    if not workloads:
        raise Missing("not in this run: no completed cell with block records")
    fig = new_figure(columns=2, aspect=0.32 if len(workloads) > 1 else 0.36)
    axes = _panels(fig, len(workloads))
    for ax, work in zip(axes, workloads):
        deadline_ms = None
        for run in runs:
            blocks = run.blocks[run.blocks.workload == work]
            if blocks.empty:
                continue
            streams = run.streams[run.streams.workload == work]
            playback = playback_table(blocks, streams)
            for gen in sort_regimes(blocks.generator.unique()):
                b = blocks[(blocks.generator == gen) & (blocks.repeat == blocks[blocks.generator == gen].repeat.min())]
                b = b.sort_values("block_index")
                t = b.audio_start_s.to_numpy()
                lat = b.latency_ms.to_numpy()
                colour = regime_colour(gen)
                ax.plot(t, lat, _run_style(runs, run), color=colour, marker="o", markersize=2.0,
                        label=_series_label(run, runs, gen))
                pb = playback[(playback.generator == gen) & (playback.repeat == b.repeat.iloc[0])]
                under = b.block_index.isin(pb[pb.stall_s > 0].block_index)
                if under.any():
                    ax.plot(t[under.to_numpy()], lat[under.to_numpy()], "x", color="#C00000", markersize=5,
                            markeredgewidth=1.2, label=None)
                deadline_ms = 1e3 * float(np.median(b.audio_s))
        if deadline_ms is not None:
            ax.axhline(deadline_ms, color="black", linestyle="--", linewidth=0.8, label="deadline (block audio)")
        ax.plot([], [], "x", color="#C00000", label="underrun")
        ax.set_title(f"workload {work}")
        ax.set_xlabel("stream time (s)")
        ax.set_ylabel("block latency (ms)")
        ax.set_ylim(bottom=0)
    _legend(axes[-1], loc="best")
    return fig, ("Per-block latency of the first timed stream. Dashed: the real-time deadline (a block must be "
                 "generated within its own audio length to keep up); x: blocks that underran in the playback "
                 "simulation at the workload's pre-buffer.")


def latency_cdf(runs: RunSet):  # noqa: ANN201
    workloads = main_workloads(runs)[:MAX_PANELS]
    if not workloads:
        raise Missing("not in this run: no completed cell with block records")
    fig = new_figure(columns=1 if len(workloads) == 1 else 2, aspect=0.7 if len(workloads) == 1 else 0.32)
    axes = _panels(fig, len(workloads))
    for ax, work in zip(axes, workloads):
        lo_hi = []
        deadline_ms = None
        for run in runs:
            blocks = run.blocks[run.blocks.workload == work]
            for gen in sort_regimes(blocks.generator.unique()):
                lat = np.sort(blocks[blocks.generator == gen].latency_ms.to_numpy())
                if lat.size == 0:
                    continue
                y = np.arange(1, lat.size + 1) / lat.size
                ax.step(np.concatenate([[lat[0]], lat]), np.concatenate([[0.0], y]), where="post",
                        linestyle=_run_style(runs, run), color=regime_colour(gen), label=_series_label(run, runs, gen))
                lo_hi += [lat[0], lat[-1]]
                deadline_ms = 1e3 * float(np.median(blocks[blocks.generator == gen].audio_s))
        if deadline_ms is not None:
            ax.axvline(deadline_ms, color="black", linestyle="--", linewidth=0.8, label="deadline")
        positive = [v for v in lo_hi if v > 0]
        if positive and max(positive) / min(positive) > 20:
            ax.set_xscale("log")
        ax.set_title(f"workload {work}")
        ax.set_xlabel("block latency (ms)")
        ax.set_ylabel("fraction of blocks")
        ax.set_ylim(0, 1.02)
    _legend(axes[-1], loc="lower right")
    return fig, "Empirical CDF of block latency (all timed blocks, all repeats). Dashed: the real-time deadline."


def rtf_bars(runs: RunSet):  # noqa: ANN201
    table = latency_table(runs).data
    if table.empty:
        raise Missing("not in this run: no completed cell")
    table = table[~table.workload.map(_is_sweep)]
    workloads = sorted(table.workload.unique())[:MAX_PANELS]
    fig = new_figure(columns=1 if len(workloads) == 1 else 2, aspect=0.7 if len(workloads) == 1 else 0.32)
    axes = _panels(fig, len(workloads))
    for ax, work in zip(axes, workloads):
        part = table[table.workload == work].reset_index(drop=True)
        labels = [f"{g}\n({r})" if "run" in part else g for g, r in zip(part.generator, part.get("run", part.generator))]
        x = np.arange(len(part))
        values = part.rtf.to_numpy(dtype=float)
        err_lo = np.where(np.isfinite(part.rtf_ci_low), values - part.rtf_ci_low, 0.0)
        err_hi = np.where(np.isfinite(part.rtf_ci_high), part.rtf_ci_high - values, 0.0)
        ax.bar(x, values, color=[regime_colour(g) for g in part.generator], width=0.7)
        ax.errorbar(x, values, yerr=np.vstack([err_lo, err_hi]), fmt="none", ecolor="black", elinewidth=0.8, capsize=2)
        ax.axhline(1.0, color="black", linestyle="--", linewidth=0.8, label="real time (RTF = 1)")
        finite = values[np.isfinite(values) & (values > 0)]
        if finite.size and finite.max() / finite.min() > 50:
            ax.set_yscale("log")
        ax.set_xticks(x)
        ax.set_xticklabels(labels, rotation=30, ha="right")
        ax.set_ylabel("RTF (compute s / audio s)")
        ax.set_title(f"workload {work}")
    _legend(axes[-1], loc="best")
    return fig, ("Real-time factor: median over blocks of block latency / block audio length, with its "
                 "distribution-free 95% CI. Below the dashed line a regime generates faster than real time.")


def _sweep_points(run: RunData) -> pd.DataFrame:
    rows = []
    for work in sorted(run.blocks.workload.unique()) if not run.blocks.empty else []:
        m = SWEEP.match(str(work))
        if not m:
            continue
        blocks = run.blocks[run.blocks.workload == work]
        for gen, b in blocks.groupby("generator", sort=False):
            steady = b[b.block_index > 0] if (b.block_index > 0).any() else b
            med, lo, hi = median_ci(steady.latency_ms.to_numpy())
            f = run.flops[(run.flops.generator == gen) & (run.flops.workload == work)] if not run.flops.empty else run.flops
            f = f[f.block_kind == "steady"] if not f.empty else f
            rows.append({
                "generator": gen, "context_s": float(m.group("context")), "latency_ms": med, "lo": lo, "hi": hi,
                "analytic_flops": float(np.median(steady.analytic_flops)),
                "measured_flops": float(f.measured_flops.sum()) if not f.empty else math.nan,
            })
    return pd.DataFrame(rows)


def context_scaling(runs: RunSet):  # noqa: ANN201
    points = [(run, _sweep_points(run)) for run in runs]
    points = [(run, p) for run, p in points if not p.empty and p.context_s.nunique() >= 2]
    if not points:
        raise Missing("not in this run: run --workload context-sweep (latency and FLOPs versus context length)")
    fig = new_figure(columns=2, aspect=0.34)
    ax_lat, ax_fl = _panels(fig, 2)
    for run, p in points:
        style = _run_style(runs, run)
        for gen in sort_regimes(p.generator.unique()):
            if gen in NULL_GENERATORS:
                continue
            g = p[p.generator == gen].sort_values("context_s")
            c, colour = g.context_s.to_numpy(), regime_colour(gen)
            lat = g.latency_ms.to_numpy()
            yerr = np.vstack([np.nan_to_num(lat - g.lo.to_numpy()), np.nan_to_num(g.hi.to_numpy() - lat)])
            ax_lat.errorbar(c, lat, yerr=yerr, fmt="o", color=colour, capsize=2, markersize=3,
                            label=_series_label(run, runs, gen))
            analytic = g.analytic_flops.to_numpy()
            if np.all(analytic > 0) and np.all(np.isfinite(lat)):
                scale = float(np.dot(analytic, lat) / np.dot(analytic, analytic))  # least squares through 0
                ax_lat.plot(c, scale * analytic, style, color=colour, linewidth=0.9, alpha=0.8)
                ax_fl.plot(c, analytic / 1e9, style, color=colour, linewidth=0.9, label=_series_label(run, runs, gen))
            measured = g.measured_flops.to_numpy()
            if np.any(np.isfinite(measured)):
                ax_fl.plot(c, measured / 1e9, "o", color=colour, markersize=3)
    ax_lat.plot([], [], "-", color="grey", label="analytic FLOPs x fitted s/FLOP")
    ax_fl.plot([], [], "o", color="grey", label="measured (FlopCounterMode)")
    ax_fl.plot([], [], "-", color="grey", label="analytic")
    contexts = sorted({float(c) for _, p in points for c in p.context_s})
    for ax in (ax_lat, ax_fl):
        ax.set_xlabel("context (s)")
        ax.set_xscale("log", base=2)
        ax.set_xticks(contexts)
        ax.set_xticklabels([f"{c:g}" for c in contexts])
        ax.minorticks_off()
    lat_all = np.concatenate([p.latency_ms.to_numpy(dtype=float) for _, p in points])
    lat_all = lat_all[np.isfinite(lat_all) & (lat_all > 0)]
    if lat_all.size and lat_all.max() / lat_all.min() > 20:
        ax_lat.set_yscale("log")
    ax_lat.set_ylabel("steady block latency, median (ms)")
    ax_fl.set_ylabel("GFLOP per steady block")
    _legend(ax_lat, loc="upper left")
    _legend(ax_fl, loc="upper left")
    return fig, ("Context sweep. Left: median steady-block latency (95% CI) per context; lines: the analytic FLOPs "
                 "scaled by one least-squares factor per regime (where latency would lie if it were proportional "
                 "to FLOPs). Right: FLOPs per steady block, measured (dots) and analytic (lines).")


def flops_by_phase(runs: RunSet):  # noqa: ANN201
    rows = []
    for run in runs:
        if run.flops.empty:
            continue
        f = run.flops[(run.flops.block_kind == "steady") & ~run.flops.workload.map(_is_sweep)]
        for (gen, work), part in f.groupby(["generator", "workload"], sort=False):
            audio_s = float(part.audio_s.iloc[0])
            for _, r in part.iterrows():
                rows.append({"label": _series_label(run, runs, gen), "generator": gen, "workload": work,
                             "phase": r.phase, "measured": r.measured_flops / audio_s,
                             "analytic": r.analytic_flops / audio_s})
    df = pd.DataFrame(rows)
    if df.empty or not (df.measured > 0).any():
        raise Missing("not measured in this run: the FLOPs pass was skipped (--no-flops) or counted nothing")
    work = sorted(df.workload.unique())[0]
    df = df[df.workload == work]
    labels = sorted(df.label.unique(), key=lambda s: (regime_sort_key(s.split(" (")[0]), s))
    labels = [lab for lab in labels if df[df.label == lab].measured.sum() > 0 or df[df.label == lab].analytic.sum() > 0]
    phases = [p for p in PHASE_ORDER if p in set(df.phase)] + sorted(set(df.phase) - set(PHASE_ORDER))
    fig = new_figure(columns=1, aspect=0.75)
    ax = fig.subplots()
    x = np.arange(len(labels))
    bottom = np.zeros(len(labels))
    for phase in phases:
        values = np.array([df[(df.label == lab) & (df.phase == phase)].measured.sum() for lab in labels]) / 1e9
        if not values.any():
            continue
        ax.bar(x, values, bottom=bottom, color=phase_colour(phase), width=0.65, label=phase)
        bottom += values
    analytic = np.array([df[df.label == lab].analytic.sum() for lab in labels]) / 1e9
    ax.plot(x, analytic, "_", color="black", markersize=14, markeredgewidth=1.5, label="analytic total")
    ax.set_xticks(x)
    ax.set_xticklabels(labels, rotation=30, ha="right")
    ax.set_ylabel("GFLOP per generated second")
    ax.set_title(f"steady block, workload {work}")
    _legend(ax, loc="best")
    return fig, ("FLOPs per second of generated audio of a steady block, measured by FlopCounterMode and stacked "
                 "by phase; black bars: the analytic total.")


def peak_fraction(runs: RunSet):  # noqa: ANN201
    from reports.tables import compute_table

    table = compute_table(runs).data
    if table.empty:
        raise Missing("not in this run: no completed cell")
    if not np.isfinite(table.peak_fraction.astype(float)).any():
        raise Missing("not measured in this run: no machine peak (the run used --no-peak) or no analytic FLOPs")
    table = table[np.isfinite(table.peak_fraction.astype(float)) & ~table.workload.map(_is_sweep)].reset_index(drop=True)
    fig = new_figure(columns=1, aspect=0.75)
    ax = fig.subplots()
    labels = [f"{g} / {w}" for g, w in zip(table.generator, table.workload)]
    if "run" in table:
        labels = [f"{lab}\n({r})" for lab, r in zip(labels, table.run)]
    x = np.arange(len(table))
    values = 100 * table.peak_fraction.to_numpy(dtype=float)
    lo = 100 * table.peak_fraction_ci_low.to_numpy(dtype=float)
    hi = 100 * table.peak_fraction_ci_high.to_numpy(dtype=float)
    ax.bar(x, values, color=[regime_colour(g) for g in table.generator], width=0.65)
    ax.errorbar(x, values, yerr=np.vstack([np.nan_to_num(values - lo), np.nan_to_num(hi - values)]), fmt="none",
                ecolor="black", elinewidth=0.8, capsize=2)
    ax.set_xticks(x)
    ax.set_xticklabels(labels, rotation=30, ha="right")
    ax.set_ylabel("achieved / peak FLOP/s (%)")
    return fig, ("Achieved FLOP/s (analytic FLOPs of a steady block over its latency, median with 95% CI) as a "
                 "percentage of the machine's measured square-matmul peak at the run's dtype.")


# ------------------------------------------------------------------------------------------------
# Drift and quality


def _drift_metrics(windows: pd.DataFrame) -> list[str]:
    out = []
    for prefix in DRIFT_PANEL_METRICS:
        for col in windows.columns:
            if col.endswith(("_ci_low", "_ci_high")) or col in out:
                continue
            if (col == prefix or (prefix.endswith("_") and col.startswith(prefix) and "clipped" not in col)) \
                    and np.isfinite(pd.to_numeric(windows[col], errors="coerce")).any():
                out.append(col)
    return out[:6]


def _stream_windows(run: RunData) -> pd.DataFrame | None:
    path = run.root / "drift" / "stream_windows.parquet"
    return pd.read_parquet(path) if path.exists() else None


def drift_curves(runs: RunSet):  # noqa: ANN201
    with_drift = [run for run in runs if run.drift_windows is not None and not run.drift_windows.empty]
    if not with_drift:
        raise Missing("not in this run: no drift stage tables (drift/windows.parquet)")
    metrics = _drift_metrics(pd.concat([r.drift_windows for r in with_drift], ignore_index=True))
    if not metrics:
        raise Missing("not in this run: the drift tables hold no finite metric values")
    ncols = min(3, len(metrics))
    nrows = math.ceil(len(metrics) / ncols)
    fig = new_figure(columns=2, aspect=0.3 * nrows)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, metric in zip(axes, metrics):
        for run in with_drift:
            w = run.drift_windows
            sw = _stream_windows(run)
            onsets = run.drift_summary[run.drift_summary.metric == metric] if run.drift_summary is not None else None
            for gen in sort_regimes(w.generator.unique()):
                g = w[w.generator == gen].sort_values("window_index")
                t, v = g.mid_s.to_numpy(dtype=float), pd.to_numeric(g[metric], errors="coerce").to_numpy(dtype=float)
                colour = regime_colour(gen)
                ax.plot(t, v, _run_style(runs, run), color=colour, label=_series_label(run, runs, gen))
                if f"{metric}_ci_low" in g:
                    lo, hi = g[f"{metric}_ci_low"].to_numpy(dtype=float), g[f"{metric}_ci_high"].to_numpy(dtype=float)
                elif sw is not None and metric in sw:
                    s = sw[sw.generator == gen].groupby("window_index")[metric]
                    lo = s.min().reindex(g.window_index).to_numpy(dtype=float)
                    hi = s.max().reindex(g.window_index).to_numpy(dtype=float)
                else:
                    lo = hi = None
                if lo is not None:
                    ax.fill_between(t, lo, hi, color=colour, alpha=0.2, linewidth=0)
                if onsets is not None:
                    o = onsets[(onsets.generator == gen) & onsets.drifted.astype(bool)]
                    if not o.empty:
                        ax.axvline(float(o.time_to_degrade_s.iloc[0]), color=colour, linestyle=":", linewidth=1.0)
        ax.set_title(textwrap.fill(metric_label(metric), 34), fontsize=6.5)
        ax.set_xlabel("stream time (s)")
    for ax in axes[len(metrics):]:
        ax.set_visible(False)
    _legend(axes[0], loc="best")
    return fig, ("Drift over stream time: window values (pooled over the drift streams) with bands: the bootstrap "
                 "95% CI where the metric has one, else the range over streams. Dotted: detected time to degrade. "
                 "Log-mel metrics come from the weight-free log-mel embedder, not a pretrained model.")


def quality_vs_rtf(runs: RunSet):  # noqa: ANN201
    lat = latency_table(runs).data
    points = []
    for run in runs:
        long, _ = quality_long(run)
        if long.empty:
            continue
        for metric in sorted(long.metric.unique(), key=lambda m: (not m.startswith("kad"), m)):
            if metric_direction(metric):
                break
        else:
            continue
        for _, q in long[long.metric == metric].iterrows():
            sel = (lat.generator == q.generator) & (lat.workload == q.workload)
            if "run" in lat:
                sel &= lat.run == run.label
            if not sel.any():
                continue
            r = lat[sel].iloc[0]
            points.append({"run": run, "generator": q.generator, "metric": metric, "q": q.value, "q_lo": q.ci_low,
                           "q_hi": q.ci_high, "rtf": r.rtf, "rtf_lo": r.rtf_ci_low, "rtf_hi": r.rtf_ci_high})
    if not points:
        raise Missing("not in this run: needs quality (drift stage) and timing of the same regimes and workload")
    fig = new_figure(columns=1, aspect=0.8)
    ax = fig.subplots()
    for p in points:
        xerr = [[np.nan_to_num(p["rtf"] - p["rtf_lo"])], [np.nan_to_num(p["rtf_hi"] - p["rtf"])]]
        yerr = [[np.nan_to_num(p["q"] - p["q_lo"])], [np.nan_to_num(p["q_hi"] - p["q"])]]
        ax.errorbar([p["rtf"]], [p["q"]], xerr=xerr, yerr=yerr, fmt="o", color=regime_colour(p["generator"]),
                    capsize=2, label=_series_label(p["run"], runs, p["generator"]))
    ax.axvline(1.0, color="black", linestyle="--", linewidth=0.8, label="real time")
    ax.set_xlabel("RTF, median per block")
    ax.set_ylabel(textwrap.fill(metric_label(points[0]["metric"]), 30), fontsize=6.5)
    _legend(ax, loc="best")
    return fig, ("Quality against speed, one point per regime (95% CIs). Quality: median over the drift stage's "
                 "windows against its reference set; "
                 + ("lower is better." if metric_direction(points[0]["metric"]) == "lower" else "higher is better."))


FIGURES: dict[str, tuple[str, Callable]] = {
    "latency_timeline": ("Per-block latency timeline", latency_timeline),
    "latency_cdf": ("Latency CDF", latency_cdf),
    "rtf_bars": ("Real-time factor", rtf_bars),
    "context_scaling": ("Latency and FLOPs versus context length", context_scaling),
    "flops_by_phase": ("FLOPs per generated second, by phase", flops_by_phase),
    "peak_fraction": ("Achieved fraction of peak FLOP/s", peak_fraction),
    "drift_curves": ("Drift over stream time", drift_curves),
    "quality_vs_rtf": ("Quality versus real-time factor", quality_vs_rtf),
}


def render_figures(runs: RunSet, out_dir: Path, names: list[str] | None = None) -> list[FigureResult]:
    """Render each figure into ``out_dir/<name>.pdf|png`` (inside the paper style); skipped ones carry a note."""
    out_dir = Path(out_dir)
    results = []
    for name in names or list(FIGURES):
        title, fn = FIGURES[name]
        with paper_style():
            try:
                fig, caption = fn(runs)
            except Missing as missing:
                log.info("figure %s skipped: %s", name, missing)
                results.append(FigureResult(name, title, note=str(missing)))
                continue
            files = save_figure(fig, out_dir / name)
        results.append(FigureResult(name, title, caption, files))
    return results


__all__ = ["FigureResult", "Missing", "FIGURES", "render_figures", "main_workloads"] + list(FIGURES)
