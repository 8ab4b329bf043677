"""A strict reader for landed CSV files: a clean comma-separated UTF-8 table, or an error naming
the file and what is wrong with it; and the landed file as an Arrow table in the schema's types."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops.core.messages import name_list
from mlops.validation.settings import EXTRA_COLUMN_POLICIES

if TYPE_CHECKING:
    from collections import Counter
    from collections.abc import Mapping, Sequence

    import pandas as pd
    import pyarrow as pa

log = logging.getLogger(__name__)

# Formats landed by mistake under a .csv name: (magic bytes at the start, what it is, what to do).
_NOT_CSV = (
    (b"PAR1", "a Parquet file", "land the CSV export instead, or convert it "
     "(pandas.read_parquet(path).to_csv(out, index=False))"),
    (b"\x1f\x8b", "a gzip-compressed file", "decompress it (gunzip) before landing it"),
    (b"PK\x03\x04", "a ZIP archive (an Excel .xlsx workbook is one)",
     "unpack it, or save the sheet as 'CSV UTF-8 (comma delimited)'"),
    (b"\x28\xb5\x2f\xfd", "a Zstandard-compressed file", "decompress it (unzstd) before landing it"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an Excel 97-2003 .xls workbook",
     "save the sheet as 'CSV UTF-8 (comma delimited)'"),
    (b"\xff\xfe", "UTF-16 text (little-endian byte order mark)", "re-export the file as UTF-8"),
    (b"\xfe\xff", "UTF-16 text (big-endian byte order mark)", "re-export the file as UTF-8"),
)


def load_csv_strict(
    path_or_buffer: Any,
    expected_columns: Sequence[str] | None,
    *,
    dtype: Mapping[str, Any] | None = None,
    extra_columns: str = "fail",
) -> pd.DataFrame:
    """Read a landed CSV file, refusing anything that is not a clean comma-separated UTF-8 table.

    :param path_or_buffer: A path (``str``, ``Path``, ``ObjectStoragePath``), bytes, or a binary or
        text file object.
    :param expected_columns: The header's column set (order free); ``None`` skips the check.
    :param dtype: Passed to ``pandas.read_csv``, e.g. ``{"Invoice": "str", "StockCode": "str"}``
        for retail so that invoice numbers keep their ``C`` prefix semantics in every file.
    :param extra_columns: ``fail`` (default): a column not in ``expected_columns`` is an error;
        ``warn``: it is logged as a warning and returned with the others (the caller selects).
    :raises ValueError: naming the file and the problem: empty file, header only, wrong
        delimiter, ragged or truncated rows, bytes that are not UTF-8, duplicate or mismatched
        columns, or another format under a CSV name (Parquet, gzip, ZIP/xlsx, zstd, xls, UTF-16),
        which is named. A UTF-8 byte order mark is accepted. Lists of column names in messages are
        bounded (:func:`mlops.core.messages.name_list`).
    """
    import codecs
    import csv
    import io
    from collections import Counter

    import pandas as pd

    if extra_columns not in EXTRA_COLUMN_POLICIES:
        raise ValueError(f"extra_columns must be one of {', '.join(EXTRA_COLUMN_POLICIES)}, got {extra_columns!r}")
    data, source_name = _read_bytes(path_or_buffer)
    name = source_name or "the file"
    if not data.strip():
        raise ValueError(f"{_prefix(source_name)}the file is empty ({len(data)} bytes)")
    for magic, what, advice in _NOT_CSV:
        if data.startswith(magic):
            raise ValueError(
                f"{_prefix(source_name)}not a CSV file: this is {what} (it starts with the bytes {magic!r}), "
                f"not comma-separated UTF-8 text; {advice}"
            )
    data = data.removeprefix(codecs.BOM_UTF8)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise ValueError(
            f"{_prefix(source_name)}not UTF-8: byte 0x{data[err.start]:02x} at line {line} (offset {err.start}); "
            "re-export the file as UTF-8"
        ) from None

    reader = csv.reader(io.StringIO(text, newline=""))
    header = next((row for row in reader if row), None)
    if header is None:
        raise ValueError(f"{_prefix(source_name)}the file is empty (only blank lines)")
    if len(header) == 1:
        for delimiter, label in ((";", "semicolon"), ("\t", "tab"), ("|", "pipe")):
            if delimiter in header[0]:
                raise ValueError(
                    f"{_prefix(source_name)}wrong delimiter: the header is one column {header[0][:80]!r} that contains "
                    f"{label}s; expected a comma-separated file"
                )
    duplicates = sorted(c for c, n in Counter(header).items() if n > 1)
    if duplicates:
        raise ValueError(f"{_prefix(source_name)}duplicate column names in the header: {name_list(duplicates)}")
    widths = Counter(map(len, reader))
    widths.pop(0, None)  # blank lines, skipped by pandas too
    if not widths:
        raise ValueError(f"{_prefix(source_name)}header only, no data rows (columns: {name_list(header)})")
    if set(widths) != {len(header)}:
        raise ValueError(_ragged_message(_prefix(source_name), text, len(header), widths))
    if expected_columns is not None:
        present, expected = set(header), set(expected_columns)
        missing = [c for c in expected_columns if c not in present]
        extra = [c for c in header if c not in expected]
        if missing or (extra and extra_columns == "fail"):
            problems = [f"missing {name_list(missing)}"] if missing else []
            problems += [f"unexpected {name_list(extra)}"] if extra and extra_columns == "fail" else []
            raise ValueError(f"{_prefix(source_name)}columns do not match the schema: {'; '.join(problems)}")
        if extra:
            log.warning("%s: unexpected columns %s accepted (extra_columns=warn)", name, name_list(extra))
    return pd.read_csv(io.StringIO(text), dtype=dtype)


def landed_csv_to_table(data: bytes, schema: dict[str, Any], name: str, extra_columns: str = "fail") -> pa.Table:
    """A landed CSV file as an Arrow table in the schema's column order, after checking it.

    With ``extra_columns="warn"`` (the use case's ``validation.extra_columns``) columns the
    schema does not name are kept after the schema's, so the validation gate reports them.

    :raises ValueError: naming ``name`` and the problem: columns (via ``load_csv_strict``),
        a non-numeric value in a ``numeric`` column, an unparseable ``datetime_columns`` value.
    """
    import pandas as pd
    import pyarrow as pa

    columns = schema["columns"]
    text_columns = list(schema.get("text_columns", []))
    try:
        frame = load_csv_strict(data, columns, dtype={c: "str" for c in text_columns} or None,
                                extra_columns=extra_columns)
    except ValueError as err:
        raise ValueError(f"{name}: {err}") from err
    for column in schema.get("numeric", []):
        if not pd.api.types.is_numeric_dtype(frame[column]):
            bad = pd.to_numeric(frame[column], errors="coerce").isna() & frame[column].notna()
            example = frame.loc[bad, column].iloc[0] if bad.any() else None
            raise ValueError(f"{name}: column {column!r} should be numeric; {int(bad.sum())} value(s) are not, "
                             f"e.g. {example!r}")
    for column in schema.get("datetime_columns", []):
        try:
            frame[column] = pd.to_datetime(frame[column])
        except (ValueError, TypeError) as err:
            raise ValueError(f"{name}: column {column!r} holds values that are not dates: {err}") from err
    for column in text_columns:
        frame[column] = frame[column].astype("string")
    extras = [c for c in frame.columns if c not in columns]
    return pa.Table.from_pandas(frame[columns + extras], preserve_index=False)


def _prefix(name: str | None) -> str:
    """``"<name>: "`` for messages; nothing for bytes or a nameless buffer, whose caller names them."""
    return f"{name}: " if name else ""


def _read_bytes(source: Any) -> tuple[bytes, str | None]:
    if isinstance(source, (bytes, bytearray)):
        return bytes(source), None
    if isinstance(source, str):
        source = Path(source)
    if hasattr(source, "read_bytes"):  # pathlib.Path, ObjectStoragePath
        return source.read_bytes(), str(source)
    if hasattr(source, "read"):
        content = source.read()
        name = getattr(source, "name", None)
        return (content.encode("utf-8") if isinstance(content, str) else bytes(content)), \
            (str(name) if name else None)
    raise TypeError(f"cannot read a CSV from {type(source).__name__}: pass a path, bytes or a file object")


def _ragged_message(prefix: str, text: str, width: int, widths: Counter[int]) -> str:
    """Find the first ragged row (error path only, so a Python loop is fine)."""
    import csv
    import io

    reader = csv.reader(io.StringIO(text, newline=""))
    next(row for row in reader if row)  # the header
    bad_rows = sum(n for w, n in widths.items() if w != width)
    rows = [(reader.line_num, row) for row in reader if row]
    last_line, last_row = rows[-1]
    if bad_rows == 1 and len(last_row) < width:
        quote = " inside an unclosed quote" if text.count('"') % 2 else ""
        return (
            f"{prefix}truncated file: the last row (line {last_line}) ends{quote} after {len(last_row)} of "
            f"{width} fields; the file was cut off while it was written or copied"
        )
    for line, row in rows:
        if len(row) != width:
            return (
                f"{prefix}ragged rows: line {line} has {len(row)} fields where the header "
                f"has {width} ({bad_rows} such rows)"
            )
    return f"{prefix}ragged rows ({bad_rows} rows do not have {width} fields)"
