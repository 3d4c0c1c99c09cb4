"""What transship writes for people is inert: a CSV cell a spreadsheet would run as a formula is escaped, and
text from a warehouse or a file (an analyst's name or note, a file name) prints as it is in the terminal,
never as Rich markup or an emoji code."""

from __future__ import annotations

import shutil

import polars as pl

from flows.spreadsheet import spreadsheet_safe
from tests.helpers import cli
from warehouse.review import RouteRef, record_decision

FORMULAS = ["=cmd|' /C calc'!A0", "+1+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1"]


def test_cells_a_spreadsheet_would_run_start_with_an_apostrophe_and_numbers_stay_numbers():
    frame = pl.DataFrame({"text": [*FORMULAS, "Thailand", None], "n": [-1.5] * 6 + [2.0, None]})
    safe = spreadsheet_safe(frame)
    assert safe["text"].to_list() == ["'" + f for f in FORMULAS] + ["Thailand", None]
    assert safe["n"].equals(frame["n"])


def test_an_analysts_name_is_inert_in_the_flagged_csv_and_in_the_terminal(scored_warehouse, tmp_path):
    from flows.report.html import gather, write_outputs
    from warehouse.connection import connect_read_only

    live = tmp_path / "w.duckdb"
    shutil.copy(scored_warehouse[0], live)
    hostile = "=cmd|' /C calc'!A0 [bold red]:x:[/bold red]"
    record_decision(live, RouteRef(rank=1), "watching", hostile, "[link=http://x]note[/link] :warning:")
    con = connect_read_only(live)
    try:
        data = gather(con, scored_warehouse[1], 10)
    finally:
        con.close()
    data.flagged = data.flagged.with_columns(pl.lit(hostile).alias("decided_by"))  # as a list that carries it
    paths = write_outputs(tmp_path, data, 10)
    csv = paths["csv"].read_text()
    assert f"'{hostile}" in csv and f",{hostile}" not in csv
    assert pl.read_parquet(paths["parquet"])["decided_by"][0] == hostile  # the data itself is kept as it is
    history = cli("review", "--history", "--warehouse", str(live))
    assert history.returncode == 0
    for piece in ("=cmd|'", "[bold", "red]:x:[/bold red]", "[link=http://x]note[/link]", ":warning:"):
        assert piece in history.stdout  # as typed (the table may fold a long cell over two lines)
    assert "❌" not in history.stdout and "⚠" not in history.stdout
    assert cli("sql", "--warehouse", str(live), "--csv", "select analyst from review.decisions").stdout.splitlines() == [
        "analyst", f"\"'{hostile}\"" if "," in hostile else f"'{hostile}"]

