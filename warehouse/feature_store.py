"""features.route_features in the warehouse: the mart's legs read for the features (whole, or in batches of
whole products), the features written, and the scoring inputs read back per model group or per route.

The feature arithmetic is in features/; what runs it batch by batch is flows/stages/featurize.py. This
module is the SQL between them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import duckdb
import polars as pl

from warehouse.connection import ROW_GROUP_ROWS, release_memory
from warehouse.contracts import KEYS, ROUTE_KEYS

# Each period's position on its frequency's grid (features.route_features.has_history counts by it), from
# the grid's first periods g.
GRID_ORIGIN = "SELECT frequency, min(period) AS first_period FROM marts.fct_route_legs GROUP BY frequency"
_LEGS = """
SELECT m.*, CASE m.frequency WHEN 'M' THEN datediff('month', g.first_period, m.period)
                             ELSE datediff('year', g.first_period, m.period) END AS grid_index
FROM marts.fct_route_legs AS m JOIN {origin} AS g USING (frequency)
"""
LEGS_WITH_GRID_INDEX = _LEGS.format(origin=f"({GRID_ORIGIN})")
# The same for one batch: the grid's first periods from the temp table _grid_origin (made once: a batch that
# worked them out again scanned the whole mart), and only the batch's hs_code range, so that DuckDB skips
# the row groups of other products (the mart is written in product order).
BATCH_LEGS = _LEGS.format(origin="_grid_origin") + "WHERE m.hs_code BETWEEN ? AND ?\n"
# The routes of _silent_routes in one batch's hs_code range, for a batch's anti join: against all of them
# (212 k routes at 20 M) the join took twice as long as the rest of the read (0.35 s of a 20 M batch against
# 0.15 s). Parameters: the range's first and last hs_code.
SILENT_IN_RANGE = "SELECT frequency, mineral, hs_code, hub_iso3 FROM _silent_routes WHERE hs_code BETWEEN ? AND ?"

# models.scoring.scoreable in SQL, over features.route_features.
SCOREABLE_SQL = ("has_history AND (cn_to_hub_kg_window + cn_to_hub_kg_prior + hub_to_us_kg_window"
                 " + hub_to_us_kg_prior + hub_to_us_usd_window + cn_to_hub_usd_window) > 0")


def mineral_floors(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Each mineral's volume floors (ref.minerals): mineral, volume_floor_kg, volume_floor_usd."""
    return con.sql("SELECT mineral, volume_floor_kg, volume_floor_usd FROM ref.minerals").pl()


def all_legs(con: duckdb.DuckDBPyConnection, screen: bool = False) -> pl.DataFrame:
    """Every row of marts.fct_route_legs with its grid_index; with `screen`, but for the routes
    make_silent_routes screens out."""
    if not screen:
        return con.sql(LEGS_WITH_GRID_INDEX).pl()
    with silent_routes(con, screen=True):
        return con.sql(f"SELECT * FROM ({LEGS_WITH_GRID_INDEX}) "
                       "ANTI JOIN _silent_routes USING (frequency, mineral, hs_code, hub_iso3)").pl()


