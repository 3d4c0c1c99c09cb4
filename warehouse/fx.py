"""Loader for exchange-rate tables: how many units of a currency one US dollar bought in a month.

China's customs publish values in yuan as well as dollars; a yuan file is converted in staging with the
rate for its month. There is no bundled rate table: rates are a choice (PBoC central parity monthly
average, SAFE, IMF IFS...) and the file names its source, which the report repeats.

Format (CSV, recognised by its header): `period` (YYYY-MM), `currency` (e.g. CNY), `units_per_usd`
(e.g. 7.1), `source` (free text, e.g. "PBoC central parity, monthly average"). One row per month and
currency; a later load of the same month supersedes an earlier one.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from warehouse.files import normalise_name, read_csv_text
from warehouse.national import original_record
from warehouse.raw_load import LoadResult, Prepared, append_checked, period_date, period_problems

FORMAT = "fx_rates"
COLUMNS = ("period", "currency", "unitsperusd", "source")


def looks_like_fx(header: list[str]) -> bool:
    return [normalise_name(h) for h in header] == list(COLUMNS)


_CHECK_SQL = f"""
WITH typed AS (
    SELECT *,
        try_cast(regexp_extract(period, '^(\\d{{4}})', 1) AS INTEGER) AS year_i,
        try_cast(nullif(regexp_extract(period, '^\\d{{4}}\\D?(\\d{{1,2}})$', 1), '') AS INTEGER) AS month_i,
        try_cast(units_per_usd AS DOUBLE) AS rate
    FROM incoming
)
SELECT *,
    {period_date("year_i", "month_i")} AS period_d,
    CASE
        WHEN year_i IS NULL OR month_i IS NULL OR month_i NOT BETWEEN 1 AND 12
            THEN ['period', period, 'period must be YYYY-MM']
        {period_problems(period_date("year_i", "month_i"), "period")}
        WHEN NOT regexp_full_match(coalesce(upper(trim(currency)), ''), '[A-Z]{{3}}')
            THEN ['currency', currency, 'currency must be a 3-letter ISO 4217 code such as CNY']
        WHEN rate IS NULL OR NOT isfinite(rate) OR rate <= 0 OR rate > 1e12
            THEN ['units_per_usd', units_per_usd, 'rate must be a positive number of currency units per US dollar']
        WHEN coalesce(trim(source), '') = '' THEN ['source', NULL, 'name the source of the rate']
    END AS problem
FROM typed
"""


def prepare_fx_file(path: Path) -> Prepared:
    frame = read_csv_text(path)
    frame = frame.rename({old: new for old, new in zip([c for c in frame.columns if c != "source_row"],
                                                        ("period", "currency", "units_per_usd", "source"))})
    frame = frame.with_columns(record=original_record(["period", "currency", "units_per_usd", "source"]))
    return Prepared(path, FORMAT, frame, write_fx)


def write_fx(con: duckdb.DuckDBPyConnection, prepared: Prepared, *, batch_id: str, file_sha256: str,
             loaded_at: str) -> LoadResult:
    path, frame = prepared.path, prepared.frame
    loaded, rejected = append_checked(
        con, frame, check_sql=_CHECK_SQL, path=path, file_sha256=file_sha256, batch_id=batch_id, loaded_at=loaded_at,
        insert_sql="""
            INSERT INTO raw.fx_rates BY NAME
            SELECT ? AS batch_id, ? AS source_file, ? AS file_sha256, source_row, ?::TIMESTAMP AS loaded_at,
                   period_d AS period, upper(trim(currency)) AS currency,
                   rate AS units_per_usd, trim(source) AS rate_source
            FROM _checked WHERE problem IS NULL ORDER BY source_row
            """,
        insert_params=[batch_id, str(path), file_sha256, loaded_at],
    )
    return LoadResult(str(path), file_sha256, FORMAT, frame.height, loaded, rejected, "")
