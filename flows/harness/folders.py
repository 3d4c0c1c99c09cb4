"""The evaluation harness on folders of files with their truth beside them (the validation worlds): the
same stages and metrics as the seeded worlds, with the shared scoring tool's definitions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from flows.harness.seeded import in_workers, score_folder

if TYPE_CHECKING:
    from features.params import FeatureParams
    from models.params import ScoreParams


VALIDATION_FROM = "2021-01-01"


def world_folders(root: Path) -> list[tuple[str, Path, Path]]:
    """(name, data folder, truth file) for each folder under `root` that has a truth beside it
    (`NAME_truth.json`, the validation worlds' layout) or inside it (`truth.json`)."""
    found = []
    for folder in sorted(p for p in Path(root).iterdir() if p.is_dir()):
        for truth in (folder.with_name(folder.name + "_truth.json"), folder / "truth.json"):
            if truth.is_file():
                found.append((folder.name, folder, truth))
                break
    return found


def read_episodes(truth: Path) -> pl.DataFrame:
    """The planted routes of a truth file: hub_iso3, hs_code, start, end (first days of months), kg.
    Accepts the validation worlds' `episodes` (hs6, YYYY-MM) and the sample world's `stories`."""
    from warehouse.files import IngestError, parse_json

    data = parse_json(truth, truth.read_bytes())
    try:
        rows = _episode_rows(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise IngestError(f"{truth}: a planted route lacks a field or has a bad one ({exc!r}): each needs hub_iso3, "
                          "hs6 (or hs_code), start and end as YYYY-MM") from None
    if rows is None:
        raise IngestError(f"{truth}: not a truth file: expected a JSON object with an `episodes` list "
                          "(hub_iso3, hs6, start, end) or a `stories` list")
    frame = pl.DataFrame(rows, schema={"hub_iso3": pl.String, "hs_code": pl.String, "start": pl.String,
                                       "end": pl.String, "kg": pl.Float64})
    return frame.with_columns(pl.col("start", "end").str.to_date("%Y-%m"))


def _episode_rows(data: object) -> list[dict] | None:
    if isinstance(data, dict) and isinstance(data.get("episodes"), list):
        rows = [{"hub_iso3": str(e["hub_iso3"]), "hs_code": str(e["hs6"])[:6], "start": str(e["start"])[:7],
                 "end": str(e["end"])[:7], "kg": float(e.get("kg") or 0)} for e in data["episodes"]]
    elif isinstance(data, dict) and isinstance(data.get("stories"), list):
        rows = [{"hub_iso3": str(e["hub_iso3"]), "hs_code": str(e["hs_code"]), "start": str(e["start"])[:7],
                 "end": str(e["end"])[:7], "kg": 0.0} for e in data["stories"] if e.get("kind") == "planted"]
    else:
        return None
    return rows


def folder_scorers() -> list:
    from models.metrics import PLAIN_RULES, Scorer, route_scorers

    return [*route_scorers(),
            Scorer("forest_alone", "model", pl.col("anomaly_score"),
                   "isolation forest score alone (on the route-periods the screen passes)"),
            *PLAIN_RULES]


def evaluate_folder(name: str, data_dir: Path, truth: Path, root: str, monthly: FeatureParams,
                    params: ScoreParams) -> dict:
    """Every folder scorer's metrics on one folder of files (run in a worker process)."""
    import shutil
    import time

    from models.metrics import evaluate_on_episodes, flag_list_quality

    t0 = time.perf_counter()
    episodes = read_episodes(truth)
    workdir = Path(root) / name
    try:
        scores, rules = score_folder(data_dir, workdir, monthly, params, f"folder-{name}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    frames = {"scores": scores, "rules": rules}
    results = {s.name: evaluate_on_episodes(frames[s.frame], episodes, s, VALIDATION_FROM) for s in folder_scorers()}
    flags = flag_list_quality(scores, episodes.with_columns(kind=pl.lit("planted")), VALIDATION_FROM, "9999-12-01")
    return {"world": name, "data_dir": str(data_dir), "truth": str(truth),
            "seconds": round(time.perf_counter() - t0, 1), "results": results, "flags": flags}


def run_folder_evaluation(root: Path, jobs: int, out: Path, monthly: FeatureParams, params: ScoreParams,
                          progress=print) -> dict:
    """Score every world folder under `root` (world_folders) and write the metrics as JSON to `out`."""
    import time

    from models.metrics import pooled_flag_lists
    from warehouse.files import IngestError

    worlds = world_folders(root)
    if not worlds:
        raise IngestError(f"{root}: no folder with a truth file beside it (NAME_truth.json) or inside it "
                          "(truth.json)")
    t0 = time.perf_counter()
    done = in_workers(evaluate_folder, [{"name": name, "data_dir": d, "truth": t, "monthly": monthly, "params": params}
                                         for name, d, t in worlds], jobs,
                      lambda w, n, total: progress(f"{w['world']} scored in {w['seconds']} s ({n}/{total})"))
    done.sort(key=lambda w: w["world"])
    names = [s.name for s in folder_scorers()]
    mean = {n: float(np.mean([w["results"][n]["average_precision"] for w in done])) for n in names}
    report = {"root": str(root), "from": VALIDATION_FROM, "seconds": round(time.perf_counter() - t0, 1),
              "mean_average_precision": mean, "flag_list": pooled_flag_lists([w["flags"] for w in done]),
              "per_world": done}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
    return report


def below_top_k(model: dict) -> list[dict]:
    """The planted routes a scorer's results rank below the top k (k = planted routes) or never scored."""
    return [p for p in model["planted_ranks"] if p["rank"] is None or p["rank"] > model["planted"]]


def print_folder_evaluation(report: dict) -> None:
    from rich.table import Table
    from rich.text import Text

    from flows.progress import wide_console

    console = wide_console()
    names = [s.name for s in folder_scorers()]
    table = Table(title=f"Average precision per world ({report['root']}; routes = hub x HS6 by their highest score "
                        f"from {report['from'][:7]}; ties rank planted routes last)", title_justify="left")
    table.add_column("world")
    table.add_column("planted", justify="right")
    for n in names:
        table.add_column(n, justify="right")
    table.add_column("model - better rule", justify="right")
    table.add_column("planted missed (rank > planted) / never scored", justify="right")
    table.add_column("flagged (planted)", justify="right")

    def margin(r: dict) -> float:
        return r["model"] - max(r["rule_a_excess"], r["rule_b_zscore"])

    for w in report["per_world"]:
        res = w["results"]
        aps = {n: res[n]["average_precision"] for n in names}
        model = res["model"]
        missed = len(below_top_k(model))
        table.add_row(Text(w["world"]), str(model["planted"]), *[f"{aps[n]:.3f}" for n in names],
                      f"{margin(aps):+.3f}", f"{missed} / {model['unscored']}",
                      f"{w['flags']['flagged']} ({w['flags']['planted_flagged']})")
    mean, flags = report["mean_average_precision"], report["flag_list"]
    table.add_row("mean", "", *[f"{mean[n]:.3f}" for n in names], f"{margin(mean):+.3f}", "",
                  f"{flags['flagged']} ({flags['planted_flagged']}) in all")
    console.print(table)
    for w in report["per_world"]:
        model = w["results"]["model"]
        missed = below_top_k(model)
        if missed:
            console.print(Text(f"{w['world']}: planted routes the model ranks below the top {model['planted']}: " + "; ".join(
                f"{p['hub_iso3']}/{p['hs_code']} {p['start'][:7]}..{p['end'][:7]} "
                + ("never scored" if p["rank"] is None else f"rank {p['rank']} (score {p['score']:.3f}, peak {p['peak_period'][:7]})")
                for p in missed)), soft_wrap=True)