def no_legs(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """marts.fct_route_legs' columns with grid_index, no row."""
    return con.sql(LEGS_WITH_GRID_INDEX + " LIMIT 0").pl()


def make_grid_origin(con: duckdb.DuckDBPyConnection) -> None:
    """Temp table _grid_origin: each frequency's first period (BATCH_LEGS reads it)."""
    con.execute(f"CREATE OR REPLACE TEMP TABLE _grid_origin AS {GRID_ORIGIN}")


# Over a route's rows of marts.fct_route_legs: the hub never sent the US the product, and China never sent
# the hub the product by either side's account (make_silent_routes).
NO_US_LEG = "bool_and(coalesce(hub_to_us_kg, 0) = 0 AND coalesce(hub_to_us_usd, 0) = 0)"
NO_CHINA_LEG = ("bool_and(coalesce(cn_to_hub_kg, 0) = 0 AND coalesce(cn_to_hub_usd, 0) = 0"
                " AND coalesce(hub_reported_from_cn_kg, 0) = 0 AND coalesce(hub_reported_from_cn_fob_usd, 0) = 0)")


def missing_legs(con: duckdb.DuckDBPyConnection, hub_iso3: str, hs_code: str) -> list[str] | None:
    """Which legs a route of the mart never had, in words (empty: it has both), or None when the mart has no
    row of that hub and product."""
    found = con.sql(f"SELECT {NO_US_LEG}, {NO_CHINA_LEG} FROM marts.fct_route_legs WHERE hub_iso3 = ? AND hs_code = ?",
                    params=[hub_iso3, hs_code]).fetchall()
    no_us, no_china = found[0]
    if no_us is None:
        return None
    return ([f"{hub_iso3} never sent the US the product"] if no_us else []) + (
        [f"no trade of the product from China to {hub_iso3} is recorded (by China or by {hub_iso3})"]
        if no_china else [])


def make_silent_routes(con: duckdb.DuckDBPyConnection, screen: bool) -> dict[str, int]:
    """Temp table _silent_routes (frequency, mineral, hs_code, hub_iso3, route_periods): with `screen`, the
    mart's routes with a leg that never carried the product: the hub sent the US none of it in any period
    (hub_to_us_kg and hub_to_us_usd 0 or unknown throughout), which no route score can reach
    (models.evidence.silent_route_bound), or China never sent the hub any of it by either side's account
    (cn_to_hub_kg, cn_to_hub_usd and the hub's own imports from China 0 or unknown throughout), so that there
    were no Chinese goods to pass on (models.evidence.china_silent_route_bound). Empty without `screen`.
    The features skip them (batch_legs, changed_legs). Made from temp table _route_spans (every route of
    the mart, its first period, which leg it lacks), one pass over the mart, which
    rescope_flipped_routes reads too. Returns the routes and route-periods screened, and the routes of each
    kind (a route with neither leg counts in both)."""
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _route_spans AS
        SELECT *, no_us_leg OR no_china_leg AS silent FROM (
            SELECT frequency, mineral, hs_code, hub_iso3, count(*) AS route_periods, min(period) AS first_period,
                   {NO_US_LEG} AS no_us_leg, {NO_CHINA_LEG} AS no_china_leg
            FROM marts.fct_route_legs GROUP BY ALL)""")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _silent_routes AS
        SELECT frequency, mineral, hs_code, hub_iso3, route_periods, no_us_leg, no_china_leg FROM _route_spans
        WHERE silent AND {'true' if screen else 'false'}""")
    routes, periods, no_us, no_china = con.sql(
        "SELECT count(*), coalesce(sum(route_periods), 0), count(*) FILTER (WHERE no_us_leg),"
        " count(*) FILTER (WHERE no_china_leg) FROM _silent_routes").fetchall()[0]
    return {"routes": int(routes), "route_periods": int(periods), "routes_without_us_leg": int(no_us),
            "routes_without_china_leg": int(no_china)}


@contextmanager
def silent_routes(con: duckdb.DuckDBPyConnection, screen: bool) -> Iterator[dict[str, int] | None]:
    """The temp tables of make_silent_routes for the block, dropped after it; yields make_silent_routes'
    counts. Inside a block that made them already (the build's own, with the run's `screen`), they are
    left as they are and it yields None: the feature functions that read them also run on their own (tests,
    the harness), where nothing is screened unless asked."""
    if temp_exists(con, "_silent_routes"):
        yield None
        return
    counts = make_silent_routes(con, screen)
    try:
        yield counts
    finally:
        drop_temp(con, "_silent_routes", "_route_spans")


