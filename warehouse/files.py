"""Reading source files as text tables: CSV or JSON, plain or gzipped, UTF-8, UTF-16, GB18030 or Latin-1.

Every value is read as text; typing and checking happen in the loaders, which can then say which row and
column was wrong. Each frame carries `source_row`: the line number in a CSV file (the header is line 1)
or the 1-based record number in a JSON file.

Every file is hostile until read: its size after decompression and a JSON document's nesting are capped
(`InputLimits`, in force for the files of one load), and a file holding NUL bytes is binary, not a table.
A file beyond a cap is refused with an error that names it and the setting that raises the cap.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl


class IngestError(ValueError):
    """A file cannot be loaded; the message names the file (and row and column where it can)."""


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def strip_blanks(frame: pl.DataFrame, columns: list[str]) -> pl.DataFrame:
    """`frame` with leading and trailing whitespace taken off the text `columns` that have any. A column
    without padding (the usual case) stays the column as read: stripping every column copied each one
    (16 bytes a value as Polars holds text), some 400 MB for a 1.5 M-row Comtrade file."""
    if not columns or frame.is_empty():
        return frame
    padded = frame.select(pl.col(c).str.contains(r"^\s|\s$").any().fill_null(False) for c in columns).row(0)
    todo = [c for c, pad in zip(columns, padded) if pad]
    return frame.with_columns(pl.col(c).str.strip_chars() for c in todo) if todo else frame


@dataclass(frozen=True)
class InputLimits:
    """What one input file may cost to read. Reading a file takes a few times its size in memory, so the cap
    on its size (after decompression: a 2 MB .gz can hold gigabytes) is what bounds a load's memory."""

    max_file_bytes: int = 1 << 30  # one file's content, decompressed (1 GiB)
    max_json_depth: int = 32  # nesting of a JSON document: trade records are 2 or 3 levels deep

    def __post_init__(self) -> None:
        if self.max_file_bytes < 1 or self.max_json_depth < 2:
            raise ValueError(f"input limits too small to read anything: {self}")


_LIMITS: ContextVar[InputLimits] = ContextVar("input_limits", default=InputLimits())


@contextmanager
def limits_in_force(limits: InputLimits) -> Iterator[None]:
    """Apply `limits` to the files read inside the block (warehouse.ingest.prepare_file sets them per file)."""
    token = _LIMITS.set(limits)
    try:
        yield
    finally:
        _LIMITS.reset(token)


def current_limits() -> InputLimits:
    return _LIMITS.get()


def _too_large(path: Path, what: str, limit: int) -> IngestError:
    return IngestError(f"{path}: {what} more than {limit:,} bytes, the cap on one input file. Split it, or raise "
                       f"the cap (transship run --max-file-mb, or TRANSSHIP_MAX_FILE_MB) if this much is meant.")


def read_bytes(path: Path) -> bytes:
    """A text file's bytes, gunzipped when gzipped, UTF-16 turned into UTF-8; refused when larger than the
    cap or when it holds NUL bytes (binary data)."""
    limit = current_limits().max_file_bytes
    path = Path(path)
    with open(path, "rb") as fh:
        gzipped = fh.read(2) == b"\x1f\x8b"
    if gzipped:
        try:
            with gzip.open(path, "rb") as gz:
                data = gz.read(limit + 1)
        except (OSError, EOFError, zlib.error) as exc:
            raise IngestError(f"{path}: looks gzipped but cannot be decompressed ({exc})") from None
        if len(data) > limit:
            raise _too_large(path, "decompresses to", limit)
    else:
        if path.stat().st_size > limit:
            raise _too_large(path, "holds", limit)
        data = path.read_bytes()
    data = _utf16_as_utf8(data, path)
    nul = data.find(b"\x00")
    if nul >= 0:
        raise IngestError(f"{path}: holds a NUL byte (at byte {nul:,}): binary data, not a text table. Export it "
                          "again as CSV (UTF-8) or JSON.")
    return data


def _utf16_as_utf8(data: bytes, path: Path | None = None, partial: bool = False) -> bytes:
    """UTF-16 text (with a byte-order mark, or without one but with every other byte NUL in its first
    kilobyte, as Excel's "Unicode text" is) re-encoded as UTF-8; other data unchanged. `partial`: the data
    is the start of a file and may end in half a character."""
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        encoding = "utf-16"
    else:  # ASCII-range text as UTF-16: one byte of each pair NUL, the other not (a file of NULs is neither)
        head = data[:1024]
        even, odd = head[0::2], head[1::2]
        if len(head) < 8:
            return data
        if odd.count(0) >= 0.9 * len(odd) and even.count(0) <= 0.1 * len(even):
            encoding = "utf-16-le"
        elif even.count(0) >= 0.9 * len(even) and odd.count(0) <= 0.1 * len(odd):
            encoding = "utf-16-be"
        else:
            return data
    try:
        return data.decode(encoding, errors="ignore" if partial else "strict").lstrip("\ufeff").encode("utf-8")
    except UnicodeDecodeError as exc:
        raise IngestError(f"{path}: looks like UTF-16 text but is not ({exc.reason} at byte {exc.start:,})") from None


