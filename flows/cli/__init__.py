"""The `transship` command line: one module per command, the options they share in options.py (defaults
read from the dataclass that owns each), the group and its entry point in app.py."""

from flows.cli.app import cli, main
from flows.cli import evaluate, fetch, lineage, models, review, run, schema, serve, sql  # noqa: F401  (register)

__all__ = ["cli", "main"]
