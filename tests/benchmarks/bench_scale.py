"""Scale benchmark: the whole pipeline on universe-sized worlds, against the floor, on this machine.

Not part of the quick suite (pytest collects test_*.py only). Run it with

    .venv/bin/python tests/benchmarks/bench_scale.py --sizes 1M,2M,5M,20M

For each size it generates a world (worlds/scale.py: every product, ~200 partners, 2019-2025
monthly, China X and US M in Comtrade bulk CSV, the last month held back as a release), then, each in a
fresh process so that its peak memory is its own:

- floor: DuckDB reads the same CSV files into a table and runs one GROUP BY over them;
- full: `transship run` on the data folder with the all-products catalogue (a new warehouse);
- incremental: the held-back month copied in, `transship run` again (the same warehouse).

It prints a table and writes JSON (tests/benchmarks/results/scale-latest.json and a dated copy): per size
input_rows, stage seconds, floor_s, ratio_to_floor, peak_rss_gb (in GiB: ru_maxrss / 1024², as every *_rss_gb
here and in the runs), rows_per_s, the incremental run's time
and share of the full run, Prefect's overhead (wall time outside the stages), and the detection figures
(routes flagged, planted routes found, precision = planted found / flagged, look-alikes flagged)
against the world's truth.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS = Path(__file__).resolve().parent / "results"
CATALOGUE = ROOT / "warehouse" / "catalogue" / "all_products.toml"


def parse_size(text: str) -> int:
    text = text.strip().upper()
    scale = {"K": 1_000, "M": 1_000_000}.get(text[-1], 1)
    return int(float(text.rstrip("KM")) * scale)


# ------------------------------------------------------------------ child processes (one measurement each)
def child_floor(data_dir: Path, memory_limit: str | None) -> dict:
    import duckdb

    db = data_dir.parent / "floor.duckdb"
    db.unlink(missing_ok=True)
    con = duckdb.connect(str(db))
    if memory_limit:
        con.execute(f"SET memory_limit = '{memory_limit}'")
    files = sorted(str(p) for p in data_dir.glob("*.csv"))
    t0 = time.perf_counter()
    con.execute(f"CREATE TABLE records AS SELECT * FROM read_csv({files!r}, header = true, all_varchar = true)")
    t1 = time.perf_counter()
    groups = con.sql("""SELECT count(*) FROM (SELECT reporterCode, partnerCode, cmdCode, period,
                                                  sum(primaryValue::DOUBLE) AS usd, sum(netWgt::DOUBLE) AS kg
                                           FROM records GROUP BY ALL)""").fetchall()[0][0]
    t2 = time.perf_counter()
    rows = con.sql("SELECT count(*) FROM records").fetchall()[0][0]
    con.close()
    db.unlink(missing_ok=True)
    return {"read_s": round(t1 - t0, 2), "group_by_s": round(t2 - t1, 2), "floor_s": round(t2 - t0, 2),
            "rows": rows, "groups": groups}


def child_run(data_dir: Path, warehouse: Path, reports: Path, memory_limit: str | None, model: str) -> dict:
    if memory_limit:
        os.environ["TRANSSHIP_DUCKDB_MEMORY_LIMIT"] = memory_limit
    from flows.cli.run import _run

    t0 = time.perf_counter()
    run = _run(data_dir, warehouse, reports, {"catalogue": CATALOGUE, "window": 5, "model_policy": model})
    wall = time.perf_counter() - t0
    return {"wall_s": round(wall, 2), "status": run.get("status"), "seconds": run.get("seconds", {}),
            "stage_peak_rss_gb": run.get("peak_rss_gb", {}),
            "build": {k: v for k, v in (run.get("build") or {}).items() if k != "seconds"},
            "layer_counts": run.get("layer_counts", {}), "error": run.get("error")}


def _child_main(args: argparse.Namespace) -> None:
    if args.child == "floor":
        out = child_floor(Path(args.data), args.memory_limit)
    else:
        out = child_run(Path(args.data), Path(args.warehouse), Path(args.reports), args.memory_limit, args.model)
    out["peak_rss_gb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2, 3)
    out["children_peak_rss_gb"] = round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024 ** 2, 3)
    Path(args.result).write_text(json.dumps(out, default=str), encoding="utf-8")


class RunFailed(RuntimeError):
    """A measured child process failed; `error` is the line that says why (the rest is in `output`)."""

    def __init__(self, kind: str, returncode: int, stdout: str, stderr: str):
        self.output = f"{stdout[-3000:]}\n{stderr[-3000:]}"
        said = [line for line in (stdout + "\n" + stderr).splitlines()
                if "Error" in line or "Exception" in line or "error" in line]
        self.error = said[-1].strip() if said else f"exit {returncode}"
        super().__init__(f"{kind} failed ({returncode}): {self.error}")


def measure(kind: str, **kw: str | None) -> dict:
    result = Path(kw["work"]) / f"{kind}.json"
    result.unlink(missing_ok=True)
    cmd = [sys.executable, __file__, "--child", kind, "--result", str(result)]
    for key in ("data", "warehouse", "reports", "memory_limit", "model"):
        if kw.get(key):
            cmd += [f"--{key.replace('_', '-')}", str(kw[key])]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0 or not result.exists():
        raise RunFailed(kind, proc.returncode, proc.stdout, proc.stderr)
    out = json.loads(result.read_text(encoding="utf-8"))
    out["process_wall_s"] = round(wall, 2)
    return out


# ------------------------------------------------------------------ detection against the truth
def detection(warehouse: Path, truth: Path) -> dict:
    import duckdb
    import polars as pl

    stories = pl.DataFrame(json.loads(truth.read_text(encoding="utf-8"))["stories"])
    con = duckdb.connect(str(warehouse), read_only=True)
    flagged = con.sql("SELECT DISTINCT hs_code, hub_iso3 FROM main.flagged_routes WHERE frequency = 'M'").pl()
    con.close()
    hit = stories.join(flagged.with_columns(flagged=True), on=["hs_code", "hub_iso3"], how="left").with_columns(
        pl.col("flagged").fill_null(False))
    by_kind = {k: {"stories": int(g.height), "flagged": int(g["flagged"].sum())}
               for (k,), g in hit.group_by(["kind"], maintain_order=True)}
    planted = by_kind.get("planted", {"stories": 0, "flagged": 0})
    return {"flagged_routes": flagged.height, "by_kind": by_kind, "planted_found": planted["flagged"],
            "planted_recall": round(planted["flagged"] / planted["stories"], 3) if planted["stories"] else None,
            "precision": round(planted["flagged"] / flagged.height, 3) if flagged.height else None,
            "other_flagged": flagged.height - sum(v["flagged"] for v in by_kind.values())}


# ------------------------------------------------------------------ one size
def run_size(rows: int, work: Path, seed: int, memory_limit: str | None, keep: bool) -> dict:
    from worlds.scale import write_scale_world

    world = work / f"world-{rows}"
    if not (world / "truth.json").exists():
        shutil.rmtree(world, ignore_errors=True)
        t0 = time.perf_counter()
        info = write_scale_world(world, rows, seed=seed, hold_back=1,
                                 progress=lambda done, total: print(f"\r  generating: {done}/{total} codes",
                                                                    end="", flush=True))
        print(f"\r  generated {info['rows_written']:,} rows, {info['codes']:,} codes in "
              f"{time.perf_counter() - t0:.0f} s")
    data = world / "data"
    warehouse, reports = world / "warehouse.duckdb", world / "reports"
    for stale in (warehouse, reports, world / "warehouse.duckdb.wal"):
        shutil.rmtree(stale, ignore_errors=True) if stale.is_dir() else stale.unlink(missing_ok=True)
    # Start from the data without the release (a previous benchmark may have copied it in).
    releases = sorted((world / "releases").glob("*/*.csv"))
    for f in releases:
        (data / f.name).unlink(missing_ok=True)
    input_rows = sum(sum(1 for _ in open(p, "rb")) - 1 for p in sorted(data.glob("*.csv")))
    input_bytes = sum(p.stat().st_size for p in data.glob("*.csv"))
    print(f"  floor ...", flush=True)
    floor = measure("floor", work=str(world), data=str(data), memory_limit=memory_limit)
    print(f"  full run ...", flush=True)
    full = measure("run", work=str(world), data=str(data), warehouse=str(warehouse), reports=str(reports),
                   memory_limit=memory_limit)
    found = detection(warehouse, world / "truth.json")
    for f in releases:
        shutil.copy(f, data / f.name)
    print(f"  incremental run (+1 month) ...", flush=True)
    # The registered models are reused: the month's cost is what this measures (a refit, asked for or
    # due after the drift check, rescores whole groups and costs what the score stage of a full run does).
    try:
        incremental = measure("run", work=str(world), data=str(data), warehouse=str(warehouse), reports=str(reports),
                              memory_limit=memory_limit, model="reuse")
    except RunFailed as failed:  # recorded, with the full run's figures, instead of losing the size
        print(f"  incremental run FAILED: {failed.error}\n{failed.output}", flush=True)
        incremental = {"failed": failed.error, "process_wall_s": None, "seconds": {}, "build": {},
                       "peak_rss_gb": None}
    for f in releases:
        (data / f.name).unlink(missing_ok=True)
    if not keep:
        shutil.rmtree(reports, ignore_errors=True)
    stages_s = sum(full["seconds"].values())
    return {
        "target_rows": rows, "input_rows": input_rows, "input_gb": round(input_bytes / 1e9, 3),
        "floor_s": floor["floor_s"], "floor": floor,
        "end_to_end_s": full["process_wall_s"], "pipeline_wall_s": full["wall_s"], "stages_s": full["seconds"],
        "stage_peak_rss_gb": full.get("stage_peak_rss_gb", {}),
        "score_stage_s": (full.get("build") or {}).get("score_seconds", {}),
        "score_stage_peak_rss_gb": (full.get("build") or {}).get("score_peak_rss_gb", {}),
        "ratio_to_floor": round(full["process_wall_s"] / floor["floor_s"], 2),
        "peak_rss_gb": full["peak_rss_gb"], "prefect_server_peak_rss_gb": full["children_peak_rss_gb"],
        "rows_per_s": round(input_rows / full["process_wall_s"]),
        "prefect_overhead_s": round(full["process_wall_s"] - stages_s, 2),
        "prefect_overhead_share": round((full["process_wall_s"] - stages_s) / full["process_wall_s"], 3),
        "route_periods": full["layer_counts"].get("marts.fct_route_legs"),
        "route_periods_scored": full["layer_counts"].get("main.route_scores"),
        "status": full["status"], "error": full["error"],
        "incremental": {"end_to_end_s": incremental["process_wall_s"], "stages_s": incremental["seconds"],
                        "build": incremental["build"], "peak_rss_gb": incremental["peak_rss_gb"],
                        "share_of_full": (round(incremental["process_wall_s"] / full["process_wall_s"], 3)
                                          if incremental["process_wall_s"] else None),
                        **({"failed": incremental["failed"]} if "failed" in incremental else {})},
        "detection": found,
    }


def table(results: list[dict]) -> str:
    head = ("rows", "floor s", "ingest", "build", "score", "report", "total s", "x floor", "RSS GiB", "rows/s",
            "incr s", "incr %", "Prefect %", "planted found", "flagged", "precision")
    lines = [" | ".join(head), " | ".join("---" for _ in head)]
    for r in results:
        s = r["stages_s"]
        planted = r["detection"]["by_kind"].get("planted", {"stories": 0, "flagged": 0})
        lines.append(" | ".join(str(x) for x in (
            f"{r['input_rows']:,}", r["floor_s"], s.get("ingest"), s.get("build"), s.get("score"), s.get("report"),
            r["end_to_end_s"], r["ratio_to_floor"], r["peak_rss_gb"], f"{r['rows_per_s']:,}",
            r["incremental"]["end_to_end_s"] or "failed",
            f"{100 * r['incremental']['share_of_full']:.0f}" if r["incremental"]["share_of_full"] else "-",
            f"{100 * r['prefect_overhead_share']:.0f}", f"{planted['flagged']}/{planted['stories']}",
            r["detection"]["flagged_routes"], r["detection"].get("precision"))))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1M,2M,5M,20M", help="Input sizes in rows, e.g. 1M,5M,20M.")
    parser.add_argument("--work", default="/tmp/transship-bench", help="Where worlds and warehouses go.")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--memory-limit", default=None, help="DuckDB memory_limit for every run, e.g. 2GB.")
    parser.add_argument("--keep", action="store_true", help="Keep the reports.")
    parser.add_argument("--out", default=str(RESULTS), help="Folder for the JSON results.")
    parser.add_argument("--child", choices=["floor", "run"], help=argparse.SUPPRESS)
    parser.add_argument("--model", default="auto", help=argparse.SUPPRESS)
    for hidden in ("--result", "--data", "--warehouse", "--reports"):
        parser.add_argument(hidden, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child_main(args)
        return
    sys.path.insert(0, str(ROOT))
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    results = []
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d")
    for size in [parse_size(s) for s in args.sizes.split(",")]:
        print(f"size {size:,} rows", flush=True)
        try:
            results.append(run_size(size, work, args.seed, args.memory_limit, args.keep))
        except RunFailed as failed:  # the sizes measured so far are already written
            raise SystemExit(f"size {size:,}: {failed}\n{failed.output}") from None
        print(table(results[-1:]).splitlines()[-1], flush=True)
        # Written after every size: a long benchmark that is stopped keeps what it measured.
        doc = {"when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
               "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                           "platform": platform.platform()},
               "memory_limit": args.memory_limit, "sizes_asked": args.sizes, "results": results}
        for name in ("scale-latest.json", f"scale-{stamp}.json"):
            (out / name).write_text(json.dumps(doc, indent=2, default=str), encoding="utf-8")
    print()
    print(table(results))
    print(f"\nwritten: {out / 'scale-latest.json'}")


if __name__ == "__main__":
    main()
