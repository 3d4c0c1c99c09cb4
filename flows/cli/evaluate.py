"""`transship evaluate`: detection measured on seeded worlds, on folders of files with their truth, or on
analysts' labels."""

from __future__ import annotations

import os
from pathlib import Path

import click

from flows.cli.app import cli
from flows.cli.options import open_read_only, warehouse_option


@cli.command()
@click.option("--worlds", type=click.IntRange(1, 1000), default=20, show_default=True, help="Seeded worlds to generate.")
@click.option("--seed", "first_seed", type=int, default=0, show_default=True, help="Seed of the first world.")
@click.option("--jobs", type=click.IntRange(1, 64), default=min(2, os.cpu_count() or 1), show_default=True,
              help="Worlds scored in parallel (processes).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=Path("reports/evaluation.json"),
              show_default=True, help="Where the metrics are written as JSON.")
@click.option("--features/--no-features", "show_features", default=True, show_default=True,
              help="Show each single feature's row in the table.")
@click.option("--worlds-dir", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Instead of seeded worlds: score every folder of files under DIR that has a truth file beside it "
                   "(NAME_truth.json, as in the validation worlds) or inside it (truth.json), per world.")
@click.option("--labels", "on_labels", is_flag=True,
              help="Instead of seeded worlds: measure the latest run's scores in --warehouse against the routes "
                   "analysts confirmed (true) and dismissed (false) with transship review.")
@warehouse_option
def evaluate(worlds: int, first_seed: int, jobs: int, out: Path, show_features: bool, worlds_dir: Path | None,
             on_labels: bool, warehouse: Path) -> None:
    """Measure detection on many seeded worlds: the model against the plain rules and each single feature.

    Each world plants 3 to 6 rerouting routes (hubs, minerals, start months from 2021-01, sizes from large
    down to under the floor, lags of 0 to 4 months, 40-100 % pass-through, ramps, lumpy shipments, routes
    split over two hubs, brand-new or grown on existing trade) among one to three producer surges and one
    each of the other look-alikes. Routes are
    scored by their highest score over 2021-01..2025-06. Prints a table, average precision by difficulty
    class, and writes JSON (per world and averaged). No Prefect, no warehouse: each world runs in a
    temporary folder. --worlds-dir measures folders of files with their truth instead."""
    if on_labels:
        _evaluate_on_labels(warehouse, show_features)
        return
    from features.params import FeatureParams
    if worlds_dir is not None:
        from flows.harness.folders import print_folder_evaluation, run_folder_evaluation
        from flows.progress import step
        from models.params import ScoreParams

        if out == Path("reports/evaluation.json"):
            out = Path("reports/evaluation-worlds.json")
        step(f"evaluation: the world folders under {worlds_dir}, {jobs} at a time")
        report = run_folder_evaluation(worlds_dir, jobs, out, FeatureParams(), ScoreParams(), progress=step)
        print_folder_evaluation(report)
        click.echo(f"{report['seconds']} s; metrics written to {out}")
        return
    from flows.harness.seeded import print_evaluation, run_evaluation
    from flows.progress import step
    from models.params import ScoreParams

    step(f"evaluation: {worlds} worlds from seed {first_seed}, {jobs} at a time")
    report = run_evaluation(worlds, first_seed, jobs, out, FeatureParams(), ScoreParams(), progress=step)
    print_evaluation(report, features=show_features)
    click.echo(f"{report['seconds']} s; metrics written to {out}")


def _evaluate_on_labels(warehouse: Path, show_features: bool) -> None:
    """The scorers of the evaluation harness measured on analysts' labels in the warehouse."""
    from rich.table import Table

    from flows.progress import wide_console
    from models.metrics import evaluate_on_labels, scorers
    from warehouse.outputs import all_route_scores
    from warehouse.review import analyst_labels

    con = open_read_only(warehouse)
    try:
        labels = analyst_labels(con)
        scores = all_route_scores(con) if labels.height else None
    finally:
        con.close()
    if not labels.height:
        raise click.ClickException(f"{warehouse}: no route is confirmed or dismissed yet; record decisions with "
                                   "`transship review ROUTE confirmed|dismissed --by NAME --note ...`")
    table = Table(title=f"Scorers on analysts' labels in {warehouse}", title_justify="left")
    for col in ("scorer", "kind", "labelled", "confirmed", "average precision", "precision of its flags"):
        table.add_column(col, justify="left" if col in ("scorer", "kind") else "right")
    for scorer in scorers():
        if scorer.kind == "feature" and not show_features:
            continue
        missing = [c for c in scorer.expr.meta.root_names() if c not in scores.columns]
        if missing:
            continue
        m = evaluate_on_labels(scores, labels, scorer)
        ap = "-" if m["average_precision"] is None else f"{m['average_precision']:.2f}"
        fp = "-" if scorer.kind != "model" or m["flagged_precision"] is None else f"{m['flagged_precision']:.2f}"
        table.add_row(scorer.name, scorer.kind, str(m["labelled"]), str(m["confirmed"]), ap, fp)
    table.caption = ("Average precision needs both confirmed and dismissed routes; a route's score is its highest "
                     "over its scored periods. Few labels make rough numbers.")
    wide_console().print(table)
