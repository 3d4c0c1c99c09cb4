"""The analysts' SQL: a connection to the warehouse that can read it and nothing else, and a guard that says
by name why a statement is refused.

The safety is the engine's, not a parser's. `connect_analyst` opens the warehouse read-only, attaches the
other warehouses the analyst named (read-only), then turns DuckDB's reach off: no file system and no
network (`enable_external_access = false`, with `allowed_paths` listing only the files the analyst opted
in to read), no extension installed or loaded, and `lock_configuration = true`, so no statement can turn
any of it back on. COPY ... TO, EXPORT, ATTACH, IMPORT DATABASE, read_csv('/etc/passwd') and profiling
output all fail inside DuckDB whatever wraps them.

`check_statement` runs first and only makes refusals readable: SELECT-type statements pass (SELECT,
DESCRIBE, SHOW, SUMMARIZE, PIVOT, PRAGMA other than IMPORT, SET VARIABLE), each judged after unwrapping
EXPLAIN [ANALYZE] (which runs the statement it wraps), using DuckDB's own statement splitter and tokenizer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import polars as pl

from warehouse.connection import WarehouseError, connect_read_only


class WriteRefused(WarehouseError):
    """A statement given to `transship sql` is not a read."""


@dataclass(frozen=True)
class SqlAccess:
    """What an analyst's connection may reach besides the warehouse, each named on the command line:
    `attach` other warehouses (alias, file), opened read-only; `read_files` files that queries may read
    (read_csv, read_parquet, ...), and nothing else on the machine."""

    attach: tuple[tuple[str, Path], ...] = ()
    read_files: tuple[Path, ...] = field(default_factory=tuple)


def _quoted_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _quoted_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def connect_analyst(path: Path, access: SqlAccess = SqlAccess()) -> duckdb.DuckDBPyConnection:
    """A read-only connection to the warehouse that cannot write, read other files or reach the network,
    whatever SQL it is given (see the module's docstring)."""
    con = connect_read_only(path, extra_config={"autoinstall_known_extensions": False,
                                                "autoload_known_extensions": False})
    try:
        for alias, other in access.attach:
            if not Path(other).is_file():
                raise WarehouseError(f"--attach {alias}={other}: no such file")
            try:
                con.execute(f"ATTACH {_quoted_string(str(Path(other).resolve()))} AS {_quoted_identifier(alias)} "
                            "(READ_ONLY)")
            except duckdb.Error as exc:
                raise WarehouseError(f"--attach {alias}={other}: cannot open it as a DuckDB warehouse "
                                     f"({str(exc).splitlines()[0]})") from None
        if access.read_files:
            # Exact files, resolved: DuckDB then refuses any other path, and refuses to write even these
            # (COPY writes through a temporary file beside its target, which is not on the list).
            con.execute("SET allowed_paths = ?", [[str(Path(f).resolve()) for f in access.read_files]])
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
    except BaseException:
        con.close()
        raise
    return con


# Statement kinds that only read. SET passes because the configuration is locked (DuckDB then accepts
# only search_path and schema); PRAGMA passes except IMPORT DATABASE, which DuckDB classes as a PRAGMA.
READING_KINDS = {"SELECT", "PRAGMA", "SET", "VARIABLE_SET", "RELATION"}
HINTS = {
    "ATTACH": " To read another warehouse, name it when you start: transship sql --attach NAME=FILE.",
    "COPY": " To export a result, use --csv and redirect the output.",
    "EXPORT": " To export a result, use --csv and redirect the output.",
    "CALL": " Call table functions with SELECT * FROM function(...).",
}


WHY = {"ATTACH": "ATTACH opens another file", "DETACH": "DETACH changes what this session has open",
       "CALL": "CALL", "MULTI": "several statements in one", "LOAD": "LOAD runs an extension's code",
       "TRANSACTION": "transactions are for writing", "PREPARE": "PREPARE", "EXECUTE": "EXECUTE"}


def _tokens(text: str) -> list[tuple[int, str, str]]:
    """DuckDB's tokens of `text` without comments: (position, kind, upper-cased text)."""
    found = duckdb.tokenize(text)
    out = []
    for i, (pos, kind) in enumerate(found):
        end = found[i + 1][0] if i + 1 < len(found) else len(text)
        if kind.name != "comment":
            out.append((pos, kind.name, text[pos:end].strip().upper()))
    return out


def _explained(text: str) -> list[str]:
    """The statement(s) an EXPLAIN [ANALYZE] [(options)] wraps: every reading of the text after EXPLAIN,
    with and without a parenthesised first part (options, or the statement itself in parentheses)."""
    tokens = _tokens(text)
    i = 1 if tokens and tokens[0][2] == "EXPLAIN" else 0
    if i < len(tokens) and tokens[i][2] == "ANALYZE":
        i += 1
    if i >= len(tokens):
        return []
    candidates = [text[tokens[i][0]:]]
    if tokens[i][2] == "(":
        depth = 0
        for j in range(i, len(tokens)):
            depth += {"(": 1, ")": -1}.get(tokens[j][2], 0)
            if depth == 0:
                if j + 1 < len(tokens):
                    candidates.append(text[tokens[j + 1][0]:])
                break
    return candidates


def _refuse(text: str, kind: str, why: str = "") -> WriteRefused:
    shown = " ".join(text.split())
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    return WriteRefused(f"refused: `{shown}` is not a read ({why or kind}); transship sql only reads the "
                        f"warehouse.{HINTS.get(kind, '')}")


def check_statement(query: str, _depth: int = 0) -> None:
    """Raise WriteRefused, naming the statement, unless every statement of `query` only reads."""
    try:
        statements = duckdb.extract_statements(query)
    except duckdb.Error as exc:
        raise WriteRefused(f"query failed: {str(exc).splitlines()[0]}") from None
    for statement in statements:
        kind, text = statement.type.name, statement.query
        if kind == "EXPLAIN":
            inner = [c for c in _explained(text) if c.strip()]
            parsed = []
            for candidate in inner:
                try:
                    duckdb.extract_statements(candidate)
                except duckdb.Error:
                    continue
                parsed.append(candidate)
            if not parsed or _depth > 3:
                raise _refuse(text, kind, "cannot tell which statement this EXPLAIN runs")
            for candidate in parsed:
                check_statement(candidate, _depth + 1)
            continue
        words = [t[2] for t in _tokens(text) if t[1] == "keyword"]
        if kind == "PRAGMA" and words[:1] == ["IMPORT"]:
            raise _refuse(text, "IMPORT", "IMPORT DATABASE runs the statements of another database's schema.sql")
        if kind == "MULTI" and {"PIVOT", "UNPIVOT"} & set(words):
            continue  # DuckDB runs a PIVOT as several statements: the values' type, then the SELECT
        if kind not in READING_KINDS:
            raise _refuse(text, kind, WHY.get(kind, f"{kind} would write"))


def run_query(con: duckdb.DuckDBPyConnection, query: str) -> pl.DataFrame | None:
    """Check, then run, an analyst's input; its last result as a frame (None for statements without rows)."""
    check_statement(query)
    try:
        relation = con.sql(query)
    except duckdb.PermissionException as exc:
        raise WarehouseError(
            f"{str(exc).splitlines()[0]}. transship sql reads only the warehouse: to read a file, name it when "
            "you start (--read-file FILE); to read another warehouse, --attach NAME=FILE.") from None
    except duckdb.InvalidInputException as exc:
        if "configuration has been locked" not in str(exc):
            raise
        raise WarehouseError(f"{str(exc).splitlines()[0]}: settings are fixed in transship sql (only search_path "
                             "and schema may change).") from None
    return None if relation is None else relation.pl()


# Relations renamed when the intermediate layer came in: an analyst's saved query may still name them.
RENAMED = {"stg_flows_excluded": "intermediate.int_flows_excluded", "stg_revisions": "intermediate.int_revisions",
           "stg_flows": "intermediate.int_flows"}


def failure_text(exc: BaseException) -> str:
    """A failed query's first line, and the new name of a relation it asked for by an old one."""
    first = str(exc).splitlines()[0]
    for old, new in RENAMED.items():
        if f"name {old} does not exist" in first or f"name staging.{old} does not exist" in first:
            return f"{first} (staging.{old} is now {new}: same rows, new layer)"
    return first
