"""Systems figures: latency over stream time and its CDF, real-time factor, context scaling, FLOPs
by phase, fraction of the machine's peak (see :mod:`reports.figures` for the list and captions)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from bench.core.phases import PHASE_ORDER
from bench.core.run_folder import RunData, RunSet
from metrics.systems import playback_table
from reports.figure_parts import (
    MAX_PANELS, SWEEP, Missing, is_sweep, legend, main_workloads, panels, run_style, series_label,
)
from reports.formatting import format_significant
from reports.order_statistics import median_ci
from reports.style import new_figure, phase_colour, regime_colour, regime_sort_key, sort_regimes
from reports.systems_tables import compute_table, latency_table
from reports.table_model import NULL_GENERATORS


def latency_timeline(runs: RunSet) -> tuple[Any, str]:
    """Per-block latency over stream time, one line per regime; deadline dashed, underruns marked."""
    workloads = main_workloads(runs)[:MAX_PANELS]
    if not workloads:
        raise Missing("not in this run: no completed cell with block records")
    fig = new_figure(columns=2, aspect=0.32 if len(workloads) > 1 else 0.36)
    axes = panels(fig, len(workloads))
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
                ax.plot(t, lat, run_style(runs, run), color=colour, marker="o", markersize=2.0,
                        label=series_label(run, runs, gen))
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
    legend(axes[-1], loc="best")
    return fig, ("Per-block latency of the first timed stream. Dashed: the real-time deadline (a block must be "
                 "generated within its own audio length to keep up); x: blocks that underran in the playback "
                 "simulation at the workload's pre-buffer.")


def latency_cdf(runs: RunSet) -> tuple[Any, str]:
    """Empirical CDF of block latency per regime, with the real-time deadline."""
    workloads = main_workloads(runs)[:MAX_PANELS]
    if not workloads:
        raise Missing("not in this run: no completed cell with block records")
    fig = new_figure(columns=1 if len(workloads) == 1 else 2, aspect=0.7 if len(workloads) == 1 else 0.32)
    axes = panels(fig, len(workloads))
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
                        linestyle=run_style(runs, run), color=regime_colour(gen), label=series_label(run, runs, gen))
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
    legend(axes[-1], loc="lower right")
    return fig, "Empirical CDF of block latency (all timed blocks, all repeats). Dashed: the real-time deadline."


def rtf_bars(runs: RunSet) -> tuple[Any, str]:
    """Median per-block real-time factor per regime with its 95 % CI; the real-time line at 1."""
    table = latency_table(runs).data
    if table.empty:
        raise Missing("not in this run: no completed cell")
    table = table[~table.workload.map(is_sweep)]
    workloads = sorted(table.workload.unique())[:MAX_PANELS]
    fig = new_figure(columns=1 if len(workloads) == 1 else 2, aspect=0.7 if len(workloads) == 1 else 0.32)
    axes = panels(fig, len(workloads))
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
    legend(axes[-1], loc="best")
    return fig, ("Real-time factor: median over blocks of block latency / block audio length, with its "
                 "distribution-free 95% CI. Below the dashed line a regime generates faster than real time.")


def _sweep_points(run: RunData) -> pd.DataFrame:
    """One row per (regime, context-sweep point): context (s), steady latency median (ms) with CI, FLOPs."""
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


def context_scaling(runs: RunSet) -> tuple[Any, str]:
    """Steady-block latency and FLOPs versus context length (the ``context-sweep`` workloads)."""
    points = [(run, _sweep_points(run)) for run in runs]
    points = [(run, p) for run, p in points if not p.empty and p.context_s.nunique() >= 2]
    if not points:
        raise Missing("not in this run: run --workload context-sweep (latency and FLOPs versus context length)")
    fig = new_figure(columns=2, aspect=0.34)
    ax_lat, ax_fl = panels(fig, 2)
    for run, p in points:
        style = run_style(runs, run)
        for gen in sort_regimes(p.generator.unique()):
            if gen in NULL_GENERATORS:
                continue
            g = p[p.generator == gen].sort_values("context_s")
            c, colour = g.context_s.to_numpy(), regime_colour(gen)
            lat = g.latency_ms.to_numpy()
            yerr = np.vstack([np.nan_to_num(lat - g.lo.to_numpy()), np.nan_to_num(g.hi.to_numpy() - lat)])
            ax_lat.errorbar(c, lat, yerr=yerr, fmt="o", color=colour, capsize=2, markersize=3,
                            label=series_label(run, runs, gen))
            analytic = g.analytic_flops.to_numpy()
            if np.all(analytic > 0) and np.all(np.isfinite(lat)):
                scale = float(np.dot(analytic, lat) / np.dot(analytic, analytic))  # least squares through 0
                ax_lat.plot(c, scale * analytic, style, color=colour, linewidth=0.9, alpha=0.8)
                ax_fl.plot(c, analytic / 1e9, style, color=colour, linewidth=0.9, label=series_label(run, runs, gen))
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
        ax.set_xticklabels([format_significant(c, 6) for c in contexts])
        ax.minorticks_off()
    lat_all = np.concatenate([p.latency_ms.to_numpy(dtype=float) for _, p in points])
    lat_all = lat_all[np.isfinite(lat_all) & (lat_all > 0)]
    if lat_all.size and lat_all.max() / lat_all.min() > 20:
        ax_lat.set_yscale("log")
    ax_lat.set_ylabel("steady block latency, median (ms)")
    ax_fl.set_ylabel("GFLOP per steady block")
    legend(ax_lat, loc="upper left")
    legend(ax_fl, loc="upper left")
    return fig, ("Context sweep. Left: median steady-block latency (95% CI) per context; lines: the analytic FLOPs "
                 "scaled by one least-squares factor per regime (where latency would lie if it were proportional "
                 "to FLOPs). Right: FLOPs per steady block, measured (dots) and analytic (lines).")


def flops_by_phase(runs: RunSet) -> tuple[Any, str]:
    """Measured FLOPs per generated second of a steady block, stacked by phase, analytic total marked."""
    rows = []
    for run in runs:
        if run.flops.empty:
            continue
        f = run.flops[(run.flops.block_kind == "steady") & ~run.flops.workload.map(is_sweep)]
        for (gen, work), part in f.groupby(["generator", "workload"], sort=False):
            audio_s = float(part.audio_s.iloc[0])
            for _, r in part.iterrows():
                rows.append({"label": series_label(run, runs, gen), "generator": gen, "workload": work,
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
    legend(ax, loc="best")
    return fig, ("FLOPs per second of generated audio of a steady block, measured by FlopCounterMode and stacked "
                 "by phase; black bars: the analytic total.")


def peak_fraction(runs: RunSet) -> tuple[Any, str]:
    """Achieved FLOP/s as a percentage of the machine's measured matmul peak."""
    table = compute_table(runs).data
    if table.empty:
        raise Missing("not in this run: no completed cell")
    if not np.isfinite(table.peak_fraction.astype(float)).any():
        raise Missing("not measured in this run: no machine peak (the run used --no-peak) or no analytic FLOPs")
    table = table[np.isfinite(table.peak_fraction.astype(float)) & ~table.workload.map(is_sweep)].reset_index(drop=True)
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


