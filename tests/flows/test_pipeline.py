"""The whole job through Prefect on the sample world, and the command line around it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import polars as pl
import pytest

from flows.harness.demo import demo_scorecard
from flows.pipeline import transship_pipeline
from flows.settings import Settings
from tests.helpers import cli, cli_process, query
from warehouse.files import IngestError
from worlds.sample import write_sample_world

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> dict[str, Path]:
    return write_sample_world(tmp_path_factory.mktemp("world"), seed=7)


@pytest.fixture(scope="module")
def first_run(prefect_harness, sample, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    settings = Settings(warehouse=out / "w.duckdb", reports_dir=out / "reports")
    run = transship_pipeline(sample["data_dir"], settings)
    return run, settings



def test_planted_routes_rank_above_the_look_alikes(first_run, sample):
    run, settings = first_run
    assert run["status"] == "succeeded"
    flagged = query(settings.warehouse, "SELECT * FROM flagged_routes ORDER BY rank")
    card = demo_scorecard(flagged, sample["truth"])
    planted = card.filter(pl.col("kind") == "planted")
    assert sorted(planted["rank"].to_list()) == [1, 2, 3, 4]
    assert card.filter(pl.col("kind") != "planted", pl.col("rank").is_not_null()).is_empty()
    # The plain rule, for contrast, fires on the one-off lump and the tiny route.
    rule = query(settings.warehouse, "SELECT DISTINCT hub_iso3 FROM route_scores WHERE rule_flag AND hs_code = '282580'")
    assert {"JPN", "LAO"} <= set(rule["hub_iso3"].to_list())


def test_outputs_are_traceable_and_counts_reconcile(first_run):
    run, settings = first_run
    runs = query(settings.warehouse, "SELECT * FROM runs")
    assert runs.height == 1 and runs["status"][0] == "succeeded"
    files = json.loads(runs["input_files"][0])
    assert sum(f["rows_read"] for f in files) == sum(f["rows_loaded"] + f["rows_rejected"] for f in files)
    counts = query(settings.warehouse, """
        SELECT (SELECT count(*) FROM raw.comtrade_records) AS raw,
               (SELECT count(*) FROM intermediate.int_flows) + (SELECT count(*) FROM intermediate.int_flows_excluded) AS staged,
               (SELECT count(DISTINCT run_id) FROM route_scores) AS runs_in_scores""").row(0)
    assert counts[0] == counts[1] and counts[2] == 1
    report = (Path(run["report_dir"]) / "report.md").read_text()
    assert "| 1 | antimony | 282580 | THA (Thailand)" in report
    # Read as the HTML report reads them: the month of the peak, the finish time to the second.
    assert re.search(r"\| THA \(Thailand\) \| \d{4}-\d{2} \| \d\.\d{3} \|", report)
    assert re.search(r"^- Finished: \d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} \(UTC\); code ", report, re.MULTILINE)
    assert (Path(settings.reports_dir) / "latest" / "flagged_routes.csv").exists()


def test_rerun_on_the_same_inputs_gives_the_same_result(first_run, sample):
    run, settings = first_run
    before = query(settings.warehouse, "SELECT * EXCLUDE (run_id) FROM route_scores ORDER BY ALL")
    again = transship_pipeline(sample["data_dir"], settings)
    assert {f["status"] for f in again["input_files"]} == {"already loaded"}
    after = query(settings.warehouse, "SELECT * EXCLUDE (run_id) FROM route_scores ORDER BY ALL")
    assert before.equals(after)
    assert query(settings.warehouse, "SELECT count(*) AS n FROM raw.loads")["n"][0] == 2
    # Nothing new: an incremental run that rebuilt nothing; the models registered by the first run were
    # reused, not fitted again: same ids, no new rows.
    assert again["build"]["mode"] == "incremental" and again["build"]["periods_rebuilt"] == {}
    assert all(m["reused"] and "no new or changed route-periods" in m["note"] for m in again["models"] if m["model_id"])
    assert {m["model_id"] for m in again["models"]} == {m["model_id"] for m in run["models"]}
    assert query(settings.warehouse, "SELECT count(*) AS n FROM models.registry")["n"][0] == 2


def test_every_score_names_its_registered_model_and_explains_itself(first_run):
    _, settings = first_run
    orphans = query(settings.warehouse, """
        SELECT count(*) AS n FROM route_scores s LEFT JOIN models.registry r USING (model_id) WHERE r.model_id IS NULL""")
    assert orphans["n"][0] == 0
    card = json.loads(query(settings.warehouse, "SELECT card FROM models.registry WHERE mineral = 'antimony'")["card"][0])
    assert card["training_periods"][0] <= card["training_periods"][1]
    assert {"features", "parameters", "libraries", "code_version", "n_train", "n_routes", "training_sha256"} <= set(card)
    assert card["libraries"]["scikit-learn"]
    expl = query(settings.warehouse, """
        SELECT e.* FROM route_explanations e JOIN flagged_routes f
          ON f.hub_iso3 = e.hub_iso3 AND f.hs_code = e.hs_code AND f.mineral = e.mineral AND f.peak_period = e.period
        WHERE f.rank = 1 ORDER BY position""")
    assert 1 <= expl.height <= 3 and expl["score_drop"].min() > 0
    # The learned half of route_score names itself too: the run records the combiner by its file's hash.
    from models.combiner import load

    recorded = query(settings.warehouse, "SELECT parameters->>'combiner' AS c FROM runs")["c"].unique().to_list()
    assert recorded == [load().model_id]


def test_a_bad_file_fails_the_run_and_leaves_the_warehouse_untouched(first_run, sample, tmp_path):
    run, settings = first_run
    data = tmp_path / "data"
    data.mkdir()
    for f in sample["data_dir"].iterdir():
        (data / f.name).write_bytes(f.read_bytes())
    (data / "broken.csv").write_text("year,reporter,cmd,flow,value\n2024,156,282580,X,1\n")
    before = query(settings.warehouse, "SELECT count(*) AS n FROM raw.comtrade_records")["n"][0]
    with pytest.raises(IngestError, match="broken.csv"):
        transship_pipeline(data, settings)
    assert query(settings.warehouse, "SELECT count(*) AS n FROM raw.comtrade_records")["n"][0] == before
    statuses = query(settings.warehouse, "SELECT status FROM runs ORDER BY started_at")["status"].to_list()
    assert statuses[-1] == "failed"
    assert not list(Path(settings.warehouse).parent.glob("*.building-*"))



def test_sql_command_reads_and_refuses_to_write(first_run, tmp_path):
    _, settings = first_run
    root = Path(__file__).resolve().parents[2]
    ok = cli("sql", "--warehouse", str(settings.warehouse), "--csv",
             "select rank, hub_iso3 from flagged_routes order by rank limit 2", cwd=root)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.splitlines()[:3] == ["rank,hub_iso3", "1,THA", "2,MEX"]
    refused = cli("sql", "--warehouse", str(settings.warehouse), "drop table route_scores", cwd=root)
    assert refused.returncode == 2 and "(DROP would write); transship sql only reads the warehouse" in refused.stderr
    attach = cli("sql", "--warehouse", str(settings.warehouse), f"attach '{tmp_path / 'x.duckdb'}' as x (READ_WRITE)", cwd=root)
    assert attach.returncode == 2 and "(ATTACH opens another file)" in attach.stderr
    assert not (tmp_path / "x.duckdb").exists()
    missing = cli("sql", "--warehouse", str(tmp_path / "none.duckdb"), "select 1", cwd=root)
    assert missing.returncode != 0 and "no warehouse here yet" in missing.stderr


def test_models_command_lists_the_registry_and_prints_a_card(first_run):
    _, settings = first_run
    root = Path(__file__).resolve().parents[2]
    listed = cli("models", "--warehouse", str(settings.warehouse), cwd=root)
    assert listed.returncode == 0, listed.stderr
    assert "M-antimony-" in listed.stdout and "M-gallium_germanium-" in listed.stdout
    model_id = query(settings.warehouse, "SELECT model_id FROM models.registry WHERE mineral = 'antimony'")["model_id"][0]
    card = cli("models", "--warehouse", str(settings.warehouse), model_id, cwd=root)
    assert card.returncode == 0 and json.loads(card.stdout)["model_id"] == model_id
    unknown = cli("models", "--warehouse", str(settings.warehouse), "M-nothing-0", cwd=root)
    assert unknown.returncode != 0 and "transship models" in unknown.stderr


def test_analyst_tables_carry_comments_and_schema_prints_them(first_run):
    from warehouse.comments import relation_comments

    relations = relation_comments()
    _, settings = first_run
    comments = dict(query(settings.warehouse, """
        SELECT schema_name || '.' || table_name AS name, comment FROM duckdb_tables()
        UNION ALL SELECT schema_name || '.' || view_name, comment FROM duckdb_views() WHERE NOT internal""").iter_rows())
    for relation in ("main.route_scores", "main.route_score_values", "main.flagged_routes", "main.route_explanations", "marts.fct_route_legs",
                     "models.registry", "raw.rejects", "main.runs"):
        assert comments[relation] == relations[relation]
    assert all(comments[r] for r in relations if r in comments)
    uncommented = query(settings.warehouse, """
        SELECT schema_name || '.' || table_name AS name FROM duckdb_tables() WHERE comment IS NULL
        UNION ALL SELECT schema_name || '.' || view_name FROM duckdb_views()
        WHERE NOT internal AND comment IS NULL AND schema_name NOT IN ('information_schema', 'pg_catalog')""")
    assert uncommented["name"].to_list() == []  # every table and view says its grain, key and units
    # Every column of every table and view says what it means (warehouse/glossary.py; comments.py COLUMNS).
    blank = query(settings.warehouse, """SELECT schema_name || '.' || table_name || '.' || column_name AS name
        FROM duckdb_columns() WHERE database_name = current_database() AND NOT internal
        AND schema_name NOT IN ('information_schema', 'pg_catalog') AND coalesce(trim(comment), '') = '' ORDER BY 1""")
    assert blank["name"].to_list() == []
    described = dict(query(settings.warehouse, """SELECT table_name || '.' || column_name, comment
        FROM duckdb_columns() WHERE table_name IN ('flagged_routes', 'fct_route_legs')""").iter_rows())
    assert "steady flow reads about 0.14, not 1" in described["flagged_routes.cn_to_hub_kg_spike_ratio"]
    assert described["fct_route_legs.cn_to_hub_kg"].startswith("China's exports to the hub")
    assert "Required for a flag" in described["flagged_routes.score_threshold"] or \
        "--min-route-score" in described["flagged_routes.score_threshold"]
    column = query(settings.warehouse, """SELECT comment FROM duckdb_columns()
        WHERE schema_name = 'main' AND table_name = 'route_scores' AND column_name = 'route_score'""")["comment"][0]
    assert "Higher = more suspicious" in column
    root = Path(__file__).resolve().parents[2]
    listed = cli("schema", "--warehouse", str(settings.warehouse), cwd=root)
    assert listed.returncode == 0 and "main.route_scores" in listed.stdout and "Key: (frequency, mineral" in listed.stdout
    # Exact row counts (DuckDB's estimated_size said 8 for a 4-row table).
    minerals = next(line for line in listed.stdout.splitlines() if "ref.minerals" in line)
    shown = int(minerals.split("│")[2].strip().replace(",", ""))
    assert shown == query(settings.warehouse, "SELECT count(*) AS n FROM ref.minerals")["n"][0]
    cols = cli("schema", "--warehouse", str(settings.warehouse), "route_scores", cwd=root)
    assert cols.returncode == 0 and "route_score" in cols.stdout and "score_percentile" in cols.stdout
    missing = cli("schema", "--warehouse", str(settings.warehouse), "main.nothing", cwd=root)
    assert missing.returncode != 0 and "transship schema" in missing.stderr


def test_every_command_has_help():
    root = Path(__file__).resolve().parents[2]
    for args in (["--help"], ["run", "--help"], ["demo", "--help"], ["sql", "--help"], ["evaluate", "--help"],
                 ["models", "--help"], ["schema", "--help"], ["review", "--help"], ["lineage", "--help"],
                 ["serve", "--help"]):
        result = cli(*args, cwd=root)
        assert result.returncode == 0 and "Usage:" in result.stdout
    # The same entry point as its own process, as an operator's shell runs it.
    alone = cli_process("review", "--help", cwd=root)
    assert alone.returncode == 0 and "transship review --list" in alone.stdout


def test_national_world_flags_the_same_routes_and_reports_a_revision(prefect_harness, tmp_path):
    from worlds.national import write_national_world

    paths = write_national_world(tmp_path / "world", seed=7)
    settings = Settings(warehouse=tmp_path / "w.duckdb", reports_dir=tmp_path / "reports")
    first = transship_pipeline(paths["data_dir"], settings)
    card = demo_scorecard(query(settings.warehouse, "SELECT * FROM flagged_routes ORDER BY rank"), paths["truth"])
    planted = card.filter(pl.col("kind") == "planted")
    assert planted["rank"].max() == 4  # the four planted routes are the top four distinct routes
    assert card.filter(pl.col("kind") != "planted", pl.col("rank").is_not_null()).is_empty()
    # Census publishes 2025 again: Thailand's antimony-oxide imports revised down to 1 % (the goods were
    # China's, entered under the wrong origin).
    data = json.loads((paths["data_dir"] / "census_imports_2025.json").read_text())
    revised = [data[0]] + [
        [r[0], r[1], r[2], f"{float(r[3]) * 0.01:.1f}", f"{float(r[4]) * 0.01:.1f}", *r[5:]]
        if (r[0], r[1]) == ("THAILAND", "282580") else r for r in data[1:]]
    (paths["data_dir"] / "census_imports_2025_revised.json").write_text(json.dumps(revised))
    second = transship_pipeline(paths["data_dir"], settings)
    impact = query(settings.warehouse, "SELECT * FROM main.revision_impact")
    assert impact.select("hs_code", "reporter_iso3", "counterpart_iso3", "revised_flows", "previous_run_id").rows() == [
        ("282580", "USA", "THA", 6, first["run_id"])]
    # What is left of Thailand's exports to the US is one shipment in December 2024 and a trickle under the
    # volume floor (4 t a month; at 5 %, 20 t a month, it would still be a route): unflagged.
    assert (impact["rank_before"][0], impact["rank_now"][0], impact["flag_change"][0]) == (1, None, "no longer flagged")
    report = (Path(second["report_dir"]) / "report.md").read_text()
    assert "## Revisions loaded in this run" in report and impact["flag_change"][0] in report


def test_the_run_summary_shows_where_time_and_memory_went(first_run, capsys):
    from flows.cli.run import _summarise

    run, settings = first_run
    assert list(run["peak_rss_gb"]) == list(run["seconds"])  # the peak so far, after every stage
    assert 0.1 < max(run["peak_rss_gb"].values()) < 8
    assert list(run["build"]["score_seconds"]) == ["features", "models and scores", "flagged lists"]
    recorded = json.loads(query(settings.warehouse, f"SELECT build FROM runs WHERE run_id = '{run['run_id']}'")["build"][0])
    assert recorded["peak_rss_gb"]["score"] > 0 and recorded["score_seconds"]["features"] > 0
    assert recorded["score_seconds"] == run["build"]["score_seconds"]
    # What each model's forest spent its time on, recorded with the run and said in the summary.
    models = json.loads(query(settings.warehouse, f"SELECT models FROM runs WHERE run_id = '{run['run_id']}'")["models"][0])
    assert models == json.loads(json.dumps(run["models"], default=str))
    fitted = [m for m in models if "sampled" in m]
    assert fitted and all(m["forest_scored"] + m["screened_out"] == m["route_periods"] == m["n_train"]
                          and 0 < m["screened_out"] < m["route_periods"] and m["sampled"] == m["n_train"]
                          for m in fitted)  # the sample world's groups are small: fitted on every row
    scored = sum(m["forest_scored"] for m in fitted)
    screened = sum(m["screened_out"] for m in fitted)
    assert query(settings.warehouse, "SELECT count(anomaly_score) AS n FROM route_scores")["n"][0] == scored
    _summarise(run, settings.warehouse)
    out = capsys.readouterr().out
    assert f"forests: {scored:,} of {scored + screened:,} route-periods scored, {screened:,} screened out" in out
    silent = run["build"]["screened_before_features"]
    assert silent["routes"] == 141 and silent["route_periods"] > 0  # of the sample world's 250 routes
    assert f"features: {silent['routes']:,} routes ({silent['route_periods']:,} route-periods) screened out" in out
    assert "score stage: features " in out and "models and scores " in out
    assert re.search(r"peak memory \d+\.\d\d GiB \(RSS\), reached in (copy|ingest|build|score|publish)", out)


def test_the_flow_runs_are_named_by_the_run_id(first_run):
    """In Prefect's UI and logs the run is the warehouse's run_id (not a random 'amphibian-narwhal'), and its
    sub-flows say which run and which stage they are."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName

    run, _ = first_run
    run_id = run["run_id"]
    names = [f"{run_id}{stage}" for stage in ("", " ingest", " build", " score", " report")]
    with get_client(sync_client=True) as client:
        found = client.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=names)))
    assert sorted(r.name for r in found) == sorted(names)
    assert all(r.state.is_completed() for r in found)


def test_the_runs_progress_is_in_its_prefect_log(first_run):
    """Progress lines go to the Prefect run's log too (the UI, `prefect flow-run logs`), not only to stderr."""
    import time

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName, LogFilter, LogFilterFlowRunId

    run, _ = first_run
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(
            any_=[run["run_id"], f"{run['run_id']} report"])))
        ids = [r.id for r in runs]
        messages: list[str] = []
        for _ in range(40):  # the log handler sends in batches, every second or two
            logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=ids)))
            messages = [log.message for log in logs if log.name == "transship.progress"]
            if any(m.startswith("report: writing") for m in messages):
                break
            time.sleep(0.5)
    assert any(m.startswith("report: writing HTML") for m in messages), messages
