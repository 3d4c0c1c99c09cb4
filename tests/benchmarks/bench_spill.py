"""Larger than memory, same results: the pipeline on one world with DuckDB capped below the size of the raw
files (it spills to <warehouse>.tmp) and with no cap, then every table of the two warehouses compared.

Not part of the quick suite. Run it with

    .venv/bin/python tests/benchmarks/bench_spill.py --size 5M --cap 400MB

The world is the scale benchmark's (bench_scale.py; reused from --work when it is there). Each run is a
fresh process, one after the other, so that its time and peak memory are its own. The comparison takes every
table of every schema and checks `EXCEPT ALL` both ways (rows with their multiplicity, floats exactly),
without the columns that name the run itself (run and batch ids, model ids, which carry the run's time,
code versions, timestamps) and without the two tables that only record runs (main.runs, build.state). It
prints a line per table, writes JSON next to the scale results, and exits 1 when any table differs.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1]))

import bench_scale  # noqa: E402

RUN_COLUMNS = {"run_id", "previous_run_id", "batch_id", "old_batch_id", "new_batch_id", "model_id", "code_version"}
RUN_TABLES = {("main", "runs"), ("build", "state")}


def compare(a: Path, b: Path) -> list[dict]:
    """Per table of `a` (base tables and views), its row count in each warehouse and the rows found in one
    and not the other, on the columns that do not name the run."""
    import duckdb

    con = duckdb.connect()
    con.execute(f"ATTACH '{a}' AS a (READ_ONLY); ATTACH '{b}' AS b (READ_ONLY)")
    tables = con.sql("""SELECT DISTINCT table_schema, table_name FROM information_schema.tables
                        WHERE table_catalog = 'a' ORDER BY ALL""").fetchall()
    out = []
    for schema, table in tables:
        if (schema, table) in RUN_TABLES:
            continue
        columns = [c for c, t in con.sql(
            """SELECT column_name, data_type FROM information_schema.columns
               WHERE table_catalog = 'a' AND table_schema = ? AND table_name = ? ORDER BY ordinal_position""",
            params=[schema, table]).fetchall() if c not in RUN_COLUMNS and not t.startswith("TIMESTAMP")]
        cols = ", ".join(f'"{c}"' for c in columns)
        left, right = f"SELECT {cols} FROM a.{schema}.{table}", f"SELECT {cols} FROM b.{schema}.{table}"
        n_a, n_b = (con.sql(f"SELECT count(*) FROM {db}.{schema}.{table}").fetchall()[0][0] for db in ("a", "b"))
        only_a = con.sql(f"SELECT count(*) FROM ({left} EXCEPT ALL {right})").fetchall()[0][0]
        only_b = con.sql(f"SELECT count(*) FROM ({right} EXCEPT ALL {left})").fetchall()[0][0]
        out.append({"table": f"{schema}.{table}", "rows_capped": n_a, "rows_uncapped": n_b,
                    "only_capped": only_a, "only_uncapped": only_b, "columns_compared": len(columns)})
        print(f"  {schema}.{table:<28} {n_a:>12,} rows  {'equal' if only_a == only_b == 0 else f'DIFFERS: {only_a} / {only_b}'}",
              flush=True)
    con.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="5M", help="Input rows, e.g. 5M.")
    parser.add_argument("--cap", default="400MB", help="DuckDB memory_limit of the capped run.")
    parser.add_argument("--work", default="/tmp/transship-bench")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--out", default=str(bench_scale.RESULTS))
    args = parser.parse_args()
    rows = bench_scale.parse_size(args.size)
    world = Path(args.work) / f"world-{rows}"
    if not (world / "truth.json").exists():
        from worlds.scale import write_scale_world

        shutil.rmtree(world, ignore_errors=True)
        write_scale_world(world, rows, seed=args.seed, hold_back=1)
    data = world / "data"
    for f in sorted((world / "releases").glob("*/*.csv")):  # the world without its held-back month
        (data / f.name).unlink(missing_ok=True)
    input_gb = sum(p.stat().st_size for p in data.glob("*.csv")) / 1e9
    runs = {}
    for name, cap in (("capped", args.cap), ("uncapped", None)):
        warehouse = world / f"spill-{name}.duckdb"
        for stale in (warehouse, Path(f"{warehouse}.wal"), world / f"reports-{name}"):
            shutil.rmtree(stale, ignore_errors=True) if stale.is_dir() else stale.unlink(missing_ok=True)
        print(f"{name} run (memory_limit {cap or 'DuckDB default'}) ...", flush=True)
        got = bench_scale.measure("run", work=str(world), data=str(data), warehouse=str(warehouse),
                                  reports=str(world / f"reports-{name}"), memory_limit=cap)
        runs[name] = {"memory_limit": cap, "seconds": got["process_wall_s"], "peak_rss_gb": got["peak_rss_gb"],
                      "status": got["status"], "warehouse": str(warehouse)}
        print(f"  {got['status']} in {got['process_wall_s']} s, peak RSS {got['peak_rss_gb']} GiB", flush=True)
    print("comparing every table ...", flush=True)
    tables = compare(Path(runs["capped"]["warehouse"]), Path(runs["uncapped"]["warehouse"]))
    differing = [t["table"] for t in tables if t["only_capped"] or t["only_uncapped"]]
    doc = {"when": datetime.now(timezone.utc).isoformat(timespec="seconds"), "input_rows_asked": rows,
           "input_gb": round(input_gb, 3), "runs": runs, "tables": tables, "differing": differing}
    out = Path(args.out) / f"spill-{datetime.now(timezone.utc).strftime('%Y%m%d')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2), encoding="utf-8")
    print(f"\n{len(tables) - len(differing)} of {len(tables)} tables equal"
          + (f"; differing: {', '.join(differing)}" if differing else "") + f"\nwritten: {out}")
    raise SystemExit(1 if differing else 0)


if __name__ == "__main__":
    main()
