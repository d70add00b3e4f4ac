"""The table model of the reports: a tidy table (numbers) with its displayed columns, the best
marker, and its output formats (CSV, Markdown, LaTeX, HTML), plus the row order and run column that
every table builder shares.

Formats are deterministic: numbers go through :mod:`reports.formatting`, rows are sorted by
:func:`sort_rows`, so rebuilding from the same (or a copied) run folder gives byte-identical files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from bench.core.registry import NULL_GENERATOR, PHASED_NULL_GENERATOR
from bench.core.run_folder import RunData, RunSet
from bench.core.storage import CONTINUATION_TRUE_ROW, atomic_write_text
from reports.formatting import CSV_FLOAT_FORMAT, DASH, format_value, is_finite, markdown_text
from reports.style import regime_sort_key

NULL_GENERATORS: tuple[str, ...] = (NULL_GENERATOR, PHASED_NULL_GENERATOR)  # null systems: shown, never ranked
# Rows that are references, not systems under test (the continuation table's real continuations):
# shown, never ranked.
REFERENCE_ROWS: tuple[str, ...] = (CONTINUATION_TRUE_ROW,)


@dataclass(frozen=True)
class Column:
    """A displayed column: ``key`` in the data, a header with its unit, a direction for the best marker."""

    key: str
    header: str
    direction: str | None = None  # "lower", "higher", "abs_lower" (closest to 0), "near_one", None
    kind: str = "float"  # float, int, text, pct
    ci: bool = False  # data has <key>_ci_low and <key>_ci_high
    valid_key: str | None = None  # boolean column: False -> marked with a dagger and never "best"


@dataclass
class Table:
    """A tidy table (``data``, numbers) and how to display it (``columns``)."""

    name: str  # file stem
    title: str
    data: pd.DataFrame
    columns: list[Column]
    group_keys: list[str]  # best marker chosen within each group (e.g. a workload)
    notes: list[str] = field(default_factory=list)
    ci_text: str = "[a, b]: distribution-free 95% CI of the median."  # what the table's intervals are

    @property
    def empty(self) -> bool:
        """Whether the table has no rows."""
        return self.data.empty

    # -- best marker -----------------------------------------------------------------------------

    def best_mask(self) -> pd.DataFrame:
        """Boolean frame (rows x ranked columns): True where a row holds the best value of its group.

        Null generators are never ranked; a group needs at least two ranked finite values.
        """
        ranked = [c for c in self.columns if c.direction]
        mask = pd.DataFrame(False, index=self.data.index, columns=[c.key for c in ranked])
        if self.data.empty:
            return mask
        unranked = NULL_GENERATORS + REFERENCE_ROWS
        contender = ~self.data["generator"].isin(unranked) if "generator" in self.data else True
        groups = [g.index for _, g in self.data.groupby(self.group_keys, sort=False)] if self.group_keys else [self.data.index]
        for col in ranked:
            values = pd.to_numeric(self.data[col.key], errors="coerce").astype(float)
            score = {"lower": values, "higher": -values, "abs_lower": values.abs(), "near_one": (values - 1.0).abs()}[col.direction]
            ok = np.isfinite(score) & contender
            if col.valid_key:
                ok &= self.data[col.valid_key].astype(bool)
            for index in groups:
                candidates = score[index][ok[index]]
                if candidates.size < 2:
                    continue
                best = candidates.min()
                mask.loc[candidates.index[candidates == best], col.key] = True
        return mask

    # -- formatting --------------------------------------------------------------------------------

    def _cell_text(self, row: pd.Series, col: Column) -> str:
        value = row[col.key]
        text = format_value(value, col.kind)
        if col.ci:
            lo, hi = row.get(f"{col.key}_ci_low"), row.get(f"{col.key}_ci_high")
            if is_finite(lo) and is_finite(hi):
                text += f" [{format_value(lo, col.kind)}, {format_value(hi, col.kind)}]"
        if col.valid_key and not bool(row[col.valid_key]) and text != DASH:
            text += " †"
        return text

    def display_rows(self) -> list[list[tuple[str, bool]]]:
        """Per row, per column: (text, is_best)."""
        mask = self.best_mask()
        rows = []
        for index, row in self.data.iterrows():
            cells = []
            for col in self.columns:
                best = bool(mask.at[index, col.key]) if col.key in mask.columns else False
                cells.append((self._cell_text(row, col), best))
            rows.append(cells)
        return rows

    def headers(self) -> list[str]:
        """Column headers with the direction arrow of ranked columns."""
        arrows = {"lower": " ↓", "higher": " ↑", "abs_lower": " →0", "near_one": " →1"}
        return [c.header + arrows.get(c.direction or "", "") for c in self.columns]

    def legend(self) -> str:
        """The sentence explaining bold values, arrows and CIs."""
        return (
            "Bold: best value of its column within a workload (↓ lower is better, ↑ higher is better, "
            "→0 closest to zero, →1 closest to one); the null generator is shown but never ranked. "
            + self.ci_text
        )

    def to_csv(self) -> str:
        """The tidy data with a ``<column>_best`` boolean per ranked column."""
        out = self.data.copy()
        mask = self.best_mask()
        for key in mask.columns:
            out[f"{key}_best"] = mask[key].astype(bool)
        return out.to_csv(index=False, float_format=CSV_FLOAT_FORMAT, lineterminator="\n")

    def to_markdown(self) -> str:
        """The table as Markdown: title, rows (best values bold), legend and notes."""
        lines = [f"### {self.title}", ""]
        if self.data.empty:
            lines += [f"_{self.notes[0] if self.notes else 'nothing to show'}_", ""]
            return "\n".join(lines)
        headers = [_md_escape(h) for h in self.headers()]
        lines.append("| " + " | ".join(headers) + " |")
        lines.append("|" + "|".join("---:" if c.kind != "text" else "---" for c in self.columns) + "|")
        for cells in self.display_rows():
            # text columns hold user-given names: escaped as markup; numbers only as table cells
            texts = [markdown_text(t) if c.kind == "text" else _md_escape(t) for (t, _), c in zip(cells, self.columns)]
            parts = [f"**{t}**" if best else t for t, (_, best) in zip(texts, cells)]
            lines.append("| " + " | ".join(parts) + " |")
        lines += ["", self.legend()]
        lines += [f"- {note}" for note in self.notes]
        return "\n".join(lines) + "\n"

    def to_latex(self) -> str:
        """The table as a LaTeX ``tabular`` (booktabs rules), legend and notes as comments."""
        lines = [f"% {self.title}"]
        lines += [f"% {_latex_comment(note)}" for note in [self.legend(), *self.notes]]
        if self.data.empty:
            return "\n".join(lines) + "\n"
        spec = "".join("l" if c.kind == "text" else "r" for c in self.columns)
        lines += [f"\\begin{{tabular}}{{{spec}}}", "\\toprule"]
        lines.append(" & ".join(_latex_escape(h) for h in self.headers()) + r" \\")
        lines.append("\\midrule")
        for cells in self.display_rows():
            parts = [f"\\textbf{{{_latex_escape(t)}}}" if best else _latex_escape(t) for t, best in cells]
            lines.append(" & ".join(parts) + r" \\")
        lines += ["\\bottomrule", "\\end{tabular}"]
        return "\n".join(lines) + "\n"

    def to_html(self) -> str:
        """The table as an HTML ``<table>`` (best values and text columns carry a class)."""
        text = [c.kind == "text" for c in self.columns]
        parts = [f'<table class="results" id="table-{escape(self.name)}">', "<thead><tr>"]
        parts += [f'<th{" class=text" if t else ""}>{escape(h)}</th>' for h, t in zip(self.headers(), text)]
        parts.append("</tr></thead><tbody>")
        for cells in self.display_rows():
            tds = []
            for (value, best), is_text in zip(cells, text):
                classes = " ".join(c for c, on in (("best", best), ("text", is_text)) if on)
                tds.append(f'<td class="{classes}">{escape(value)}</td>' if classes else f"<td>{escape(value)}</td>")
            parts.append("<tr>" + "".join(tds) + "</tr>")
        parts.append("</tbody></table>")
        return "".join(parts)

    def write(self, folder: Path) -> list[Path]:
        """Write ``<name>.csv``, ``<name>.md`` and ``<name>.tex`` into ``folder`` (atomic)."""
        folder = Path(folder)
        paths = []
        for ext, text in (("csv", self.to_csv()), ("md", self.to_markdown()), ("tex", self.to_latex())):
            path = folder / f"{self.name}.{ext}"
            atomic_write_text(path, text)
            paths.append(path)
        return paths


def _md_escape(text: str) -> str:
    """Escape the Markdown table separator."""
    return text.replace("|", "\\|")


_LATEX_MAP = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
    "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "↓": r"$\downarrow$", "↑": r"$\uparrow$",
    "→": r"$\to$", "†": r"\dag{}", "–": "--", "×": r"$\times$",
}


def _latex_escape(text: str) -> str:
    """Escape LaTeX specials and write arrows, dagger and dashes as LaTeX."""
    return "".join(_LATEX_MAP.get(ch, ch) for ch in text)


def _latex_comment(text: str) -> str:
    """``text`` on one line (a LaTeX comment ends at the line's end)."""
    return text.replace("\n", " ")


def sort_rows(df: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """Deterministic order: run label, workload, regime (suite order), then the other keys."""
    if df.empty:
        return df.reset_index(drop=True)
    order = df.copy()
    order["_regime"] = [regime_sort_key(g) for g in order["generator"]]
    by = [k for k in ("run", "workload") if k in order] + ["_regime"] + [k for k in keys if k in order]
    return order.sort_values(by, kind="stable").drop(columns=["_regime"]).reset_index(drop=True)


def prefix_run(run: RunData, runs: RunSet, df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with a first ``run`` column holding the run's label, when several runs are reported."""
    if runs.multi:
        df.insert(0, "run", run.label)
    return df


def run_columns(runs: RunSet) -> list[Column]:
    """The displayed ``run`` column, when several runs are reported (else none)."""
    return [Column("run", "run", kind="text")] if runs.multi else []


__all__ = ["NULL_GENERATORS", "REFERENCE_ROWS", "Column", "Table", "sort_rows", "prefix_run", "run_columns"]