_CJK = re.compile(r"[\u4e00-\u9fff]")


def decode(data: bytes) -> tuple[str, str]:
    """Text and the encoding used. Most files are UTF-8; Comtrade's reference CSVs are Latin-1; China's
    customs exports are often GB18030 (GBK). GB18030 decodes almost any bytes, so it is taken only when
    the first line then reads as Chinese; otherwise Latin-1."""
    try:
        return data.decode("utf-8-sig"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        text = data.decode("gb18030")
        if _CJK.search(text.split("\n", 1)[0]):
            return text, "gb18030"
    except UnicodeDecodeError:
        pass
    return data.decode("latin-1"), "latin-1"


def utf8_bytes(path: Path) -> bytes:
    """A file's content as UTF-8 bytes without a byte-order mark, whatever `decode` finds it in. A UTF-8
    file is handed on as read, never as a Python str: Polars parses bytes, and a 150 MB file passed as
    text (io.StringIO holds four bytes a character) cost a gigabyte at its peak."""
    data = read_bytes(path)
    try:
        data.decode("utf-8")  # only checks; the text is dropped at once
    except UnicodeDecodeError:
        return decode(data)[0].encode("utf-8")
    return data[3:] if data.startswith(b"\xef\xbb\xbf") else data


def head_text(path: Path, n_bytes: int = 65536) -> str:
    """The start of a file as text (decompressed), for recognising its format by its header."""
    with open(path, "rb") as fh:
        start = fh.read(n_bytes)
    if start[:4] == b"PK\x03\x04":  # a spreadsheet (XLSX is a zip): its first rows as CSV text
        return sheet_head_text(path)
    if start[:2] == b"\x1f\x8b":
        try:
            with gzip.open(path, "rb") as gz:
                start = gz.read(n_bytes)
        except (OSError, EOFError, zlib.error):
            return ""
    try:
        start = _utf16_as_utf8(start, path, partial=True)
    except IngestError:
        return ""
    if len(start) >= n_bytes and b"\n" in start:
        start = start[: start.rfind(b"\n") + 1]  # never decode half a multi-byte character
    return decode(start)[0]


def normalise_name(name: str) -> str:
    """camelCase, snake_case and spaced headers to one key: 'partnerCode', 'partner_code' -> 'partnercode'."""
    return re.sub(r"[^0-9a-z]", "", name.lower())


def read_csv_text(path: Path) -> pl.DataFrame:
    data = utf8_bytes(path)
    if not data.strip():
        raise IngestError(f"{path}: the file is empty")
    try:
        frame = pl.read_csv(
            data,
            infer_schema=False,
            truncate_ragged_lines=False,
        )
    except (pl.exceptions.ComputeError, pl.exceptions.NoDataError) as exc:
        raise IngestError(f"{path}: not a readable CSV table ({str(exc).splitlines()[0]})") from None
    if frame.height == 0:
        raise IngestError(f"{path}: the file has a header but no data rows")
    # Line numbers as a person sees them in an editor: header = 1, first record = 2.
    return frame.with_row_index("source_row", offset=2).with_columns(pl.col("source_row").cast(pl.Int64))


def json_depth(data: bytes) -> int:
    """How deeply a JSON document's arrays and objects nest (brackets inside strings not counted), found
    with NumPy over the document's brackets, quotes and backslashes: no parser recursion, one pass."""
    if not data:
        return 0
    special = np.zeros(256, dtype=bool)
    special[[ord(c) for c in '"\\[]{}']] = True
    codes = np.frombuffer(data, dtype=np.uint8)
    pos = np.flatnonzero(special[codes])
    chars = codes[pos]
    quote = chars == ord('"')
    slash = chars == ord("\\")
    if slash.any():  # a quote after an odd run of backslashes is escaped, inside a string
        idx = np.arange(len(pos))
        follows = np.zeros(len(pos), dtype=bool)
        follows[1:] = slash[1:] & slash[:-1] & (pos[1:] == pos[:-1] + 1)
        run_start = np.maximum.accumulate(np.where(slash & ~follows, idx, 0))
        run_len = idx - run_start + 1
        escaped = np.zeros(len(pos), dtype=bool)
        escaped[1:] = quote[1:] & slash[:-1] & (pos[:-1] == pos[1:] - 1) & (run_len[:-1] % 2 == 1)
        quote &= ~escaped
    outside = np.cumsum(quote) % 2 == 0
    step = np.where(outside & ((chars == ord("[")) | (chars == ord("{"))), 1,
                    np.where(outside & ((chars == ord("]")) | (chars == ord("}"))), -1, 0))
    return int(np.cumsum(step, dtype=np.int64).max(initial=0))


def parse_json(path: Path, data: bytes) -> Any:
    """A JSON document, or an IngestError naming the file: not JSON, or nested deeper than the cap."""
    limit = current_limits().max_json_depth
    depth = json_depth(data)
    if depth > limit:
        raise IngestError(f"{path}: JSON nested {depth:,} levels deep; trade records nest 2 or 3 levels (the cap is "
                          f"{limit}). Not a trade file?")
    text, _ = decode(data)
    if not text.strip():
        raise IngestError(f"{path}: the file is empty")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise IngestError(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    except RecursionError:  # only with a cap raised past what the parser can follow
        raise IngestError(f"{path}: JSON nested too deep to read") from None


def read_json_records(path: Path) -> pl.DataFrame:
    doc = parse_json(path, read_bytes(path))
    records = doc.get("data") if isinstance(doc, dict) else doc
    if not isinstance(records, list):
        raise IngestError(f"{path}: expected a JSON list of records or an object with a 'data' list")
    if not records:
        raise IngestError(f"{path}: the file holds no records ('data' is empty)")
    bad = next((i for i, r in enumerate(records, start=1) if not isinstance(r, dict)), None)
    if bad is not None:
        raise IngestError(f"{path}: record {bad} is not a JSON object")
    try:
        frame = pl.from_dicts(records, infer_schema_length=None, strict=False)
    except (pl.exceptions.PolarsError, TypeError, ValueError, OverflowError) as exc:
        raise IngestError(f"{path}: records do not form a table ({str(exc).splitlines()[0]})") from None
    nested = [name for name, dtype in frame.schema.items() if dtype.is_nested() or dtype == pl.Object]
    if nested:
        raise IngestError(f"{path}: field {nested[0]!r} holds lists or objects; a trade record's fields are "
                          "numbers and text")
    # Every value as text, JSON null as null: typing happens in the loader, where errors can name the row.
    frame = frame.select(pl.all().cast(pl.String))
    return frame.with_row_index("source_row", offset=1).with_columns(pl.col("source_row").cast(pl.Int64))


def read_table(path: Path) -> pl.DataFrame:
    """A CSV or JSON file as an all-text frame with `source_row`."""
    head = head_text(path, 4096).lstrip()
    if head.startswith(("{", "[")):
        return read_json_records(path)
    return read_csv_text(path)


def read_sheet_rows(path: Path) -> pl.DataFrame:
    """The first sheet of an XLSX workbook as text columns column_0.. with `source_row` = the row number
    Excel shows (empty rows kept, so the numbers match)."""
    limit = current_limits().max_file_bytes
    try:
        with zipfile.ZipFile(path) as book:  # a workbook is a zip: what it expands to is what gets read
            expanded = sum(member.file_size for member in book.infolist())
    except (zipfile.BadZipFile, OSError) as exc:
        raise IngestError(f"{path}: not a readable XLSX workbook ({exc})") from None
    if expanded > limit:
        raise _too_large(path, "expands to", limit)
    try:
        frame = pl.read_excel(path, sheet_id=1, has_header=False, infer_schema_length=0,
                              drop_empty_rows=False, drop_empty_cols=False)
    except Exception as exc:  # noqa: BLE001 - fastexcel raises several types for a damaged workbook
        raise IngestError(f"{path}: not a readable XLSX workbook ({str(exc).splitlines()[0]})") from None
    frame = frame.select(pl.all().cast(pl.String))
    return frame.with_row_index("source_row", offset=1).with_columns(pl.col("source_row").cast(pl.Int64))


def sheet_head_text(path: Path, n_rows: int = 30) -> str:
    """The first rows of a workbook's first sheet, as CSV text, for recognising its format."""
    try:
        frame = read_sheet_rows(path).head(n_rows).drop("source_row")
    except IngestError:
        return ""
    buffer = io.StringIO()
    frame.write_csv(buffer, include_header=False)
    return buffer.getvalue()


def read_rows(path: Path) -> pl.DataFrame:
    """A CSV (any encoding `decode` knows) or the first sheet of an XLSX as headerless text columns
    column_0.., with `source_row` = the line or row number a person sees. For files whose header is not
    on the first line: pick the header row, then name the columns with `header_names`."""
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        return read_sheet_rows(path)
    data = utf8_bytes(path)
    if not data.strip():
        raise IngestError(f"{path}: the file is empty")
    try:
        raw = pl.read_csv(data, has_header=False, infer_schema=False, truncate_ragged_lines=True)
    except (pl.exceptions.ComputeError, pl.exceptions.NoDataError) as exc:
        raise IngestError(f"{path}: not a readable CSV table ({str(exc).splitlines()[0]})") from None
    return raw.with_row_index("source_row", offset=1).with_columns(pl.col("source_row").cast(pl.Int64))


def header_names(cells: tuple | list) -> list[str]:
    """Column names from a header row: blank cells become column_N, repeated names get a '_' suffix."""
    names: list[str] = []
    for n, cell in enumerate(cells):
        name = (str(cell).strip() if cell is not None else "") or f"column_{n + 1}"
        while name in names:
            name += "_"
        names.append(name)
    return names
