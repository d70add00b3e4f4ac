"""Tidy result tables from saved run folders: one table per question, as CSV, Markdown and LaTeX.

Questions and their tables (built by :func:`build_tables`):

- ``latency``: latency and real time per (regime, workload): time to first audio, first-block and
  steady-block latency (median with a 95 % CI), p90/p99 (with MLPerf validity), RTF (median per
  block, with CI), x real time, underruns, stall, minimum pre-buffer, control latency, verdict;
- ``phases``: median latency of each phase, first block vs steady blocks;
- ``compute``: parameters, analytic and measured FLOPs, FLOPs per generated second, achieved
  FLOP/s and its fraction of the measured machine peak, peak memory, KV-cache size;
- ``quality``: distances to the reference set per regime (from a ``quality`` table when a run has
  one, else the median over the drift stage's windows; the embedder is named in every header);
- ``drift``: per regime and metric, the drift summary (first/last window, last/first, slope per
  minute with its CI, time to degrade).

Everything is computed from the run folder's saved files (``manifest.json``, ``peak.json``,
``cells/*/status.json`` and the cell tables, ``drift/``), through the harness's own pure functions
(:mod:`metrics.systems`), never by running a model.

Determinism: rows are sorted (workload, regime order, metric), numbers are printed with fixed
rules, and nothing in a table depends on the folder's name or the time the report was built, so
rebuilding from the same (or a copied) run folder gives byte-identical files.

Confidence intervals of medians are distribution-free (order statistics): with ``n`` samples the
interval ``[x_(k), x_(n-k+1)]`` covers the true median with probability ``1 - 2 P(Bin(n, 1/2) <= k-1)``;
``k`` is the largest rank keeping that at or above 95 %. It needs at least 6 samples (else "not
enough samples": the CI columns are empty).
"""

from __future__ import annotations

import functools
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from bench.contract import PHASE_ORDER
from reports.style import regime_sort_key

log = logging.getLogger(__name__)

CONFIDENCE = 0.95
NULL_GENERATORS: tuple[str, ...] = ("noise",)  # null systems under test: shown, never ranked
DASH = "–"
DRIFT_DIR = "drift"
TABLE_FORMATS = ("csv", "md", "tex")


class ReportError(ValueError):
    """A folder that cannot be reported on; the message names the problem and the fix."""


# ------------------------------------------------------------------------------------------------
# Statistics


