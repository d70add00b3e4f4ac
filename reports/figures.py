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
- ``roofline``: each steady phase's measured and attainable FLOP/s at its arithmetic intensity,
  under the machine's measured bandwidth and matmul-peak ceilings (bench/app/attainable.py);
- ``drift_curves``: drift metrics over stream time with their CI bands (or the across-stream range
  when a metric has no CI), detected onsets marked;
- ``descriptor_curves``: the music descriptors over stream time (pitch, key and key drift, onsets,
  tempo), the reference clips' mean dashed;
- ``spectrogram_strips``: per regime, log-mel spectrograms of its longest stream's start, middle and
  end beside a reference clip (:mod:`reports.spectrograms`);
- ``quality_vs_rtf``: a quality metric against the real-time factor, one point per regime.

The figure functions are in :mod:`reports.systems_figures`, :mod:`reports.quality_figures` and
:mod:`reports.spectrograms` (shared parts: :mod:`reports.figure_parts`); this module is their
registry and renderer.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from bench.core.run_folder import RunSet
from reports.figure_parts import Missing
from reports.quality_figures import descriptor_curves, drift_curves, quality_vs_rtf
from reports.spectrograms import spectrogram_strips
from reports.style import paper_style, save_figure
from reports.systems_figures import (
    context_scaling, flops_by_phase, latency_cdf, latency_timeline, peak_fraction, roofline, rtf_bars,
)

log = logging.getLogger(__name__)


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
        """Whether the figure was drawn (else ``note`` says why not)."""
        return bool(self.files)


FIGURES: dict[str, tuple[str, Callable]] = {  # name: (title, figure function)
    "latency_timeline": ("Per-block latency timeline", latency_timeline),
    "latency_cdf": ("Latency CDF", latency_cdf),
    "rtf_bars": ("Real-time factor", rtf_bars),
    "context_scaling": ("Latency and FLOPs versus context length", context_scaling),
    "flops_by_phase": ("FLOPs per generated second, by phase", flops_by_phase),
    "peak_fraction": ("Achieved fraction of peak FLOP/s", peak_fraction),
    "roofline": ("Roofline: measured and attainable FLOP/s per phase", roofline),
    "drift_curves": ("Drift over stream time", drift_curves),
    "descriptor_curves": ("Music descriptors over stream time", descriptor_curves),
    "spectrogram_strips": ("Spectrograms: start, middle and end of each regime's longest stream", spectrogram_strips),
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


__all__ = ["FigureResult", "FIGURES", "render_figures"]