def rescope_flipped_routes(con: duckdb.DuckDBPyConnection) -> int:
    """An incremental build's routes whose place in _silent_routes changed with this build's rows: a route
    that now has features to drop (silent now, rows in features.route_features) or to compute from its
    first period (not silent now, no rows) changes from its first period in the mart, as in a full build:
    build.dirty_routes says so. Only a changed route can change its place. Returns how many."""
    # Silent with rows to drop, or not silent with none: flipped. A route with no row in the mart (gone)
    # keeps its first period: its rows go from there anyway. Hash joins throughout: a correlated EXISTS per
    # dirty route took 4.6 s at 20 M, reading the first periods from the mart again 2.5 s of it.
    changed = con.execute("""
        UPDATE build.dirty_routes AS d SET first_period = r.first_period
        FROM (SELECT r.frequency, r.mineral, r.hs_code, r.hub_iso3, r.first_period
              FROM _route_spans AS r
              LEFT JOIN _silent_routes AS s USING (frequency, mineral, hs_code, hub_iso3)
              LEFT JOIN (SELECT DISTINCT frequency, mineral, hs_code, hub_iso3, true AS featured
                         FROM features.route_features) AS f USING (frequency, mineral, hs_code, hub_iso3)
              WHERE (s.hub_iso3 IS NOT NULL) = coalesce(f.featured, false)) AS r
        WHERE d.frequency = r.frequency AND d.mineral = r.mineral AND d.hs_code = r.hs_code
          AND d.hub_iso3 = r.hub_iso3 AND d.first_period > r.first_period""").fetchall()
    return int(changed[0][0]) if changed else 0


