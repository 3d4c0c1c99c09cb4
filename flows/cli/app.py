"""The `transship` command group and its entry point."""

from __future__ import annotations

import os
import sys

import click

from flows.cli.options import debug_callback


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, envvar="TRANSSHIP_DEBUG", callback=debug_callback, expose_value=False, is_eager=True,
              help="On failure, print the traceback and Prefect's logs (env TRANSSHIP_DEBUG=1).")
def cli() -> None:
    """transship: find transshipment routes in customs statistics.

    Loads China-reported exports and US-reported imports (UN Comtrade files) into a DuckDB warehouse,
    builds mirror-trade features per hub and product, scores them with isolation forests, and writes a
    report of the routes that look like rerouting around China's export controls."""


def main() -> None:
    """The command's entry point: every failure ends on one `error:` line (flows.errors), exit code 2 for bad
    input or setup, 1 for a fault in transship, 130 when interrupted."""
    try:
        cli(standalone_mode=False)
    except SystemExit:
        raise
    except BaseException as exc:  # noqa: BLE001 - the one place a failure is turned into a message
        from flows.errors import forget, report

        code = report(exc, debug=os.environ.get("TRANSSHIP_DEBUG") == "1")
        forget(exc)
        del exc
        sys.exit(code)


if __name__ == "__main__":
    main()