def median_ci(values: Sequence[float] | np.ndarray, confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """(median, lo, hi): the sample median and its distribution-free order-statistic interval.

    NaNs are dropped. ``lo``/``hi`` are NaN when fewer samples exist than the interval needs
    (6 for 95 %).
    """
    x = np.sort(np.asarray(values, dtype=np.float64))
    x = x[np.isfinite(x)]
    n = int(x.size)
    if n == 0:
        return math.nan, math.nan, math.nan
    med = float(np.median(x))
    k = median_ci_rank(n, confidence)
    if k == 0:
        return med, math.nan, math.nan
    return med, float(x[k - 1]), float(x[n - k])


@functools.lru_cache(maxsize=4096)
def median_ci_rank(n: int, confidence: float = CONFIDENCE) -> int:
    """The largest rank ``k`` (1-based) with ``2 P(Bin(n, 1/2) <= k - 1) <= 1 - confidence`` (0: none).

    ``[x_(k), x_(n-k+1)]`` then covers the median with probability at least ``confidence``.
    """
    from scipy.stats import binom

    k = 0
    for j in range(1, n // 2 + 1):
        if 2.0 * float(binom.cdf(j - 1, n, 0.5)) <= 1.0 - confidence:
            k = j
        else:
            break
    return k


# ------------------------------------------------------------------------------------------------
# Loading run folders


@dataclass
class RunData:
    """Everything the report reads from one run folder (nothing else is ever opened)."""

    root: Path
    label: str  # from the manifest (commit and creation time), never from the folder name
    manifest: dict[str, Any]
    peak: dict[str, Any]
    cells: pd.DataFrame  # generator, workload, status, error, cell_dir
    blocks: pd.DataFrame
    phases: pd.DataFrame
    streams: pd.DataFrame
    flops: pd.DataFrame
    summary: pd.DataFrame  # metrics.systems.summarize of the ok cells
    drift_windows: pd.DataFrame | None = None
    drift_summary: pd.DataFrame | None = None
    drift_streams: pd.DataFrame | None = None
    drift_config: dict[str, Any] = field(default_factory=dict)
    quality: pd.DataFrame | None = None  # optional tidy table: generator, workload, metric, value, ci_low, ci_high

    @property
    def peak_flops_per_s(self) -> float | None:
        value = self.peak.get("flops_per_s") if self.peak else None
        return float(value) if value else None

    def cell_dir(self, generator: str, workload: str) -> Path:
        row = self.cells[(self.cells.generator == generator) & (self.cells.workload == workload)]
        if row.empty:
            raise KeyError(f"no cell {generator} x {workload} in {self.root}")
        return self.root / str(row.iloc[0]["cell_dir"])


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except ValueError as exc:
        raise ReportError(f"{path} is not valid JSON ({exc}); the run folder is damaged: rerun the cell") from None


def run_label(manifest: dict[str, Any]) -> str:
    """A run's label from its manifest: short commit (+dirty) and UTC creation time."""
    git = manifest.get("git") or {}
    short = git.get("short") or (git.get("commit") or "nogit")[:8]
    dirty = "+dirty" if git.get("dirty") else ""
    return f"{short}{dirty} {manifest.get('created_utc', '?')}"


def _read_parquet(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path).drop(columns=["schema_version"], errors="ignore")


def load_run(run_dir: str | Path) -> RunData:
    """Read one run folder (see ``bench/storage.py`` for its layout)."""
    from metrics import systems

    root = Path(run_dir)
    if not root.is_dir():
        raise ReportError(f"run folder {root} does not exist; give the folder a run wrote (runs/<time>_<sha>/)")
    manifest = _read_json(root / "manifest.json")
    if manifest is None:
        raise ReportError(
            f"{root} has no manifest.json, so it is not a run folder (results without a manifest do not exist); "
            "give a folder written by `python run_all.py`"
        )
    peak = _read_json(root / "peak.json") or {}
    cell_rows = []
    for status_path in sorted((root / "cells").glob("*/status.json")):
        status = _read_json(status_path) or {}
        folder = status_path.parent
        name_parts = folder.name.split("__", 1)
        error = status.get("error") or ""
        cell_rows.append({
            "generator": str(status.get("generator") or name_parts[0]),
            "workload": str(status.get("workload") or (name_parts[1] if len(name_parts) > 1 else "?")),
            "status": str(status.get("status") or "incomplete"),
            "error": str(error).splitlines()[0] if error else "",
            "cell_dir": str(folder.relative_to(root)),
        })
    cells = pd.DataFrame(cell_rows, columns=["generator", "workload", "status", "error", "cell_dir"])
    tables: dict[str, list[pd.DataFrame]] = {name: [] for name in ("blocks", "phases", "streams", "flops")}
    for _, cell in cells[cells.status == "ok"].iterrows():
        for name in tables:
            path = root / cell.cell_dir / f"{name}.parquet"
            if not path.exists():
                raise ReportError(f"{path} is missing although the cell's status is ok; the run folder is damaged")
            tables[name].append(_read_parquet(path))
    frames = {name: (pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()) for name, parts in tables.items()}
    summary = pd.DataFrame()
    if not frames["streams"].empty:
        summary = systems.summarize(frames["blocks"], frames["streams"], frames["flops"],
                                    float(peak["flops_per_s"]) if peak.get("flops_per_s") else None)
    run = RunData(root=root, label=run_label(manifest), manifest=manifest, peak=peak, cells=cells,
                  blocks=frames["blocks"], phases=frames["phases"], streams=frames["streams"], flops=frames["flops"],
                  summary=summary)
    drift = root / DRIFT_DIR
    if (drift / "summary.parquet").exists():
        run.drift_summary = _read_parquet(drift / "summary.parquet")
        if (drift / "windows.parquet").exists():
            run.drift_windows = _read_parquet(drift / "windows.parquet")
        if (drift / "streams.parquet").exists():
            run.drift_streams = _read_parquet(drift / "streams.parquet")
        run.drift_config = _read_json(drift / "config.json") or {}
    if (root / "quality.parquet").exists():
        run.quality = _read_parquet(root / "quality.parquet")
    return run


@dataclass
class RunSet:
    """One or more runs, reported together (labels made unique in the order given)."""

    runs: list[RunData]

    @property
    def multi(self) -> bool:
        return len(self.runs) > 1

    def __iter__(self):  # noqa: ANN204
        return iter(self.runs)


def load_runs(run_dirs: Iterable[str | Path]) -> RunSet:
    """Load several run folders; duplicate labels get a `` (2)``-style suffix."""
    runs = [load_run(d) for d in run_dirs]
    if not runs:
        raise ReportError("no run folder given; pass at least one (for example runs/<time>_<sha>)")
    seen: dict[str, int] = {}
    for run in runs:
        count = seen.get(run.label, 0) + 1
        seen[run.label] = count
        if count > 1:
            run.label = f"{run.label} ({count})"
    return RunSet(runs)


# ------------------------------------------------------------------------------------------------
# Metric names


def metric_label(name: str) -> str:
    """Readable label with unit for a quality or drift metric column name.

    Metrics of the weight-free log-mel embedder say so (they are not pretrained-model metrics).
    """
    embedder = ""
    base = name
    for suffix, words in (("_logmel", "log-mel, not a pretrained embedder"),):
        if name.endswith(suffix):
            base, embedder = name[: -len(suffix)], words
    labels = {
        "fad": "FAD", "kad": "KAD x100", "self_kad": "KAD x100 to the stream's first window", "fad_inf": "FAD-inf",
        "clap_score": "CLAP score (cosine)", "loudness_lufs": "loudness (LUFS)",
        "spectral_centroid_hz": "spectral centroid (Hz)", "spectral_flatness": "spectral flatness",
        "silence_ratio": "silence ratio", "clipping_ratio": "clipping ratio", "rms_dbfs": "RMS (dBFS)",
        "nonfinite_ratio": "non-finite sample ratio",
    }
    if base in labels:
        text = labels[base]
    elif "_" in base and base.split("_", 1)[0] in ("fad", "kad"):
        head, emb = base.split("_", 1)
        text, embedder = labels[head], embedder or emb
    else:
        text = base.replace("_", " ")
    return f"{text} ({embedder})" if embedder else text


def metric_direction(name: str) -> str | None:
    """"lower" / "higher" is better for a quality metric, or None when neither is."""
    if name.startswith(("fad", "kad", "self_kad")):
        return "lower"
    if name.startswith("clap_score"):
        return "higher"
    return None


# ------------------------------------------------------------------------------------------------
# Tables


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

    @property
    def empty(self) -> bool:
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
        contender = ~self.data["generator"].isin(NULL_GENERATORS) if "generator" in self.data else True
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
            if _finite(lo) and _finite(hi):
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
        arrows = {"lower": " ↓", "higher": " ↑", "abs_lower": " →0", "near_one": " →1"}
        return [c.header + arrows.get(c.direction or "", "") for c in self.columns]

    def legend(self) -> str:
        return (
            "Bold: best value of its column within a workload (↓ lower is better, ↑ higher is better, "
            "→0 closest to zero, →1 closest to one); the null generator is shown but never ranked. "
            "[a, b]: distribution-free 95% CI of the median."
        )

    def to_csv(self) -> str:
        """The tidy data with a ``<column>_best`` boolean per ranked column."""
        out = self.data.copy()
        mask = self.best_mask()
        for key in mask.columns:
            out[f"{key}_best"] = mask[key].astype(bool)
        return out.to_csv(index=False, float_format="%.10g", lineterminator="\n")

    def to_markdown(self) -> str:
        lines = [f"### {self.title}", ""]
        if self.data.empty:
            lines += [f"_{self.notes[0] if self.notes else 'nothing to show'}_", ""]
            return "\n".join(lines)
        headers = [_md_escape(h) for h in self.headers()]
        lines.append("| " + " | ".join(headers) + " |")
        lines.append("|" + "|".join("---:" if c.kind != "text" else "---" for c in self.columns) + "|")
        for cells in self.display_rows():
            parts = [f"**{_md_escape(t)}**" if best else _md_escape(t) for t, best in cells]
            lines.append("| " + " | ".join(parts) + " |")
        lines += ["", self.legend()]
        lines += [f"- {note}" for note in self.notes]
        return "\n".join(lines) + "\n"

    def to_latex(self) -> str:
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
        from html import escape

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
        from bench.storage import atomic_write_text

        folder = Path(folder)
        paths = []
        for ext, text in (("csv", self.to_csv()), ("md", self.to_markdown()), ("tex", self.to_latex())):
            path = folder / f"{self.name}.{ext}"
            atomic_write_text(path, text)
            paths.append(path)
        return paths


def _finite(x: Any) -> bool:
    try:
        return math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def format_value(value: Any, kind: str = "float") -> str:
    """Fixed formatting rules (so rebuilt tables are byte-identical): about 3 significant digits."""
    if kind == "text":
        return DASH if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)
    if not _finite(value):
        return DASH
    x = float(value)
    if kind == "int":
        return f"{int(round(x)):d}"
    if kind == "pct":
        x *= 100.0
    a = abs(x)
    if a == 0:
        text = "0"
    elif a >= 100:
        text = f"{x:.0f}"
    elif a >= 10:
        text = f"{x:.1f}"
    elif a >= 1:
        text = f"{x:.2f}"
    elif a >= 0.01:
        text = f"{x:.3f}"
    else:
        text = f"{x:.2e}"
    return text + ("%" if kind == "pct" else "")


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


_LATEX_MAP = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
    "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "↓": r"$\downarrow$", "↑": r"$\uparrow$",
    "→": r"$\to$", "†": r"\dag{}", "–": "--", "×": r"$\times$",
}


