"""The house's rooms (README, Layout): the layers import downwards only, and only warehouse/ talks to
DuckDB. Read from the source's syntax trees, so a comment or a docstring that mentions SQL does not count."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Who may import whom: a package imports only those below it.
BELOW = {
    "warehouse": set(),
    "features": {"warehouse"},
    "models": {"warehouse", "features"},
    "worlds": {"warehouse", "features"},
    "flows": {"warehouse", "features", "models", "worlds"},
}
# A call of one of these on anything is a statement sent to DuckDB (a connection's or a relation's method).
DUCKDB_CALLS = {"sql", "execute", "executemany", "query", "register", "unregister", "read_csv", "read_parquet"}


def modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def imported_packages(tree: ast.AST) -> set[str]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module.split(".")[0])
    return out & set(BELOW)


def test_each_layer_imports_only_the_layers_below_it():
    wrong = []
    for package, allowed in BELOW.items():
        for path in modules(package):
            above = imported_packages(ast.parse(path.read_text(encoding="utf-8"))) - allowed - {package}
            if above:
                wrong.append(f"{path.relative_to(ROOT)} imports {', '.join(sorted(above))}")
    assert not wrong, "\n".join(wrong)


def test_only_the_warehouse_sends_statements_to_duckdb():
    found = []
    for package in ("flows", "features", "models", "worlds"):
        for path in modules(package):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                        and node.func.attr in DUCKDB_CALLS and isinstance(node.func.value, ast.Name)
                        and node.func.value.id in ("con", "c", "connection", "duckdb", "ro", "rw")):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.func.value.id}.{node.func.attr}(...)")
    assert not found, "statements sent to DuckDB outside warehouse/:\n" + "\n".join(found)


def test_the_layout_check_sees_a_statement_and_an_upward_import():
    """The checks above can fail: a snippet with both faults is caught by the same code."""
    tree = ast.parse("from flows.cli import main\n\ndef f(con):\n    return con.sql('SELECT 1')\n")
    assert imported_packages(tree) == {"flows"}
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
             and n.func.attr in DUCKDB_CALLS]
    assert len(calls) == 1


def test_no_module_outgrows_a_reader():
    """A module over ~400 lines is two modules (STYLE.md): the glossary, a table of words, is the largest."""
    long = [f"{p.relative_to(ROOT)}: {n} lines" for package in BELOW for p in modules(package)
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > 420]
    assert not long, "\n".join(long)
