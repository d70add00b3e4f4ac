"""Paper style for every figure: sizes, fonts, fixed regime colours, applied only in a context.

Nothing here changes matplotlib's global settings. :func:`paper_style` applies :data:`PAPER_RC`
inside ``matplotlib.rc_context`` for the duration of a ``with`` block, so a figure built and
saved inside the block gets the style and the caller's settings are untouched afterwards::

    with paper_style():
        fig = new_figure(columns=1)
        ...
        save_figure(fig, out_dir / "latency_cdf")

Fonts: DejaVu Sans (shipped with matplotlib, so every machine renders the same glyphs) embedded
in PDFs as TrueType (``pdf.fonttype = 42``, not Type 3), which journals' checkers accept and
which keeps text selectable.

Sizes: a single column is 3.5 in wide, a double column 7.0 in (the common two-column paper
layouts); heights follow from an aspect ratio.

Colours: each regime has a fixed colour (:data:`REGIME_COLOURS`) so it looks the same in every
figure and every report; an unknown regime gets a colour chosen by a stable hash of its name
from a palette the built-in regimes do not use, so it too is the same in every run.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterable, Iterator

from bench.core.hashing import stable_hash

SINGLE_COLUMN_IN = 3.5
DOUBLE_COLUMN_IN = 7.0
DEFAULT_ASPECT = 0.68  # height / width
PNG_DPI = 200

# The regimes of the suite in the order reports list them (the null system last).
REGIME_ORDER: tuple[str, ...] = ("outpaint", "lmdm-encdec", "lmdm-causal", "lmdm-causal-arc", "lmm", "noise")
REGIME_COLOURS: dict[str, str] = {
    "outpaint": "#D55E00",  # vermilion (Okabe-Ito palette: distinguishable with colour blindness)
    "lmdm-encdec": "#0072B2",  # blue
    "lmdm-causal": "#009E73",  # bluish green
    "lmdm-causal-arc": "#00513B",  # dark bluish green: the same regime, ARC-Forcing weights
    "lmm": "#CC79A7",  # reddish purple
    "noise": "#7F7F7F",  # grey: the null system under test
    "drift-tilt": "#E69F00",  # orange
    "collapse-silence": "#56B4E9",  # sky blue
    "collapse-noise": "#000000",  # black
}
# For regimes the suite does not know (a user's generator): the same name always gets the same one.
EXTRA_COLOURS: tuple[str, ...] = (
    "#8C564B", "#9467BD", "#17BECF", "#BCBD22", "#1F77B4", "#2CA02C", "#D62728", "#F0E442",
)
# Phases stack in contract order with fixed colours too.
PHASE_COLOURS: dict[str, str] = {
    "prefill": "#4C72B0",
    "bootstrap": "#55A868",
    "first_step": "#C44E52",
    "step": "#8172B2",
    "encode": "#CCB974",
    "temporal": "#64B5CD",
    "depth": "#DD8452",
    "decode": "#937860",
}

PAPER_RC: dict[str, object] = {
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans"],
    "font.size": 8.0,
    "axes.titlesize": 8.0,
    "axes.labelsize": 8.0,
    "xtick.labelsize": 7.0,
    "ytick.labelsize": 7.0,
    "legend.fontsize": 6.5,
    "legend.frameon": False,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.linewidth": 0.4,
    "grid.alpha": 0.5,
    "axes.linewidth": 0.6,
    "lines.linewidth": 1.2,
    "lines.markersize": 3.5,
    "xtick.major.width": 0.6,
    "ytick.major.width": 0.6,
    "pdf.fonttype": 42,  # embed TrueType fonts, never Type 3
    "ps.fonttype": 42,
    "savefig.dpi": PNG_DPI,
    "savefig.bbox": "standard",  # keep the exact column width (constrained layout fits the labels)
    "figure.dpi": 100,
    "figure.constrained_layout.use": True,
    "svg.fonttype": "none",
}


@contextlib.contextmanager
def paper_style() -> Iterator[None]:
    """Apply :data:`PAPER_RC` for the duration of the block (global settings restored after)."""
    import matplotlib

    with matplotlib.rc_context(PAPER_RC):
        yield


def figure_size(columns: int = 1, aspect: float = DEFAULT_ASPECT) -> tuple[float, float]:
    """(width, height) in inches of a ``columns``-wide figure (1: 3.5 in, 2: 7.0 in)."""
    if columns not in (1, 2):
        raise ValueError(f"columns must be 1 (single column, 3.5 in) or 2 (double, 7.0 in), got {columns}")
    width = SINGLE_COLUMN_IN if columns == 1 else DOUBLE_COLUMN_IN
    return width, width * aspect


def new_figure(columns: int = 1, aspect: float = DEFAULT_ASPECT):  # noqa: ANN201 - matplotlib Figure
    """A matplotlib ``Figure`` built without pyplot (no global figure registry, no backend state)."""
    from matplotlib.figure import Figure

    return Figure(figsize=figure_size(columns, aspect))


def regime_colour(name: str) -> str:
    """The fixed colour of regime ``name`` (a stable hashed choice for unknown regimes)."""
    if name in REGIME_COLOURS:
        return REGIME_COLOURS[name]
    return EXTRA_COLOURS[stable_hash("regime-colour", name) % len(EXTRA_COLOURS)]


def phase_colour(name: str) -> str:
    """The fixed colour of a phase (a stable hashed one for phases outside the palette)."""
    if name in PHASE_COLOURS:
        return PHASE_COLOURS[name]
    return EXTRA_COLOURS[stable_hash("phase-colour", name) % len(EXTRA_COLOURS)]


def regime_sort_key(name: str) -> tuple[int, str]:
    """Sort key: the suite's regimes in :data:`REGIME_ORDER`, then others alphabetically."""
    try:
        return (REGIME_ORDER.index(name), "")
    except ValueError:
        return (len(REGIME_ORDER), name)


def sort_regimes(names: Iterable[str]) -> list[str]:
    """Distinct regime names in suite order."""
    return sorted(set(names), key=regime_sort_key)


def save_figure(fig, stem: Path) -> list[Path]:  # noqa: ANN001 - matplotlib Figure
    """Save ``fig`` as ``<stem>.pdf`` (embedded TrueType fonts, no creation date) and ``<stem>.png``.

    Call inside :func:`paper_style` (the PDF font type is read at save time).
    """
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    pdf, png = stem.with_suffix(".pdf"), stem.with_suffix(".png")
    fig.savefig(pdf, format="pdf", metadata={"CreationDate": None, "Creator": "live-music-bench reports"})
    fig.savefig(png, format="png", dpi=PNG_DPI)
    return [pdf, png]


__all__ = [
    "SINGLE_COLUMN_IN", "DOUBLE_COLUMN_IN", "REGIME_ORDER", "REGIME_COLOURS", "PHASE_COLOURS", "PAPER_RC",
    "paper_style", "figure_size", "new_figure", "regime_colour", "phase_colour", "regime_sort_key",
    "sort_regimes", "save_figure",
]
