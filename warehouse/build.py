"""Run the SQL models, layer by layer, and check each relation's key: in full, or only the periods and
routes that new input touched.

Each `.sql` file under `sql/<layer>/` is the query of the relation it is named after. Layers run in BUILD_ORDER
order (dependencies first). A full build replaces each relation with its query (the mart's query runs
over a batch of products at a time, to bound memory). An incremental build
(`BuildPlan.mode == "incremental"`) runs the same queries over a scope and replaces only the rows in it:

- staging and intermediate: the (frequency, period) pairs that this run's new raw rows carry (new exchange
  rates add their months, and for annual data their years). Every window in them partitions by period
  (year-to-date months by the file's year, read whole), so a period rebuilds alone. Staging types, maps and
  converts each source's records; intermediate joins and sums them into flows (int_flows), the records set
  aside (int_flows_excluded) and the revisions (int_revisions).
- marts.fct_route_legs: those periods, the periods the grid gained, and every period of a product that
  gained or lost a route (a new route needs its whole history of zeros and totals).

Then `build.dirty_routes` says, per route, from which period its legs changed: the features and scores are
rebuilt from there on (flows/stages/featurize.py, flows/stages/score.py). Both modes give the same tables for the same raw rows; the
queries' sums are exact (decimal) so that the order rows are added in cannot change a figure.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from warehouse import faults
from warehouse.connection import execute_script, rows, scalar
from warehouse.contracts import KEYS, SQL_DIR, contracts, relation_sql

# The relations a build runs, in order (dependencies first), with their keys from the contracts.
BUILD_ORDER = ("staging.stg_comtrade__records", "staging.stg_national__records", "intermediate.int_flows",
               "intermediate.int_flows_excluded", "intermediate.int_revisions", "marts.fct_route_legs")


def build_models_order() -> tuple[tuple[str, str, tuple[str, ...]], ...]:
    """(layer, relation, key columns) of each relation a build runs, in BUILD_ORDER."""
    return tuple((*name.split("."), contracts()[name].key) for name in BUILD_ORDER)


# The scope as the SQL models see it (temporary macros over temporary tables of this connection). The scope
# tables' columns have names of their own (scope_*): a macro's argument `frequency` would otherwise bind to
# the scope table's column inside the subquery.
STAGING_MACROS = """
CREATE OR REPLACE TEMP MACRO in_scope(f, p) AS
    EXISTS (SELECT 1 FROM _scope_periods WHERE scope_frequency = f AND scope_period = p);
CREATE OR REPLACE TEMP MACRO in_scope_year(f, p) AS
    EXISTS (SELECT 1 FROM _scope_periods WHERE scope_frequency = f AND year(scope_period) = year(p));
"""
MART_MACRO = """
CREATE OR REPLACE TEMP MACRO in_mart_scope(f, h, p) AS
    EXISTS (SELECT 1 FROM _mart_periods WHERE scope_frequency = f AND scope_period = p)
    OR EXISTS (SELECT 1 FROM _mart_hs6 WHERE scope_frequency = f AND scope_hs6 = h);
"""


class KeyViolation(RuntimeError):
    """A relation's declared key is not unique or has nulls: a bug or a source the rules do not cover."""


@dataclass(frozen=True)
class BuildPlan:
    """How this run builds: "full" (every row) or "incremental" (the rows new input touches), and why."""

    mode: str
    reason: str
    run_id: str | None = None
    fingerprint: dict[str, str] | None = None


def ensure_build_state(con: duckdb.DuckDBPyConnection) -> None:
    execute_script(con, relation_sql("ddl", "build"))


