"""The command line's options restate some settings' defaults for --help; they must agree with the dataclass
that owns each."""

from __future__ import annotations


def test_the_command_lines_caps_are_the_settings_defaults():
    # One dataclass owns each default; the options that restate them for --help must agree.
    from flows.cli.fetch import fetch_census_cmd
    from flows.cli.run import run
    from warehouse.fetch import FetchLimits
    from models.params import ScoreParams
    from warehouse.files import InputLimits

    options = {p.name: p.default for p in run.params}
    assert options["min_route_score"] == ScoreParams().min_route_score
    assert options["max_file_mb"] << 20 == InputLimits().max_file_bytes
    assert options["max_json_depth"] == InputLimits().max_json_depth
    fetch = {p.name: p.default for p in fetch_census_cmd.params}
    limits = FetchLimits()
    assert (fetch["max_answer_mb"] << 20, fetch["answer_seconds"], fetch["total_seconds"]) == (
        limits.max_answer_bytes, limits.answer_seconds, limits.total_seconds)


def test_the_replaced_flag_quantile_option_says_what_replaced_it(tmp_path):
    """A scheduled command written for the old flag rule fails with advice, before any work."""
    from click.testing import CliRunner

    from flows.cli import cli

    result = CliRunner().invoke(cli, ["run", "--data", str(tmp_path), "--flag-quantile", "0.98"])
    assert result.exit_code == 2
    assert "--flag-quantile was replaced by --min-route-score (default 0.5)" in result.output


def test_the_command_line_starts_without_scikit_learn():
    """Every command imports flows.cli; scikit-learn (about a second) is imported only by the commands that
    score, so `transship sql` and `--help` start in a fraction of that."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", "import sys, flows.cli; print(sorted(m for m in ('sklearn', 'scipy', "
                          "'prefect', 'plotly') if m in sys.modules))"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_help_texts_print_as_written():
    """Click prints help as written: a '%%' meant for %-formatting shows up doubled."""
    from tests.helpers import cli

    for command in ("run", "demo", "serve", "review", "sql", "evaluate", "schema", "models"):
        out = cli(command, "--help")
        assert out.returncode == 0 and "%%" not in out.stdout, command


def test_long_stages_say_how_long_is_left():
    from flows.progress import time_left

    assert time_left(10.0, 0, 5) == ""  # nothing done yet: nothing to estimate from
    assert time_left(10.0, 2, 5) == ", about 15 s left"
    assert time_left(100.0, 1, 3) == ", about 3 min 20 s left"
    assert time_left(10.0, 5, 5) == ""
