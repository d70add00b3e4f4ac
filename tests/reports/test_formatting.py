"""Number formatting of the report tables: fixed rules, so rebuilt tables are byte-identical."""

from __future__ import annotations

from reports.formatting import format_value


def test_format_value_rules() -> None:
    assert [format_value(v) for v in (1234.5, 12.345, 1.2345, 0.12345, 0.0012345, 0, float("nan"))] == [
        "1234", "12.3", "1.23", "0.123", "1.23e-03", "0", "–"]
    assert format_value(0.25, "pct") == "25.0%" and format_value(3.6, "int") == "4"
