"""The columnar path: many records at once, read and written column by column.

---------------------------------------------------------------- the columnar path (many records at once)
A batch transform's mini-batch, or any request of many records, is read and written column by
column: pyarrow splits the text into columns and converts the numeric ones, numpy/pandas build
the frame, and each response key becomes one list of CSV fields. The records, their types and
the bytes written are exactly those of the row-by-row functions above; whenever a payload is not
plain (see plain_csv_columns) these functions return None and the row-by-row ones decide.
"""

from __future__ import annotations

import csv
import io
import json
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mlops_serving.records import MAX_ROWS_PER_REQUEST, _cell, _csv_frame

if TYPE_CHECKING:
    from mlops_serving.compiled import EncodedRows
    from mlops_serving.records import LoadedModel

COLUMNAR_MIN_BYTES = 16 * 1024  # below this, a request is parsed row by row (one record: the csv module is faster)


def plain_csv_columns(payload: bytes, n_fields: int, wanted: list[int]) -> list[Any] | None:
    """The fields at ``wanted`` (positions among ``n_fields``) of every record of ``payload``, as
    pyarrow text columns, or None when the payload is not plain CSV.

    Plain: UTF-8, no quote character, no NUL, every CR followed by LF, at least two fields in every
    non-empty line and the same number in each. There, a record is its line split at the commas
    whatever the parser, and a blank line is no record. Anything else (quoted fields, a record of
    another width, a line of spaces, bytes that are not UTF-8) is left to :func:`parse_request`,
    which accepts or refuses it as it always has.
    """
    if n_fields < 2 or b'"' in payload or b"\x00" in payload or payload.count(b"\r") != payload.count(b"\r\n"):
        return None
    if not payload.isascii():
        try:
            payload.decode("utf-8")
        except UnicodeDecodeError:
            return None
    import pyarrow as pa
    from pyarrow import csv as pa_csv

    names = [f"f{i}" for i in range(n_fields)]
    try:
        table = pa_csv.read_csv(
            pa.py_buffer(payload),
            read_options=pa_csv.ReadOptions(column_names=names, use_threads=False,
                                             block_size=max(len(payload) + 1, 1 << 20)),
            parse_options=pa_csv.ParseOptions(quote_char=False, double_quote=False, ignore_empty_lines=True),
            convert_options=pa_csv.ConvertOptions(
                column_types={name: pa.string() for name in names}, include_columns=[names[i] for i in set(wanted)],
                strings_can_be_null=False, quoted_strings_can_be_null=False),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None
    return [table.column(names[i]) for i in wanted]


_STR_DTYPE = pd.array(np.array(["a"], dtype=object), dtype="str").dtype


def columnar_input(columns: list[Any], model: LoadedModel) -> pd.DataFrame | EncodedRows | None:
    """The model's input for records whose feature fields are ``columns`` (pyarrow text columns, in
    ``feature_columns`` order): what :func:`parse_request` gives for them, :class:`EncodedRows`
    when the model's feature step compiled, else the typed frame. None when a field needs the
    row-by-row conversion (a text pyarrow and Python read differently: ``nan``, ``1_0``, `` 1``...)
    or the records are none or too many for one request."""
    if not columns or not 0 < len(columns[0]) <= MAX_ROWS_PER_REQUEST:  # none or too many: the row path says so
        return None
    if model.compiled is not None:
        return model.compiled.encode_columns(columns, _csv_number_column)
    return columnar_frame(columns, model)


def _csv_number_column(column: Any) -> np.ndarray | None:
    """A text column's numbers as float64 (NaN for an empty field), or None when a field is one that
    pyarrow and Python's ``float()`` may read differently."""
    import pyarrow as pa
    import pyarrow.compute as pc

    try:  # an empty field is a missing value; pyarrow's and Python's float parsing agree on the rest
        numbers = pc.cast(pc.if_else(pc.equal(column, ""), pa.scalar(None, pa.string()), column), pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    if pc.any(pc.is_nan(numbers)).as_py():  # "nan", "nan(1)", ...: Python's float() decides
        return None
    return numbers.to_numpy(zero_copy_only=False)


def columnar_frame(columns: list[Any], model: LoadedModel) -> pd.DataFrame | None:
    """The typed frame :func:`parse_request` gives for records whose feature fields are ``columns``
    (one to ``MAX_ROWS_PER_REQUEST`` records; :func:`columnar_input` checks that and calls this for
    a model whose feature step did not compile)."""
    if model.categorical is None:  # types inferred per request: the row-by-row rule, on these records
        return _csv_frame(list(zip(*(column.to_pylist() for column in columns))), model.feature_columns)
    categorical = set(model.categorical)
    data = {}
    for name, column in zip(model.feature_columns, columns):
        if name in categorical:
            values = pd.array(column, dtype="str")
            if values.dtype != _STR_DTYPE:  # pandas before 3: the row-by-row path's object strings
                values = pd.array(np.asarray(column.to_numpy(zero_copy_only=False), dtype=object), dtype="str")
            data[name] = values
            continue
        if (numbers := _csv_number_column(column)) is None:
            return None
        data[name] = numbers
    return pd.DataFrame(data, columns=model.feature_columns)


def parse_csv_columnar(body: bytes | str, model: LoadedModel) -> pd.DataFrame | EncodedRows | None:
    """:func:`parse_request` of a ``text/csv`` body read column by column; None when it is not plain."""
    payload = body.encode("utf-8") if isinstance(body, str) else body
    n_fields = len(model.feature_columns)
    columns = plain_csv_columns(payload, n_fields, list(range(n_fields)))
    return None if columns is None else columnar_input(columns, model)


def csv_field(value: Any) -> str:
    """``value`` as the csv module writes it in a row of several fields (quoted when it must be)."""
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow([value, ""])
    return out.getvalue()[:-2]


ARROW_FLOAT_TEXTS_MIN = 256  # from this many values on, floats are written by pyarrow (about 5x faster)


def _float_texts(values: np.ndarray) -> list[str] | None:
    """``repr`` of each float (what csv and json write); None if any is not finite.

    Many values are cast to text by pyarrow, whose shortest round-trip digits are ``repr``'s; it
    writes other notations outside ``1e-4 <= |x| < 1e9`` and for whole numbers, so those few
    are written by ``repr`` itself.
    """
    if values.dtype.kind != "f" or not np.isfinite(values).all():
        return None
    if len(values) < ARROW_FLOAT_TEXTS_MIN:
        return repr(values.tolist())[1:-1].split(", ")
    import pyarrow as pa
    import pyarrow.compute as pc

    values = np.asarray(values, dtype=np.float64)
    texts = pc.cast(pa.array(values), pa.string()).to_pylist()
    magnitude = np.abs(values)
    for i in np.flatnonzero((magnitude < 1e-4) | (magnitude >= 1e9) | (values == np.trunc(values))).tolist():
        texts[i] = repr(float(values[i]))
    return texts


def csv_response_fields(prediction: dict[str, Any], keys: list[str]) -> list[list[str]] | None:
    """Per response key, the CSV field :func:`write_response` writes for each record (list keys as
    JSON, quoted), computed a column at a time; None when a value needs the row-by-row writer
    (a probability that is not a finite float, a label that is not hashable)."""
    n = len(prediction["predicted_label"])
    if not n:
        return [[] for _ in keys]
    table = np.asarray(prediction["probabilities"]) if "probabilities" in prediction else None
    by_class: dict[int, list[str] | None] = {}  # repr of each class's probabilities, written once

    def class_texts(j: int) -> list[str] | None:
        if j not in by_class:
            by_class[j] = _float_texts(table[:, j])
        return by_class[j]

    fields = []
    for key in keys:
        value = prediction[key]
        if key == "labels":
            fields.append([csv_field(json.dumps(_cell(list(value))))] * n)
        elif key == "probabilities":
            if table.dtype.kind != "f" or table.ndim != 2:
                return None
            texts = [class_texts(j) for j in range(table.shape[1])]
            if any(t is None for t in texts):
                return None
            if len(texts) > 1:  # "[a, b]" holds the delimiter: quoted
                inner = map(", ".join, zip(*texts))
                fields.append(('"[' + ']"\x00"['.join(inner) + ']"').split("\x00"))
            else:
                fields.append(("[" + "]\x00[".join(texts[0]) + "]").split("\x00"))
        else:
            array = np.asarray(value)
            if array.dtype.kind == "f":
                same = [j for j in range(table.shape[1]) if np.array_equal(array, table[:, j])] \
                    if table is not None and table.ndim == 2 and key == "probability" else []
                texts = class_texts(same[0]) if same else _float_texts(array)
                if texts is None:
                    return None
            else:
                values = array.tolist()
                try:
                    rendered = {v: csv_field(_cell(v)) for v in set(values)}
                except TypeError:
                    return None
                texts = list(map(rendered.__getitem__, values))
            fields.append(texts)
    return fields


def csv_lines(fields: list[list[str]]) -> str:
    """Records of CSV fields (one list per column) as newline-terminated lines."""
    if not fields or not fields[0]:
        return ""
    if len(fields) == 1:  # a record of one empty field is written "" (else it would read as no record)
        return "\n".join('""' if text == "" else text for text in fields[0]) + "\n"
    return "\n".join(map(",".join, zip(*fields))) + "\n"