def _roofline_points(runs: RunSet) -> pd.DataFrame:
    """Steady phases with a modelled attainable time: intensity, achieved and attainable FLOP/s."""
    rows = []
    for run in runs:
        flops, phases = run.flops, run.phases
        if flops.empty or "attainable_ms" not in flops or phases.empty:
            continue
        steady = flops[(flops.block_kind == "steady") & ~flops.workload.map(is_sweep) & (flops.measured_flops > 0)
                       & np.isfinite(flops.attainable_ms.astype(float)) & (flops.bytes_moved > 0)]
        timed = phases[phases.block_index > 0].groupby(["generator", "workload", "phase"]).latency_ms.median()
        for _, r in steady.iterrows():
            measured_ms = timed.get((r.generator, r.workload, r.phase), float("nan"))
            if not (np.isfinite(measured_ms) and measured_ms > 0 and r.attainable_ms > 0):
                continue
            rows.append({"label": series_label(run, runs, r.generator), "generator": r.generator,
                         "workload": r.workload, "phase": r.phase,
                         "intensity": r.measured_flops / r.bytes_moved,
                         "achieved": r.measured_flops / (measured_ms / 1e3),
                         "attainable": r.measured_flops / (r.attainable_ms / 1e3),
                         "bandwidth": float(r.bandwidth_bytes_per_s),
                         "peak": run.cell_peak(r.generator, r.workload) or float("nan")})
    return pd.DataFrame(rows)


def roofline(runs: RunSet) -> tuple[Any, str]:
    """Each steady phase at its arithmetic intensity: measured FLOP/s (filled) and attainable FLOP/s
    on this machine (hollow), under the bandwidth and square-matmul-peak ceilings."""
    df = _roofline_points(runs)
    if df.empty:
        raise Missing("not measured in this run: no FLOPs pass (--no-flops), a fake clock, or no phase with FLOPs")
    work = sorted(df.workload.unique())[0]
    df = df[df.workload == work]
    fig = new_figure(columns=1, aspect=0.8)
    ax = fig.subplots()
    x = np.logspace(np.log10(df.intensity.min() / 3), np.log10(df.intensity.max() * 3), 100)
    bandwidth, peak = float(df.bandwidth.median()), float(np.nanmedian(df.peak))
    ceiling = bandwidth * x if not np.isfinite(peak) else np.minimum(bandwidth * x, peak)
    ax.plot(x, ceiling / 1e9, color="black", linewidth=1.0,
            label=f"ceiling: {bandwidth / 1e9:.1f} GB/s" + (f", {peak / 1e9:.0f} GFLOP/s peak" if np.isfinite(peak) else ""))
    for label in sorted(df.label.unique(), key=lambda s: (regime_sort_key(s.split(" (")[0]), s)):
        part = df[df.label == label]
        colour = regime_colour(part.generator.iloc[0])
        ax.scatter(part.intensity, part.achieved / 1e9, color=colour, s=18, label=label, zorder=3)
        ax.scatter(part.intensity, part.attainable / 1e9, facecolors="none", edgecolors=colour, s=28, zorder=3)
        for _, r in part.iterrows():
            ax.plot([r.intensity, r.intensity], [r.achieved / 1e9, r.attainable / 1e9], color=colour, linewidth=0.6)
            ax.annotate(r.phase, (r.intensity, r.achieved / 1e9), fontsize=5, xytext=(2, -6), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (FLOP per byte moved)")
    ax.set_ylabel("GFLOP/s")
    ax.set_title(f"steady block phases, workload {work}")
    legend(ax, loc="best")
    return fig, ("Roofline of each steady phase: filled, its measured FLOP/s (counted FLOPs over its median latency); "
                 "hollow, its attainable FLOP/s on this machine (its matmuls and attention replayed alone at their "
                 "shapes, other operations at the measured copy bandwidth). The gap is what the code adds; the "
                 "distance from the ceiling is what small shapes cost on this hardware.")


__all__ = ["latency_timeline", "latency_cdf", "rtf_bars", "context_scaling", "flops_by_phase", "peak_fraction",
           "roofline"]
