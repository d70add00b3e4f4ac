"""What every figure function shares: the ``Missing`` note of a figure the run lacks, the
context-sweep workload names, the workloads shown, and panel, legend and series styling.

A figure function takes a :class:`~bench.core.run_folder.RunSet` and returns ``(figure, caption)``,
or raises :class:`Missing` with the visible note (``not in this run: run --workload context-sweep``).
"""

from __future__ import annotations

import re
from typing import Any

from bench.core.run_folder import RunData, RunSet

SWEEP = re.compile(r"^context-sweep-c(?P<context>[0-9.]+)s$")
RUN_STYLES = ("-", "--", ":", "-.")
MAX_PANELS = 4


class Missing(Exception):
    """Raised by a figure function whose data the run lacks; the message is the visible note."""


def is_sweep(workload: str) -> bool:
    """Whether ``workload`` is a point of the context sweep (``context-sweep-c<seconds>s``)."""
    return bool(SWEEP.match(workload))


def main_workloads(runs: RunSet) -> list[str]:
    """Workloads with systems records, context-sweep points excluded, in sorted order."""
    names: set[str] = set()
    for run in runs:
        if not run.blocks.empty:
            names.update(w for w in run.blocks.workload.unique() if not is_sweep(str(w)))
    return sorted(names)


def series_label(run: RunData, runs: RunSet, generator: str) -> str:
    """Legend label of a regime's series (with the run's label when several runs are shown)."""
    return f"{generator} ({run.label})" if runs.multi else generator


def run_style(runs: RunSet, run: RunData) -> str:
    """Line style of ``run``'s series (runs differ by line style, regimes by colour)."""
    return RUN_STYLES[runs.runs.index(run) % len(RUN_STYLES)]


def panels(fig: Any, n: int) -> list[Any]:
    """``n`` axes side by side in ``fig`` (a matplotlib Figure)."""
    axes = fig.subplots(1, n, squeeze=False)[0]
    return list(axes)


def legend(ax: Any, **kw: Any) -> None:
    """A legend on ``ax`` when it has labelled series (none otherwise)."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(handles, labels, **kw)


__all__ = ["Missing", "SWEEP", "MAX_PANELS", "is_sweep", "main_workloads", "series_label", "run_style", "panels",
           "legend"]