def _latex_escape(text: str) -> str:
    return "".join(_LATEX_MAP.get(ch, ch) for ch in text)


def _latex_comment(text: str) -> str:
    return text.replace("\n", " ")


def _sort(df: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """Deterministic order: run label, workload, regime (suite order), then the other keys."""
    if df.empty:
        return df.reset_index(drop=True)
    order = df.copy()
    order["_regime"] = [regime_sort_key(g) for g in order["generator"]]
    by = [k for k in ("run", "workload") if k in order] + ["_regime"] + [k for k in keys if k in order]
    return order.sort_values(by, kind="stable").drop(columns=["_regime"]).reset_index(drop=True)


def _prefix_run(run: RunData, runs: RunSet, df: pd.DataFrame) -> pd.DataFrame:
    if runs.multi:
        df.insert(0, "run", run.label)
    return df


def _run_columns(runs: RunSet) -> list[Column]:
    return [Column("run", "run", kind="text")] if runs.multi else []


# ------------------------------------------------------------------------------------------------
# The tables


def latency_table(runs: RunSet) -> Table:
    """Latency and real time per (regime, workload)."""
    frames = []
    for run in runs:
        if run.summary.empty:
            continue
        rows = []
        for _, s in run.summary.iterrows():
            b = run.blocks[(run.blocks.generator == s.generator) & (run.blocks.workload == s.workload)]
            steady = b[b.block_index > 0] if (b.block_index > 0).any() else b
            med, lo, hi = median_ci(steady.latency_ns.to_numpy() / 1e6)
            rtf_med, rtf_lo, rtf_hi = median_ci((b.latency_ns.to_numpy() / 1e9) / b.audio_s.to_numpy())
            rows.append({
                "generator": s.generator, "workload": s.workload, "blocks": int(s.blocks),
                "block_s": float(np.median(b.audio_s)), "ttfa_ms": s.ttfa_ms, "first_block_ms": s.first_block_ms,
                "steady_median_ms": med, "steady_median_ms_ci_low": lo, "steady_median_ms_ci_high": hi,
                "p90_ms": s.p90_ms, "p90_valid": bool(s.p90_valid), "p99_ms": s.p99_ms, "p99_valid": bool(s.p99_valid),
                "rtf": rtf_med, "rtf_ci_low": rtf_lo, "rtf_ci_high": rtf_hi, "x_realtime": s.x_realtime,
                "underruns": int(s.underruns), "stall_s": s.stall_s, "prebuffer_s": s.prebuffer_s,
                "min_prebuffer_s": s.min_prebuffer_s, "control_latency_worst_ms": s.control_latency_worst_ms,
                "verdict": s.verdict,
            })
        frames.append(_prefix_run(run, runs, pd.DataFrame(rows)))
    data = _sort(pd.concat(frames, ignore_index=True), []) if frames else pd.DataFrame()
    columns = _run_columns(runs) + [
        Column("generator", "regime", kind="text"), Column("workload", "workload", kind="text"),
        Column("blocks", "blocks", kind="int"),
        Column("ttfa_ms", "TTFA (ms)", "lower"),
        Column("first_block_ms", "first block (ms)", "lower"),
        Column("steady_median_ms", "steady block, median (ms)", "lower", ci=True),
        Column("p90_ms", "p90 (ms)", "lower", valid_key="p90_valid"),
        Column("p99_ms", "p99 (ms)", "lower", valid_key="p99_valid"),
        Column("rtf", "RTF, median per block", "lower", ci=True),
        Column("x_realtime", "x real time", "higher"),
        Column("underruns", "underruns", "lower", kind="int"),
        Column("stall_s", "stall (s)", "lower"),
        Column("min_prebuffer_s", "min pre-buffer (s)", "lower"),
        Column("control_latency_worst_ms", "control latency, worst (ms)", "lower"),
        Column("verdict", "verdict", kind="text"),
    ]
    notes = [
        "TTFA: from the call to start() until the first block's audio is on the host. Steady blocks: every block "
        "after the first. RTF = compute s / audio s per block (< 1 is faster than real time); x real time = total "
        "audio s / total compute s of the stream(s).",
        "† too few samples for a valid percentile (MLPerf's minimum: 64 for p90, 662 for p99); never ranked.",
        "Underruns, stall and verdict come from the playback simulation at the workload's pre-buffer "
        "(docs/harness.md); min pre-buffer is the smallest whole-block pre-buffer that plays without an underrun. "
        "Control latency: worst case over prompt changes (– when the workload has none).",
    ]
    if data.empty:
        notes = ["not in this run: no completed cell (see the failures list)"]
    return Table("latency", "Latency and real time", data, columns, ["workload"], notes)


def phase_table(runs: RunSet) -> Table:
    """Median latency per phase and block kind (first block vs steady blocks)."""
    frames = []
    for run in runs:
        if run.phases.empty:
            continue
        df = run.phases.assign(block_kind=np.where(run.phases.block_index == 0, "first", "steady"))
        rows = []
        for (gen, work, phase, kind), part in df.groupby(["generator", "workload", "phase", "block_kind"], sort=False):
            med, lo, hi = median_ci(part.latency_ms.to_numpy())
            rows.append({
                "generator": gen, "workload": work, "phase": phase, "block_kind": kind,
                "phase_rank": PHASE_ORDER.index(phase) if phase in PHASE_ORDER else len(PHASE_ORDER),
                "calls_per_block": float(np.median(part.calls)), "blocks": int(part.shape[0]),
                "median_ms": med, "median_ms_ci_low": lo, "median_ms_ci_high": hi,
                "analytic_gflop": float(np.median(part.analytic_flops)) / 1e9,
            })
        frames.append(_prefix_run(run, runs, pd.DataFrame(rows)))
    data = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if not data.empty:
        data = _sort(data, ["block_kind", "phase_rank", "phase"]).drop(columns=["phase_rank"])
    columns = _run_columns(runs) + [
        Column("generator", "regime", kind="text"), Column("workload", "workload", kind="text"),
        Column("block_kind", "block", kind="text"), Column("phase", "phase", kind="text"),
        Column("calls_per_block", "calls per block"), Column("blocks", "blocks", kind="int"),
        Column("median_ms", "median per block (ms)", ci=True),
        Column("analytic_gflop", "analytic GFLOP per block"),
    ]
    notes = ["Per phase: time summed over the phase's calls within one block, median over blocks."]
    return Table("phases", "Latency per phase", data, columns, [], notes if not data.empty else
                 ["not in this run: no completed cell"])


def compute_table(runs: RunSet) -> Table:
    """Compute per (regime, workload): parameters, FLOPs, achieved FLOP/s, fraction of peak, memory."""
    frames = []
    kinds: set[str] = set()
    peaks: list[str] = []
    for run in runs:
        if run.summary.empty:
            continue
        peak = run.peak_flops_per_s
        peaks.append((f"{run.label}: " if runs.multi else "") + (
            f"{peak / 1e9:.1f} GFLOP/s ({run.peak.get('dtype', '?')}, {run.peak.get('device', '?')})" if peak
            else str(run.peak.get("note") or "not measured: no peak.json")))
        rows = []
        for _, s in run.summary.iterrows():
            b = run.blocks[(run.blocks.generator == s.generator) & (run.blocks.workload == s.workload)]
            steady = b[b.block_index > 0] if (b.block_index > 0).any() else b
            achieved = steady.analytic_flops.to_numpy() / (steady.latency_ns.to_numpy() / 1e9)
            achieved = np.where(steady.analytic_flops.to_numpy() > 0, achieved, np.nan)
            med, lo, hi = median_ci(achieved / 1e9)
            frac = [v / (peak / 1e9) if peak and _finite(v) else math.nan for v in (med, lo, hi)]
            kinds.add(str(s.peak_mem_kind))
            rows.append({
                "generator": s.generator, "workload": s.workload, "params_m": s.params / 1e6,
                "analytic_gflop_per_block": s.steady_analytic_flops / 1e9,
                "measured_gflop_per_block": s.steady_measured_flops / 1e9,
                "measured_over_analytic": s.steady_flop_ratio,
                "measured_gflop_per_audio_s": s.measured_flops_per_audio_s / 1e9,
                "achieved_gflop_per_s": med, "achieved_gflop_per_s_ci_low": lo, "achieved_gflop_per_s_ci_high": hi,
                "peak_fraction": frac[0], "peak_fraction_ci_low": frac[1], "peak_fraction_ci_high": frac[2],
                "peak_mem_mib": s.peak_mem_bytes / 2**20, "peak_mem_kind": s.peak_mem_kind,
                "kv_cache_mib": s.kv_cache_bytes / 2**20,
            })
        frames.append(_prefix_run(run, runs, pd.DataFrame(rows)))
    data = _sort(pd.concat(frames, ignore_index=True), []) if frames else pd.DataFrame()
    columns = _run_columns(runs) + [
        Column("generator", "regime", kind="text"), Column("workload", "workload", kind="text"),
        Column("params_m", "params (M)"),
        Column("analytic_gflop_per_block", "analytic GFLOP per block"),
        Column("measured_over_analytic", "measured / analytic"),
        Column("measured_gflop_per_audio_s", "measured GFLOP per audio s", "lower"),
        Column("achieved_gflop_per_s", "achieved GFLOP/s, median", "higher", ci=True),
        Column("peak_fraction", "fraction of peak", "higher", kind="pct", ci=True),
        Column("peak_mem_mib", "peak memory (MiB)", "lower" if kinds == {"cuda_allocator"} else None),
        Column("kv_cache_mib", "KV cache (MiB)", "lower"),
    ]
    notes = [
        "FLOPs of a steady block: analytic (matmul-level formula) and measured (FlopCounterMode, separate untimed "
        "pass); achieved GFLOP/s = analytic FLOPs of a steady block / its latency (median over steady blocks).",
        "Machine peak (square-matmul micro-benchmark): " + "; ".join(peaks) + ".",
        "Peak memory: " + ", ".join(sorted(kinds)) + (
            "" if kinds == {"cuda_allocator"} else
            " (on the CPU the whole process's peak RSS: Python, libraries and earlier cells included, so it is "
            "shown but not ranked)") + ".",
    ]
    if data.empty:
        notes = ["not in this run: no completed cell"]
    return Table("compute", "Compute and memory", data, columns, ["workload"], notes)


def drift_workload_name(run: RunData) -> str:
    """The harness workload whose stream the drift stage used (from drift/config.json)."""
    stream = ((run.drift_config.get("drift") or {}).get("stream") or {})
    return str(stream.get("name") or (run.drift_config.get("drift") or {}).get("name") or "drift")


def _quality_metric_columns(windows: pd.DataFrame, summarised: set[str] | None) -> list[str]:
    """Quality metrics of a drift window table: metrics the drift stage summarised (not CI bounds or
    bookkeeping such as ``fad_logmel_clipped_eigenvalues``) that have a direction, self-distances excluded."""
    return [c for c in windows.columns if metric_direction(c) and not c.endswith(("_ci_low", "_ci_high"))
            and not c.startswith("self_") and (summarised is None or c in summarised)]


def quality_long(run: RunData) -> tuple[pd.DataFrame, str]:
    """Tidy quality rows (generator, workload, metric, value, ci_low, ci_high) and a sentence naming the source."""
    if run.quality is not None and not run.quality.empty:
        q = run.quality.copy()
        for col in ("ci_low", "ci_high"):
            if col not in q:
                q[col] = math.nan
        return q[["generator", "workload", "metric", "value", "ci_low", "ci_high"]], "the run's quality table"
    if run.drift_windows is None or run.drift_windows.empty:
        return pd.DataFrame(columns=["generator", "workload", "metric", "value", "ci_low", "ci_high"]), ""
    work = drift_workload_name(run)
    summarised = set(run.drift_summary.metric) if run.drift_summary is not None else None
    rows = []
    for gen, part in run.drift_windows.groupby("generator", sort=False):
        for metric in _quality_metric_columns(part, summarised):
            med, lo, hi = median_ci(part[metric].to_numpy())
            rows.append({"generator": gen, "workload": work, "metric": metric, "value": med, "ci_low": lo, "ci_high": hi})
    scoring = run.drift_config.get("scoring") or {}
    window = scoring.get("window_s")
    source = (
        f"median over the drift stage's windows ({window:g} s each, pooled over streams)" if _finite(window)
        else "median over the drift stage's windows"
    )
    ref = scoring.get("reference")
    if ref:
        source += f"; reference set: {ref}"
    return pd.DataFrame(rows, columns=["generator", "workload", "metric", "value", "ci_low", "ci_high"]), source


def quality_table(runs: RunSet) -> Table:
    """Quality per regime: one column per metric (direction from the metric), with CIs."""
    frames, sources = [], []
    for run in runs:
        long, source = quality_long(run)
        if long.empty:
            continue
        sources.append(f"{run.label}: {source}" if runs.multi else source)
        rows = []
        for (gen, work), part in long.groupby(["generator", "workload"], sort=True):
            row: dict[str, Any] = {"generator": gen, "workload": work}
            for _, r in part.sort_values("metric").iterrows():
                row.update({r.metric: r.value, f"{r.metric}_ci_low": r.ci_low, f"{r.metric}_ci_high": r.ci_high})
            rows.append(row)
        frames.append(_prefix_run(run, runs, pd.DataFrame(rows)))
    if not frames:
        return Table("quality", "Quality", pd.DataFrame(), [], [], [
            "not in this run: no quality or drift tables (run the drift stage, or add a quality stage)"])
    data = _sort(pd.concat(frames, ignore_index=True), [])
    metrics = sorted({c for c in data.columns if metric_direction(c) and not c.endswith(("_ci_low", "_ci_high"))})
    columns = _run_columns(runs) + [Column("generator", "regime", kind="text"), Column("workload", "workload", kind="text")]
    columns += [Column(m, metric_label(m), metric_direction(m), ci=True) for m in metrics]
    notes = ["Source: " + "; ".join(sources) + "."]
    notes.append("Log-mel metrics use the weight-free log-mel embedder: NOT pretrained-model FAD/KAD; never compare "
                 "them with published numbers. [a, b]: 95% CI of the median over windows.")
    for metric in metrics:
        if not np.isfinite(pd.to_numeric(data[metric], errors="coerce").astype(float)).any():
            reasons = sorted({str(n) for r in runs if r.drift_windows is not None and "notes" in r.drift_windows
                              for n in r.drift_windows["notes"].dropna() if str(n).strip()})
            why = [n for n in reasons if metric.split("_")[0].upper() in n] or reasons
            notes.append(f"{metric_label(metric)}: not measured in any window" + (f" ({why[0]})" if why else "") + ".")
    clap = [r.drift_config.get("scoring", {}).get("clap_identity") for r in runs if r.drift_config]
    if not any("clap_score" in m for m in metrics):
        reason = str(clap[0]) if clap and clap[0] else "not measured: no CLAP checkpoint given"
        notes.append("CLAP score: " + (reason if reason.startswith("not measured") else f"not measured ({reason})") + ".")
    return Table("quality", "Quality", data, columns, ["workload"], notes)


def drift_table(runs: RunSet) -> Table:
    """The drift summary per regime and metric."""
    frames, described = [], []
    for run in runs:
        if run.drift_summary is None or run.drift_summary.empty:
            continue
        d = run.drift_summary.copy()
        df = pd.DataFrame({
            "generator": d.generator, "metric": d.metric, "metric_label": [metric_label(m) for m in d.metric],
            "n_windows": d.n_windows, "first": d["first"], "last": d["last"], "last_first_ratio": d.last_first_ratio,
            "slope_per_min": d.slope_per_min, "slope_per_min_ci_low": d.slope_ci_low,
            "slope_per_min_ci_high": d.slope_ci_high, "time_to_degrade_s": d.time_to_degrade_s,
            "degrade_direction": d.degrade_direction.fillna("").astype(str), "drifted": d.drifted.astype(bool),
        })
        df.insert(1, "workload", drift_workload_name(run))
        frames.append(_prefix_run(run, runs, df))
        desc = (run.drift_config.get("drift") or {})
        described.append(
            f"{desc.get('n_streams', '?')} streams x {desc.get('horizon_s', '?')} s, windows of "
            f"{desc.get('window_s', '?')} s every {desc.get('hop_s', '?')} s"
        )
    if not frames:
        return Table("drift", "Drift over stream time", pd.DataFrame(), [], [], [
            "not in this run: no drift tables (the drift stage did not run; see docs/drift.md)"])
    data = pd.concat(frames, ignore_index=True)
    data["metric_rank"] = data.metric.map(_metric_rank)
    data = _sort(data, []).copy()
    data = data.sort_values([k for k in ("run", "workload") if k in data] + ["metric_rank", "metric"],
                            kind="stable").drop(columns=["metric_rank"]).reset_index(drop=True)
    data["time_to_degrade"] = [
        f"{t:.1f} s ({d})" if _finite(t) else "none" for t, d in zip(data.time_to_degrade_s, data.degrade_direction)
    ]
    columns = _run_columns(runs) + [
        Column("metric_label", "metric", kind="text"), Column("generator", "regime", kind="text"),
        Column("n_windows", "windows", kind="int"), Column("first", "first window"), Column("last", "last window"),
        Column("last_first_ratio", "last / first", "near_one"),
        Column("slope_per_min", "slope per minute", "abs_lower", ci=True),
        Column("time_to_degrade", "time to degrade", kind="text"),
    ]
    notes = [
        "Drift stage: " + "; ".join(sorted(set(described))) + ". Slope: OLS per minute with a t-based 95% CI. "
        "Time to degrade: first window outside the early-window band (docs/drift.md); none = not within the horizon.",
        "Best markers compare regimes within a metric: slope closest to 0, last/first closest to 1.",
    ]
    return Table("drift", "Drift over stream time", data, columns, ["metric"], notes)


def _metric_rank(metric: str) -> int:
    order = ("kad", "fad", "self_kad", "clap_score", "loudness_lufs", "rms_dbfs", "spectral_centroid_hz",
             "spectral_flatness", "silence_ratio", "clipping_ratio", "nonfinite_ratio")
    for i, prefix in enumerate(order):
        if metric == prefix or metric.startswith(prefix + "_"):
            return i
    return len(order)


def build_tables(runs: RunSet) -> dict[str, Table]:
    """Every table of the report, keyed by name (in display order)."""
    return {t.name: t for t in (latency_table(runs), phase_table(runs), compute_table(runs), quality_table(runs),
                                drift_table(runs))}


def write_tables(tables: dict[str, Table], folder: Path) -> list[Path]:
    """Write every table as CSV, Markdown and LaTeX into ``folder``."""
    paths: list[Path] = []
    for table in tables.values():
        paths += table.write(folder)
    return paths


__all__ = [
    "ReportError", "median_ci", "median_ci_rank", "RunData", "RunSet", "load_run", "load_runs", "run_label",
    "metric_label", "metric_direction", "Column", "Table", "format_value", "latency_table", "phase_table",
    "compute_table", "quality_table", "drift_table", "build_tables", "write_tables", "quality_long",
    "drift_workload_name", "NULL_GENERATORS",
]