def temp_exists(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    return bool(con.sql("SELECT count(*) FROM duckdb_tables() WHERE temporary AND table_name = ?",
                        params=[table]).fetchall()[0][0])


def drop_temp(con: duckdb.DuckDBPyConnection, *tables: str) -> None:
    for table in tables:
        con.execute(f"DROP TABLE IF EXISTS {table}")


def _hs_range(con: duckdb.DuckDBPyConnection, table: str, batch: int) -> list[str]:
    """The smallest and largest hs_code of a batch of the temp table `table`."""
    return list(con.sql(f"SELECT min(hs_code), max(hs_code) FROM {table} WHERE batch = ?", params=[batch]).fetchall()[0])


def product_batches(con: duckdb.DuckDBPyConnection, table: str, batch_rows: int, only_routes: str = "") -> list[int]:
    """Temp table `table` (frequency, mineral, hs_code, batch): whole products in key order, about batch_rows
    of the mart's route-periods a batch (a route's periods never straddle two batches), counting only the
    routes of the table `only_routes` when given, and never those of _silent_routes (make_silent_routes).
    Returns the batch numbers in order. Counted from the routes' own counts (_route_spans, made with
    _silent_routes): one row a route, not a scan of the mart with two joins on its rows (1.8 s at 20 M)."""
    routes = f" SEMI JOIN {only_routes} USING (frequency, mineral, hs_code, hub_iso3)" if only_routes else ""
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE {table} AS
        SELECT frequency, mineral, hs_code,
               (sum(n) OVER (ORDER BY frequency, mineral, hs_code) - n) // {int(batch_rows)} AS batch
        FROM (SELECT frequency, mineral, hs_code, sum(route_periods)::BIGINT AS n FROM _route_spans{routes}
              ANTI JOIN _silent_routes USING (frequency, mineral, hs_code, hub_iso3)
              GROUP BY frequency, mineral, hs_code)""")
    return [b for (b,) in con.sql(f"SELECT DISTINCT batch FROM {table} ORDER BY batch").fetchall()]


def batch_legs(con: duckdb.DuckDBPyConnection, batch: int) -> pl.DataFrame:
    """The mart rows (with grid_index) of one batch of the temp table _feature_batches, but for the routes of
    _silent_routes."""
    hs_range = _hs_range(con, "_feature_batches", batch)
    return con.sql(f"""SELECT l.* FROM ({BATCH_LEGS}) AS l
                       JOIN _feature_batches AS b USING (frequency, mineral, hs_code)
                       ANTI JOIN ({SILENT_IN_RANGE}) AS s USING (frequency, mineral, hs_code, hub_iso3)
                       WHERE b.batch = ?""", params=[*hs_range, *hs_range, batch]).pl()


def make_changed_starts(con: duckdb.DuckDBPyConnection, batches: str | None, monthly_reach: tuple[int, int],
                        annual_reach: tuple[int, int]) -> None:
    """Temp table _changed_starts: for each route of build.dirty_routes, its batch (from the temp table
    `batches`; 0 without), its first changed period, the running spell of signal_persistence just before it
    (so that a long spell counts on from where it was), the period its legs are read from (every row whose
    features are kept or whose baselines are read, with its whole lookback behind it) and the period from
    which rows are needed (those whose robust baselines are read), and a number per route in key order.
    `*_reach`: (lookback, baseline reach) in periods of each frequency. Made once for all batches: the
    spells are read from features.route_features, the largest table."""
    (m_look, m_base), (a_look, a_base) = monthly_reach, annual_reach
    batch = "0" if batches is None else "b.batch"
    in_batch = "" if batches is None else f"""
            JOIN {batches} AS b ON b.frequency = d.frequency AND b.mineral = d.mineral AND b.hs_code = d.hs_code"""
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _changed_starts AS
        WITH seeds AS (
            SELECT d.frequency, d.mineral, d.hs_code, d.hub_iso3, d.first_period, {batch} AS batch,
                   coalesce(f.signal_persistence, 0) AS spell
            FROM build.dirty_routes AS d{in_batch}
            LEFT JOIN features.route_features AS f
              ON f.frequency = d.frequency AND f.mineral = d.mineral AND f.hs_code = d.hs_code
             AND f.hub_iso3 = d.hub_iso3
             AND f.period = CASE d.frequency WHEN 'M' THEN d.first_period - INTERVAL 1 MONTH
                                             ELSE d.first_period - INTERVAL 1 YEAR END
        )
        SELECT frequency, mineral, hs_code, hub_iso3, batch, first_period,
               row_number() OVER (ORDER BY frequency, mineral, hs_code, hub_iso3) AS route_no,
               CASE frequency
                   WHEN 'M' THEN first_period - to_months(({int(m_look) + int(m_base)} + spell)::INTEGER)
                   ELSE first_period - to_years(({int(a_look) + int(a_base)} + spell)::INTEGER)
               END AS read_from,
               CASE frequency
                   WHEN 'M' THEN first_period - to_months((spell + {int(m_base)})::INTEGER)
                   ELSE first_period - to_years((spell + {int(a_base)})::INTEGER)
               END AS needed_from
        FROM seeds""")


def changed_legs(con: duckdb.DuckDBPyConnection, batch: int, route_no: str, needed: str) -> pl.DataFrame:
    """The mart rows one batch of _changed_starts needs, each with its route's first changed period
    (_first_changed), its route number (column `route_no`) and whether its baselines are needed (`needed`);
    none of the routes of _silent_routes."""
    # The batch's hs_code range, and its earliest read_from as a filter on the mart's scan: a new month reads
    # about half of each route's periods, and the joins then see only those (at 20 M, 8.1 s -> 6.4 s over the
    # 16 batches).
    lo, hi, first = con.sql("SELECT min(hs_code), max(hs_code), min(read_from)::DATE FROM _changed_starts"
                            " WHERE batch = ?", params=[batch]).fetchall()[0]
    hs_range = [lo, hi]
    return con.sql(f"""
        SELECT l.*, s.first_period AS _first_changed, s.route_no AS {route_no}, l.period >= s.needed_from AS {needed}
        FROM ({BATCH_LEGS} AND m.period >= ?) AS l
        JOIN (SELECT * FROM _changed_starts WHERE batch = ?) AS s USING (frequency, mineral, hs_code, hub_iso3)
        ANTI JOIN ({SILENT_IN_RANGE}) AS q USING (frequency, mineral, hs_code, hub_iso3)
        WHERE l.period >= s.read_from
    """, params=[*hs_range, first, batch, *hs_range]).pl()


