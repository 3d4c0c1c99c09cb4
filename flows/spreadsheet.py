"""CSV that is safe to open in a spreadsheet: a text cell that starts with =, +, -, @, a tab or a carriage return
is read by Excel, LibreOffice and Google Sheets as a formula (`=cmd|' /C calc'!A0` runs a program), so such a
cell is written with a leading apostrophe, which the spreadsheet shows as text (OWASP's CSV injection advice).
Numbers stay numbers; the Parquet files and the warehouse keep the text as it is."""

from __future__ import annotations

import polars as pl

FORMULA_START = r"^[=+\-@\t\r]"


def spreadsheet_safe(frame: pl.DataFrame) -> pl.DataFrame:
    """`frame` with every text cell that a spreadsheet would run as a formula prefixed with an apostrophe."""
    text = [name for name, dtype in frame.schema.items() if dtype == pl.String]
    return frame.with_columns(
        pl.when(pl.col(c).str.contains(FORMULA_START)).then(pl.lit("'") + pl.col(c)).otherwise(pl.col(c)).alias(c)
        for c in text)