def source_fingerprint(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def package_sources(*packages: Path) -> list[Path]:
    """Every Python module of the packages, in a fixed order."""
    return sorted(path for package in packages for path in Path(package).rglob("*.py"))


def model_sources(root: Path) -> list[Path]:
    """What scores are computed by besides the libraries: every module of models/ and the learned combiner
    it ships (models/combiner.json: a retrained combiner scores differently)."""
    return [*package_sources(root / "models"), root / "models" / "combiner.json"]


def scoring_code_fingerprint() -> str:
    """A hash of what turns feature rows into scores: the scoring code and the versions of the libraries it
    runs on. Two processes with the same hash score the same rows identically."""
    import numpy
    import polars
    import sklearn

    root = Path(__file__).resolve().parent.parent
    code = source_fingerprint(model_sources(root))
    libraries = f"scikit-learn {sklearn.__version__}, numpy {numpy.__version__}, polars {polars.__version__}"
    return f"{code} ({libraries})"


def loading_code_fingerprint() -> str:
    """A hash of what turns a trade file into the rows loaded (the readers and loaders) and the version of
    Polars they run on: two processes with the same hash read a file into the same frame."""
    import polars

    root = Path(__file__).resolve().parent
    code = source_fingerprint(package_sources(root))
    return f"{code} (polars {polars.__version__})"


def fingerprint(con: duckdb.DuckDBPyConnection, parameters: dict[str, Any]) -> dict[str, str]:
    """What the built tables depend on besides the raw rows, one hash per part: the reference tables
    (catalogue, countries, concordance, units, settings), the SQL models, the feature and scoring code, and
    the feature and scoring parameters. A change in any part makes the next build a full one."""
    root = Path(__file__).resolve().parent.parent
    ref = hashlib.sha256()
    for table in ("ref.catalogue_codes", "ref.minerals", "ref.countries", "ref.hs_concordance", "ref.qty_units",
                  "ref.source_settings"):
        ref.update(table.encode() + con.sql(f"SELECT * FROM {table} ORDER BY ALL").pl().write_csv().encode())
    return {
        "reference tables": ref.hexdigest()[:16],
        "SQL models": source_fingerprint([*SQL_DIR.glob("staging/*.sql"), *SQL_DIR.glob("intermediate/*.sql"),
                                         *SQL_DIR.glob("marts/*.sql")]),
        # Every module of the packages that compute features and scores (a module added to one counts).
        "feature and scoring code": source_fingerprint([*package_sources(root / "features"), *model_sources(root)]),
        "parameters": hashlib.sha256(json.dumps(parameters, sort_keys=True, default=str).encode()).hexdigest()[:16],
    }


def plan_build(con: duckdb.DuckDBPyConnection, run_id: str, parameters: dict[str, Any], full: bool = False) -> BuildPlan:
    """Full when asked, on the first build, or when the reference tables, the models' code or the
    parameters changed since the last published build; incremental otherwise."""
    ensure_build_state(con)
    now = fingerprint(con, parameters)
    if full:
        return BuildPlan("full", "asked for (--full)", run_id, now)
    built = scalar(con, "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'features' "
                        "AND table_name = 'route_features'")
    stored = rows(con, "SELECT value FROM build.state WHERE key = 'fingerprint'")
    if not built or not stored:
        return BuildPlan("full", "first build of this warehouse", run_id, now)
    before = json.loads(stored[0][0])
    changed = [part for part in now if before.get(part) != now[part]]
    if changed:
        return BuildPlan("full", f"{', '.join(changed)} changed since the last build", run_id, now)
    return BuildPlan("incremental", "only the periods and routes new input touches", run_id, now)


def check_key(con: duckdb.DuckDBPyConnection, relation: str, key: tuple[str, ...]) -> None:
    cols = ", ".join(key)
    nulls = " OR ".join(f"{c} IS NULL" for c in key)
    # Grouped by the key's hash first (one integer, not several strings: half the time on the marts); only
    # rows whose hash repeats are grouped by the key itself.
    dup = next(iter(rows(con, f"""
        WITH repeated AS (SELECT hash({cols}) AS _h FROM {relation} GROUP BY _h HAVING count(*) > 1)
        SELECT {cols}, count(*) AS n FROM {relation} WHERE hash({cols}) IN (SELECT _h FROM repeated)
        GROUP BY ALL HAVING count(*) > 1 LIMIT 1""")), None)
    if dup:
        raise KeyViolation(f"{relation}: key ({cols}) is not unique, e.g. {dup[:-1]} appears {dup[-1]} times")
    if scalar(con, f"SELECT count(*) FROM {relation} WHERE {nulls}"):
        raise KeyViolation(f"{relation}: a key column ({cols}) has NULLs")


def _scope_staging(con: duckdb.DuckDBPyConnection, plan: BuildPlan) -> None:
    """_scope_periods: every period in raw (full), or those of this run's new rows (incremental)."""
    new = "" if plan.mode == "full" else "WHERE batch_id = $run_id"
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _scope_periods AS
        SELECT DISTINCT freq_code AS scope_frequency, period AS scope_period FROM raw.comtrade_records {new}
        UNION SELECT DISTINCT frequency, period FROM raw.national_records {new}
        UNION SELECT DISTINCT 'M', period FROM raw.fx_rates {new}
        UNION SELECT DISTINCT 'A', date_trunc('year', period)::DATE FROM raw.fx_rates {new}
    """, {"run_id": plan.run_id} if new else None)
    con.execute(STAGING_MACROS)


def _replace(con: duckdb.DuckDBPyConnection, relation: str, query: str, key: tuple[str, ...], delete_where: str | None) -> int:
    """Full (delete_where None): replace the relation with the query. Else delete the rows in scope and
    insert the query's rows (the same scope); the key is checked on the new rows. Returns rows written."""
    if delete_where is None:
        con.execute(f"CREATE OR REPLACE TABLE {relation} AS {query}")
        check_key(con, relation, key)
        return scalar(con, f"SELECT count(*) FROM {relation}")
    con.execute(f"CREATE OR REPLACE TEMP TABLE _delta AS {query}")
    check_key(con, "_delta", key)
    con.execute(f"DELETE FROM {relation} WHERE {delete_where}")
    con.execute(f"INSERT INTO {relation} BY NAME SELECT * FROM _delta")
    return scalar(con, "SELECT count(*) FROM _delta")


# Route-periods per query of a full mart build (~30 columns each), sized from DuckDB's memory limit: a batch
# needs about 100 bytes a route-period (4 M fitted in 400 MB; a whole 5 M-row world's mart, 8 M, did not fit
# in 750 MB), and is given twice that. Each batch rescans intermediate.int_flows, so batches stay as large as
# the memory allows, within MART_BATCH_BOUNDS.
MART_BYTES_PER_ROW = 200
MART_BATCH_BOUNDS = (1_000_000, 32_000_000)
_UNITS = {"bytes": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40,
          "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12}


def memory_limit_bytes(con: duckdb.DuckDBPyConnection) -> int:
    """DuckDB's memory limit on this connection in bytes (it reports it as text: '1.4 GiB')."""
    number, _, unit = str(scalar(con, "SELECT current_setting('memory_limit')")).strip().partition(" ")
    return int(float(number) * _UNITS.get(unit or "bytes", 1))


def mart_batch_rows(con: duckdb.DuckDBPyConnection) -> int:
    """Route-periods per batch of a full mart build: DuckDB's memory limit / MART_BYTES_PER_ROW, within
    MART_BATCH_BOUNDS (1.5 GB: 7.5 M; 400 MB: 2 M; an uncapped 19 GB: 32 M)."""
    low, high = MART_BATCH_BOUNDS
    return max(low, min(high, memory_limit_bytes(con) // MART_BYTES_PER_ROW))
# The sources intermediate.int_flows can hold; fct_route_legs.sql names them to list the sources of each leg.
SOURCES = ("baci", "census", "comtrade", "gacc", "user")

# fct_route_legs.sql's two choices by source precedence: each leg's and each mirror's best source.
PRECEDENCE_FILTERS = (
    "QUALIFY source_rank = min(source_rank) OVER (PARTITION BY side, frequency, mineral, hs6, period, counterpart)",
    "QUALIFY source_rank = min(source_rank) OVER (PARTITION BY frequency, mineral, hs6, period, reporter_iso3, flow, partner_iso3)",
)


def mart_sql(con: duckdb.DuckDBPyConnection) -> str:
    """fct_route_legs.sql as this build runs it: without its choices by source precedence when every flow that
    can feed a leg (_mart_flows) has the same precedence (one source, or national releases only), where they
    would keep every row. Each is a window over every flow (the 5 M world's full build, Comtrade files only:
    26.7 s -> 20.7-22.0 s, the same table)."""
    sql = relation_sql("marts", "fct_route_legs")
    for text in PRECEDENCE_FILTERS:
        if text not in sql:
            raise KeyViolation(f"fct_route_legs.sql no longer holds {text!r}: update build.PRECEDENCE_FILTERS")
    if scalar(con, "SELECT count(DISTINCT source_rank) FROM _mart_flows") <= 1:
        for text in PRECEDENCE_FILTERS:
            sql = sql.replace(text, "-- one source precedence in this build: nothing to choose")
    return sql


def _build_mart_in_batches(con: duckdb.DuckDBPyConnection, relation: str, key: tuple[str, ...], batch_rows: int,
                           progress: Callable[[str], None]) -> int:
    """A full build of the mart, a batch of products at a time: every period of some HS6 headings per query,
    about `batch_rows` route-periods each (a product's routes never straddle two batches). One query over a
    universe of products holds more than DuckDB can spill (measured: the mart of 5 M input rows did not fit
    in 750 MB as one query; in batches of 4 M route-periods it does, and in 400 MB); a batch's memory is
    bounded by its size. Batches go in key order."""
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _mart_batches AS
        WITH per_product AS (
            SELECT r.frequency, r.hs6, min(r.mineral) AS mineral,
                   count(*) * (SELECT count(*) FROM _mart_grid AS g WHERE g.frequency = r.frequency) AS n
            FROM _mart_routes AS r GROUP BY r.frequency, r.hs6
        )
        SELECT frequency, hs6, (sum(n) OVER (ORDER BY frequency, mineral, hs6) - n) // {int(batch_rows)} AS batch
        FROM per_product
    """)
    con.execute("CREATE OR REPLACE TEMP TABLE _mart_periods AS "
                "SELECT ''::VARCHAR AS scope_frequency, NULL::DATE AS scope_period LIMIT 0")
    batches = [b for (b,) in rows(con, "SELECT DISTINCT batch FROM _mart_batches ORDER BY batch")] or [0]
    sql = mart_sql(con)
    for i, batch in enumerate(batches):
        if len(batches) > 1:
            progress(f"build: route legs, batch {i + 1} of {len(batches)}")
        con.execute("CREATE OR REPLACE TEMP TABLE _mart_hs6 AS SELECT frequency AS scope_frequency, hs6 AS scope_hs6 "
                    "FROM _mart_batches WHERE batch = ?", [batch])
        con.execute(MART_MACRO)
        verb = f"CREATE OR REPLACE TABLE {relation} AS" if i == 0 else f"INSERT INTO {relation}"
        con.execute(f"{verb} {sql}")
    con.execute("DROP TABLE _mart_batches")
    check_key(con, relation, key)
    return scalar(con, f"SELECT count(*) FROM {relation}")


def _build_mart(con: duckdb.DuckDBPyConnection, plan: BuildPlan, batch_rows: int | None = None,
                progress: Callable[[str], None] = lambda _: None) -> int:
    """marts.fct_route_legs over its scope; fills build.dirty_routes. Returns the rows written."""
    other = rows(con, "SELECT DISTINCT source FROM intermediate.int_flows WHERE NOT list_contains(?::VARCHAR[], source)",
                 [list(SOURCES)])
    if other:
        raise KeyViolation(f"intermediate.int_flows has source {other[0][0]!r}, which fct_route_legs.sql does not list "
                           f"among {', '.join(SOURCES)}: add it there and to build.SOURCES")
    con.execute(relation_sql("marts", "fct_route_legs__inputs"))
    key = tuple(KEYS)
    relation = "marts.fct_route_legs"
    if plan.mode == "full":
        written = _build_mart_in_batches(con, relation, key, batch_rows or mart_batch_rows(con), progress)
        con.execute("CREATE OR REPLACE TEMP TABLE _mart_periods AS "
                    "SELECT frequency AS scope_frequency, period AS scope_period FROM _mart_grid")
        con.execute("""INSERT INTO build.dirty_routes
                       SELECT frequency, mineral, hs_code, hub_iso3, min(period), 'full build' FROM marts.fct_route_legs
                       GROUP BY ALL""")
        return written
    # The periods in scope that are on the grid, the periods the grid gained, and every period of a product
    # that gained or lost a route.
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _mart_periods AS
        SELECT frequency AS scope_frequency, period AS scope_period FROM _mart_grid WHERE in_scope(frequency, period)
        UNION SELECT * FROM (SELECT frequency, period FROM _mart_grid EXCEPT SELECT DISTINCT frequency, period FROM marts.fct_route_legs);
        CREATE OR REPLACE TEMP TABLE _old_routes AS SELECT DISTINCT frequency, mineral, hs_code AS hs6, hub_iso3 FROM marts.fct_route_legs;
        CREATE OR REPLACE TEMP TABLE _mart_hs6 AS
        SELECT DISTINCT frequency AS scope_frequency, hs6 AS scope_hs6
        FROM ((SELECT * FROM _mart_routes EXCEPT SELECT * FROM _old_routes)
                                             UNION ALL (SELECT * FROM _old_routes EXCEPT SELECT * FROM _mart_routes));
    """)
    con.execute(MART_MACRO)
    stale = """in_mart_scope(frequency, hs_code, period)
        OR NOT EXISTS (SELECT 1 FROM _mart_grid AS g WHERE g.frequency = m.frequency AND g.period = m.period)"""
    con.execute(f"CREATE OR REPLACE TEMP TABLE _mart_old AS SELECT * FROM {relation} AS m WHERE {stale}")
    con.execute(f"CREATE OR REPLACE TEMP TABLE _delta AS {mart_sql(con)}")
    check_key(con, "_delta", key)
    con.execute(f"DELETE FROM {relation} AS m WHERE {stale}")
    con.execute(f"INSERT INTO {relation} BY NAME SELECT * FROM _delta")
    # Route-periods whose legs changed (new, gone or different figures): the features rebuild from the first.
    con.execute("""
        INSERT INTO build.dirty_routes
        SELECT frequency, mineral, hs_code, hub_iso3, min(period),
               CASE WHEN bool_and(change = 'gone') THEN 'route gone' WHEN bool_and(change = 'new') THEN 'periods added'
                    ELSE 'figures changed' END
        FROM ((SELECT *, 'new' AS change FROM (SELECT * FROM _delta EXCEPT SELECT * FROM _mart_old))
              UNION ALL BY NAME
              (SELECT *, 'gone' AS change FROM (SELECT * FROM _mart_old EXCEPT SELECT * FROM _delta)))
        GROUP BY frequency, mineral, hs_code, hub_iso3
    """)
    return scalar(con, "SELECT count(*) FROM _delta")


def build_models(con: duckdb.DuckDBPyConnection, plan: BuildPlan | None = None,
                 progress: Callable[[str], None] = lambda _: None) -> dict[str, int]:
    """Build staging, intermediate and marts from raw (full unless the plan says incremental); return the rows each
    relation now holds, and for an incremental build the rows rebuilt (`<relation> rebuilt`)."""
    plan = plan or BuildPlan("full", "asked for")
    ensure_build_state(con)
    con.execute("DELETE FROM build.rebuilt_periods; DELETE FROM build.dirty_routes")
    _scope_staging(con, plan)
    counts: dict[str, int] = {}
    for layer, name, key in build_models_order():
        relation = f"{layer}.{name}"
        if layer == "marts":
            faults.at("build")
            written = _build_mart(con, plan, progress=progress)
        else:
            delete = None if plan.mode == "full" else "in_scope(frequency, period)"
            written = _replace(con, relation, relation_sql(layer, name), key, delete)
        counts[relation] = scalar(con, f"SELECT count(*) FROM {relation}")
        if plan.mode == "incremental":
            counts[f"{relation} rebuilt"] = written
    con.execute("""INSERT INTO build.rebuilt_periods
                   SELECT 'staging', scope_frequency, scope_period FROM _scope_periods
                   UNION ALL SELECT 'marts', scope_frequency, scope_period FROM _mart_periods""")
    check_reconciled(con)
    if plan.fingerprint is not None:
        con.execute("INSERT OR REPLACE INTO build.state VALUES ('fingerprint', ?::JSON)", [json.dumps(plan.fingerprint)])
    con.execute("INSERT OR REPLACE INTO build.state VALUES ('plan', ?::JSON)",
                [json.dumps({"mode": plan.mode, "reason": plan.reason, "run_id": plan.run_id})])
    return counts


def check_reconciled(con: duckdb.DuckDBPyConnection) -> None:
    """Every loaded record is either behind a flow or set aside with a reason: none is lost on the way."""
    loaded = scalar(con, "SELECT (SELECT count(*) FROM raw.comtrade_records) + (SELECT count(*) FROM raw.national_records)")
    used = scalar(con, "SELECT coalesce(sum(records), 0) FROM intermediate.int_flows")
    aside = scalar(con, "SELECT count(*) FROM intermediate.int_flows_excluded")
    if loaded != used + aside:
        raise KeyViolation(f"staging and intermediate lost records: {loaded:,} loaded but {used:,} in flows + {aside:,} set aside")


def build_scope(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """What the last build rebuilt, in numbers a person reads: periods per layer and frequency (first to
    last), and routes whose legs changed, by kind of change."""
    periods = {
        f"{layer} {frequency}": {"periods": n, "first": str(first), "last": str(last)}
        for layer, frequency, n, first, last in rows(con, """
            SELECT layer, frequency, count(*), min(period), max(period) FROM build.rebuilt_periods
            GROUP BY ALL ORDER BY ALL""")
    }
    routes = dict(rows(con, "SELECT change, count(*) FROM build.dirty_routes GROUP BY ALL ORDER BY ALL"))
    return {"periods_rebuilt": periods, "routes_changed": routes}