def write_features(con: duckdb.DuckDBPyConnection, features: pl.DataFrame, create: bool = False) -> None:
    """Append `features` to features.route_features as they are (DuckDB keeps insertion order: the caller
    hands them in key order), or replace the table with them (`create`)."""
    con.register("_features", features)
    try:
        verb = "CREATE OR REPLACE TABLE features.route_features AS" if create else "INSERT INTO features.route_features BY NAME"
        con.execute(f"{verb} SELECT * FROM _features")
    finally:
        con.unregister("_features")


class RowGroupWriter:
    """Appends frames to features.route_features (write_features) in whole DuckDB row groups: each write
    takes the rows held back from the frames before and the new frame, writes the largest whole number of row
    groups of them and holds the rest (under one row group) for the next; `flush` writes what is held. The
    same rows in the same order as a write per frame, without the partial row group each such write left for
    the next to fill and rewrite: the 5 M world's feature writes (15 batches of whole products, about 250,000
    route-periods each) 20.4-24.4 s -> 15.9 s. What it holds is under a row group of rows, but as a slice of the
    batch it came from, which keeps that batch's buffers (a third batch's memory at most, ~0.3 GB). `create`: the first
    write replaces the table (with no row when the first frame is under a row group)."""

    def __init__(self, create: bool = False) -> None:
        self.create = create
        self.held: pl.DataFrame | None = None

    def write(self, con: duckdb.DuckDBPyConnection, features: pl.DataFrame) -> None:
        frame = features if self.held is None else pl.concat([self.held, features], how="vertical_relaxed",
                                                             rechunk=False)
        whole = frame.height // ROW_GROUP_ROWS * ROW_GROUP_ROWS
        if whole or self.create:
            write_features(con, frame.slice(0, whole), create=self.create)
            self.create = False
        self.held = frame.slice(whole) if frame.height > whole else None

    def flush(self, con: duckdb.DuckDBPyConnection) -> None:
        if self.held is not None:
            write_features(con, self.held, create=self.create)
        self.held, self.create = None, False


def feature_count(con: duckdb.DuckDBPyConnection) -> int:
    return con.sql("SELECT count(*) FROM features.route_features").fetchall()[0][0]


