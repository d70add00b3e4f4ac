"""How every number the reports print is written: one module, so the Markdown of the tables, the run
summary and the drift summary cannot drift apart, and rebuilt reports are byte-identical.

Three styles, one rule for what is missing (None, NaN, inf or not a number):
- :func:`format_value`: report tables, about 3 significant digits by magnitude; missing -> ``DASH``;
- :func:`format_fixed`: the run summary, a fixed number of decimals with thousands separators
  (without them in sentences and file data: ``thousands=False``); missing -> ``NOT_MEASURED``;
- :func:`format_significant`: the drift summary, ``digits`` significant digits; missing ->
  ``NOT_MEASURED``.

CSV files write floats with :data:`CSV_FLOAT_FORMAT` (10 significant digits).
"""

from __future__ import annotations

import math
from typing import Any

DASH = "–"  # an empty table cell
NOT_MEASURED = "n/m"  # a value the run could not measure (the summary says why)
CSV_FLOAT_FORMAT = "%.10g"  # pandas ``to_csv(float_format=...)`` of every CSV the reports write


def as_finite(value: Any) -> float | None:
    """``float(value)`` when it is a finite number, else None."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def is_finite(value: Any) -> bool:
    """Whether ``value`` is a finite number."""
    return as_finite(value) is not None


def format_value(value: Any, kind: str = "float") -> str:
    """Fixed formatting rules (so rebuilt tables are byte-identical): about 3 significant digits.
    ``kind`` is "float", "int", "pct" (a fraction shown as a percentage) or "text"."""
    if kind == "text":
        return DASH if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)
    x = as_finite(value)
    if x is None:
        return DASH
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


def format_fixed(value: Any, digits: int = 1, scale: float = 1.0, thousands: bool = True) -> str:
    """``value * scale`` with ``digits`` decimals, with thousands separators (``1,234.5``) unless
    ``thousands`` is False (``1234.5``)."""
    x = as_finite(value)
    if x is None:
        return NOT_MEASURED
    return f"{x * scale:,.{digits}f}" if thousands else f"{x * scale:.{digits}f}"


def format_significant(value: Any, digits: int = 3) -> str:
    """``value`` with ``digits`` significant digits (``0.0123``, ``1.23e+04``)."""
    x = as_finite(value)
    return NOT_MEASURED if x is None else f"{x:.{digits}g}"


_MARKDOWN_ESCAPES = {"\\": "\\\\", "`": "\\`", "*": "\\*", "[": "\\[", "]": "\\]", "|": "\\|",
                     "<": "&lt;", ">": "&gt;", "&": "&amp;"}


def markdown_text(text: Any) -> str:
    """A user-given string (generator, workload or run name, prompt, error text) made inert in
    Markdown: markup characters are escaped, so a name like ``<b>x</b>|y`` shows as typed and
    cannot break a table. Ordinary names (letters, digits, ``-``, ``_``, ``.``) are unchanged."""
    return "".join(_MARKDOWN_ESCAPES.get(ch, ch) for ch in str(text))


def markdown_code(text: Any) -> str:
    """A user-given name as inline code (shown literally), or escaped text when it holds a backtick
    or a line break, which a code span cannot hold."""
    s = str(text)
    return markdown_text(s) if "`" in s or "\n" in s else f"`{s}`"


def markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    """The lines of a plain Markdown table (cells already formatted)."""
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return out


def node_peaks_text(peaks: Any, dtype: Any) -> str:
    """The matmul peaks a run's cells measured on their own nodes (a Ray run; FLOP/s, any order) as
    one phrase for a header or a note: ``measured on each cell's node, A-B GFLOP/s over N cell(s)``."""
    values = sorted(float(p) for p in peaks)
    return (f"measured on each cell's node, {format_fixed(values[0] / 1e9, 1, thousands=False)}-"
            f"{format_fixed(values[-1] / 1e9, 1, thousands=False)} GFLOP/s over {len(values)} cell(s) ({dtype}); "
            f"each cell's fraction of peak is of its node's")
