"""The settings file beside the warehouse (flows.settings): read by `transship run`, `serve` and the
deployment alike, checked like every other file, and overridden by what the command line gives.
tests/flows/test_serve.py runs a deployment with one and compares its warehouse with the command line's."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.settings import SettingsFileError, read_settings_file, settings_file_for, settings_for
from tests.helpers import ROOT, cli


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_the_file_sits_beside_the_warehouse_and_may_be_absent(tmp_path):
    assert settings_file_for(tmp_path / "warehouse" / "transship.duckdb") == tmp_path / "warehouse" / "transship.toml"
    assert read_settings_file(tmp_path / "none.toml") == {}
    settings, record = settings_for(tmp_path / "w.duckdb", tmp_path / "reports")
    assert settings.scoring.queue_size is None and settings.catalogue is None and record["file"] is None


def test_its_values_apply_and_the_command_line_wins(tmp_path):
    write(tmp_path / "cat" / "ours.toml", (ROOT / "warehouse" / "catalogue" / "minerals.toml").read_text())
    write(tmp_path / "w.toml", '[run]\ncatalogue = "cat/ours.toml"\nqueue_size = 3\nwindow = 6\n'
                               'min_route_score = 0.25\ncensus_measure = "imports for consumption"\nmax_file_mb = 10\n')
    settings, record = settings_for(tmp_path / "w.duckdb", tmp_path / "r", {"queue_size": 5, "window": None})
    assert settings.catalogue == tmp_path / "cat" / "ours.toml"  # relative to the file
    assert settings.scoring.queue_size == 5 and settings.features.window == 6 and settings.scoring.min_route_score == 0.25
    assert settings.sources.census_import_measure == "imports for consumption"
    assert settings.input_limits.max_file_bytes == 10 << 20
    assert record["file"] == str(tmp_path / "w.toml")
    assert record["from"] == {"catalogue": "file", "queue_size": "given", "window": "file", "min_route_score": "file",
                              "census_measure": "file", "max_file_mb": "file"}


@pytest.mark.parametrize(("text", "message"), [
    ("[run]\nqueue_size = 'three'\n", r"w\.toml: \[run\] queue_size = 'three': expected flag the N highest"),
    ("[run]\nwindow = 48\n", r"w\.toml: \[run\] window = 48: out of range 1\.\.24"),
    ("[run]\nmin_route_score = nan\n", r"w\.toml: \[run\] min_route_score = nan: out of range"),
    ("[run]\nmin_route_score = 0\n", r"w\.toml: \[run\] min_route_score = 0: must be above 0"),
    ("[run]\nqueue_size = true\n", r"w\.toml: \[run\] queue_size = True: expected"),
    ("[run]\nmodel_policy = 'sometimes'\n", r"w\.toml: \[run\] model_policy = 'sometimes': use one of auto, reuse, refit"),
    ("[run]\ncatalogue = 'nowhere.toml'\n", r"w\.toml: \[run\] catalogue = 'nowhere\.toml': no such file"),
    ("[run]\nthreshold = 0.3\n", r"w\.toml: \[run\] threshold: not a setting; known: catalogue, window"),
    ("queue_size = 3\n", r"w\.toml: unknown table or key 'queue_size'; the settings go under \[run\]"),
    ("[run\nqueue_size = 3\n", r"w\.toml: not a TOML file"),
    ("run = 3\n", r"w\.toml: 'run' must be a table"),
    ("[fetch.baci]\ncodes = ['811010']\nmonths = 3\n", r"w\.toml: \[fetch\.baci\]: not a source; known: comtrade, census"),
    ("[fetch.census]\ncodes = ['811010']\n", r"w\.toml: \[fetch\.census\]: months is required"),
    ("[fetch.census]\ncodes = [811010]\nmonths = 3\n", r"w\.toml: \[fetch\.census\] codes = \[811010\]: HS codes as text"),
    ("[fetch.census]\ncodes = ['811010']\nmonths = 99\n", r"w\.toml: \[fetch\.census\] months = 99: out of range 1\.\.36"),
    ("[fetch.comtrade]\ncodes = ['811010']\nmonths = 3\npulls = [{reporter = 156, flow = 'Z'}]\n",
     r"w\.toml: \[fetch\.comtrade\] pulls: .*write \{reporter = 156, flow = \"X\"\}"),
    ("[fetch.census]\ncodes = ['811010']\nmonths = 3\nkey = 'secret'\n", r"w\.toml: \[fetch\.census\] key: not a setting"),
])
def test_a_bad_file_is_refused_naming_the_file_and_the_key(tmp_path, text, message):
    write(tmp_path / "w.toml", text)
    with pytest.raises(SettingsFileError, match=message):
        settings_for(tmp_path / "w.duckdb", tmp_path / "r")


def test_an_oversized_file_is_refused_before_it_is_parsed(tmp_path):
    write(tmp_path / "w.toml", "# " + "x" * (70 << 10) + "\n")
    with pytest.raises(SettingsFileError, match=r"w\.toml: larger than 64 KB"):
        read_settings_file(tmp_path / "w.toml")


def test_the_command_line_says_what_is_wrong_with_the_file_before_starting_anything(tmp_path):
    write(tmp_path / "w.toml", "[run]\nqueue_size = 0\n")
    (tmp_path / "data").mkdir()
    result = cli("run", "--data", str(tmp_path / "data"), "--warehouse", str(tmp_path / "w.duckdb"),
                 "--reports", str(tmp_path / "reports"))
    assert result.returncode != 0
    assert "w.toml: [run] queue_size = 0: out of range 1..1,000,000" in result.stderr
    assert not (tmp_path / "w.duckdb").exists()


def test_the_scheduled_downloads_are_read_with_their_defaults(tmp_path):
    from flows.settings import fetch_plan

    write(tmp_path / "w.toml", '[fetch.comtrade]\ncodes = ["282580", "811010"]\nmonths = 2\n'
                               'pulls = [{reporter = 156, flow = "X"}, {reporter = 842, flow = "M"}]\n'
                               '[fetch.census]\ncodes = ["8112921000"]\nmonths = 1\n')
    plan = fetch_plan(tmp_path / "w.duckdb")
    assert set(plan) == {"comtrade", "census"}
    assert plan["census"] == {"months": 1, "attempts": 5, "retries": 2, "retry_delay_seconds": 60,
                              "codes": ["8112921000"]}
    assert plan["comtrade"]["pulls"] == [{"reporter": 156, "flow": "X"}, {"reporter": 842, "flow": "M"}]
    assert fetch_plan(tmp_path / "other.duckdb") == {}


def test_every_file_setting_is_an_option_of_transship_run():
    """The file's keys are `transship run`'s options (with underscores): an option given on the command line
    can only win over the file when the names match."""
    from flows.cli.run import run
    from flows.settings import SETTINGS_KEYS

    assert set(SETTINGS_KEYS) <= {p.name for p in run.params}