def model_groups(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    """The (frequency, mineral) groups of features.route_features, in order."""
    return [tuple(r) for r in con.sql("SELECT DISTINCT frequency, mineral FROM features.route_features ORDER BY ALL").fetchall()]


def feature_rows(con: duckdb.DuckDBPyConnection, keys: pl.DataFrame, columns: list[str]) -> pl.DataFrame:
    """`columns` of features.route_features for `keys` (frequency, mineral, hs_code, hub_iso3, period), in the
    order of `keys`."""
    con.register("_keys", keys.select(KEYS).with_row_index("_order"))
    try:
        # The rows found on the key columns first, then only the asked-for columns read by rowid: a join that
        # read every column of every row it scanned was several times slower on a large group.
        return con.sql(f"""WITH found AS (SELECT f.rowid AS _rid, k._order FROM _keys AS k
                                          JOIN features.route_features AS f
                                          USING (frequency, mineral, hs_code, hub_iso3, period))
                           SELECT {', '.join('f.' + c for c in columns)}
                           FROM features.route_features AS f JOIN found ON f.rowid = found._rid
                           ORDER BY found._order""").pl()
    finally:
        con.unregister("_keys")


# A model group is read in pieces of about this many route-periods (whole products each, in key order): one
# query for a section of 4 M route-periods held DuckDB's sort of all of it beside the frame it became (a
# frame of 1.0 GB on the 20 M world: scoring every group peaked at 3.90 GB, 3.05 GB read as below).
GROUP_READ_ROWS = 500_000


def group_rows(con: duckdb.DuckDBPyConnection, frequency: str, mineral: str, columns: list[str],
               after: Any = None, piece_rows: int = GROUP_READ_ROWS) -> pl.DataFrame:
    """A group's scoreable rows (those after a period, when given), in key order: `columns`, one chunk per
    column. Filtered and sorted here, a large group reaches Polars once; read in pieces of whole products
    (group_pieces) when larger than `piece_rows`, DuckDB's memory given back between them."""
    where = f"frequency = ? AND mineral = ? AND {SCOREABLE_SQL}" + (" AND period > ?::DATE" if after is not None else "")
    params = [frequency, mineral] + ([after] if after is not None else [])
    query = f"SELECT {', '.join(columns)} FROM features.route_features WHERE {where}"
    order = " ORDER BY frequency, mineral, hs_code, hub_iso3, period"
    pieces = group_pieces(con, where, params, piece_rows)
    if len(pieces) <= 1:
        return con.sql(query + order, params=params).pl().rechunk()
    frames = []
    for low, high in pieces:
        # Copied out of the buffers DuckDB exported before they are handed back to it.
        frames.append(con.sql(query + " AND hs_code BETWEEN ? AND ?" + order, params=[*params, low, high]).pl().rechunk())
        release_memory(con)
    # One chunk per column, made here while nothing else is held: Polars copies a frame of many chunks into
    # one the first time an expression reads it beside a column made from NumPy (scoring adds several), and
    # then the group was in memory twice. Column by column, each let go of in the pieces once joined: the
    # group is held once and one column twice, not the whole frame twice.
    return pl.DataFrame([pl.concat([frame.drop_in_place(name) for frame in frames], rechunk=True)
                         for name in frames[0].columns])


def group_pieces(con: duckdb.DuckDBPyConnection, where: str, params: list[Any], piece_rows: int) -> list[tuple[str, str]]:
    """The hs_code ranges (first, last) that cut the rows matching `where` into pieces of about `piece_rows`
    route-periods, whole products each (a product larger than that is a piece of its own), in order. One
    piece for all when a row has no hs_code (a range cannot hold it; the key forbids it anyway)."""
    products = con.sql(f"SELECT hs_code, count(*) AS n FROM features.route_features WHERE {where} GROUP BY hs_code"
                       " ORDER BY hs_code", params=params).pl()
    if products.is_empty() or products["hs_code"].null_count():
        return [(None, None)]
    start = products["n"].cum_sum() - products["n"]
    pieces = products.with_columns(piece=start // max(1, piece_rows)).group_by("piece", maintain_order=True)
    return [tuple(r) for r in pieces.agg(pl.col("hs_code").first().alias("low"), pl.col("hs_code").last().alias("high"))
                                   .drop("piece").rows()]


def all_group_rows(con: duckdb.DuckDBPyConnection, frequency: str, mineral: str, columns: list[str]) -> pl.DataFrame:
    """Every row of a group, scoreable or not: `columns` (read when nothing in it is scoreable, to say why)."""
    return con.sql(f"SELECT {', '.join(columns)} FROM features.route_features WHERE frequency = ? AND mineral = ?",
                   params=[frequency, mineral]).pl()


def route_rows(con: duckdb.DuckDBPyConnection, frequency: str, mineral: str, routes: pl.DataFrame,
               columns: list[str]) -> pl.DataFrame:
    """The scoreable rows (`columns`) of a group's `routes` (hs_code, hub_iso3 and the group's keys): every
    scored period of those routes."""
    con.register("_routes", routes.select(ROUTE_KEYS))
    try:
        return con.sql(f"""SELECT {', '.join(columns)} FROM features.route_features
                           SEMI JOIN _routes USING (frequency, mineral, hs_code, hub_iso3)
                           WHERE frequency = ? AND mineral = ? AND {SCOREABLE_SQL}
                           ORDER BY hs_code, hub_iso3, period""", params=[frequency, mineral]).pl()
    finally:
        con.unregister("_routes")
