"""Cassandra/Keyspaces rows as Arrow: each CQL type's Arrow type (:func:`cql_to_arrow`), a page of
driver rows as an Arrow table (:func:`rows_to_table`), and the check that refuses, before any read,
a table with a column no Arrow type holds (:func:`check_mappable`)."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

# --- CQL -> Arrow ---------------------------------------------------------------------------------


DECIMAL_INTEGER_DIGITS = 20  # decimal128(38, 18)


class UnmappableCQLType(TypeError):
    """A CQL column type this project does not map to Arrow."""


def _scalar_arrow_types():
    import pyarrow as pa

    return {
        "ascii": pa.string(), "text": pa.string(), "varchar": pa.string(),
        "int": pa.int32(), "bigint": pa.int64(), "smallint": pa.int16(), "tinyint": pa.int8(),
        "counter": pa.int64(), "varint": pa.string(),  # arbitrary precision: kept exact as text
        "decimal": pa.decimal128(38, 18), "double": pa.float64(), "float": pa.float32(),
        "boolean": pa.bool_(), "timestamp": pa.timestamp("ms", tz="UTC"), "date": pa.date32(),
        "time": pa.time64("ns"), "uuid": pa.string(), "timeuuid": pa.string(), "inet": pa.string(),
        "blob": pa.binary(),
    }


def _split_parameters(inner: str) -> list[str]:
    """``"text, list<int>"`` -> ``["text", "list<int>"]`` (commas inside ``<>`` kept)."""
    parts, depth, start = [], 0, 0
    for index, char in enumerate(inner):
        depth += (char == "<") - (char == ">")
        if char == "," and depth == 0:
            parts.append(inner[start:index].strip())
            start = index + 1
    parts.append(inner[start:].strip())
    return parts


def cql_to_arrow(cql_type: str):
    """Arrow type for a CQL type name such as ``int``, ``list<text>`` or ``map<text, int>``.

    Scalars: see :data:`cql_type_names`; ``varint``, ``uuid``, ``timeuuid`` and ``inet`` become
    exact strings, ``decimal`` ``decimal128(38, 18)``, ``timestamp`` UTC milliseconds. ``list``
    and ``set`` become lists, ``map`` a map; ``frozen<>`` collections like their unfrozen form.
    :raises UnmappableCQLType: naming the type (``duration``, ``tuple``, user-defined types...).
    """
    import pyarrow as pa

    name = cql_type.strip().lower()
    scalars = _scalar_arrow_types()
    if name in scalars:
        return scalars[name]
    match = re.fullmatch(r"(\w+)<(.+)>", name, flags=re.S)
    if match:
        kind, parameters = match[1], _split_parameters(match[2])
        if kind in ("list", "set") and len(parameters) == 1:
            return pa.list_(cql_to_arrow(parameters[0]))
        if kind == "map" and len(parameters) == 2:
            return pa.map_(cql_to_arrow(parameters[0]), cql_to_arrow(parameters[1]))
        if kind == "frozen" and len(parameters) == 1 and re.match(r"(list|set|map)<", parameters[0]):
            return cql_to_arrow(parameters[0])
    raise UnmappableCQLType(
        f"CQL type {cql_type!r} has no Arrow mapping (mapped: {', '.join(sorted(scalars))}, list, set, map)"
    )


def cql_type_names() -> list[str]:
    """The scalar CQL types :func:`cql_to_arrow` maps."""
    return sorted(_scalar_arrow_types())


def _cql_name(driver_type) -> str:
    if isinstance(driver_type, str):
        return driver_type
    return driver_type.cql_parameterized_type()


def _converter(cql_type: str) -> Callable[[Any], Any] | None:
    """How to turn one driver value of ``cql_type`` into what ``pyarrow.array`` takes, or
    ``None`` when pyarrow takes the driver's values as they are (most scalars)."""
    name = cql_type.strip().lower()
    if name in ("uuid", "timeuuid", "varint", "inet"):
        return str
    if name == "date":  # cassandra.util.Date (days since epoch, any year) or datetime.date
        return lambda v: v.days_from_epoch if hasattr(v, "days_from_epoch") else v
    if name == "time":  # cassandra.util.Time (nanoseconds since midnight) or datetime.time
        return lambda v: v.nanosecond_time if hasattr(v, "nanosecond_time") else v
    match = re.fullmatch(r"(\w+)<(.+)>", name, flags=re.S)
    if not match:
        return None
    kind, parameters = match[1], _split_parameters(match[2])
    if kind == "frozen":
        return _converter(parameters[0])
    if kind in ("list", "set"):
        inner = _converter(parameters[0])
        if inner is None:
            return list
        return lambda v: [None if x is None else inner(x) for x in v]
    if kind == "map":
        key, item = _converter(parameters[0]) or _identity, _converter(parameters[1]) or _identity
        return lambda v: [(key(k), None if x is None else item(x)) for k, x in v.items()]
    return None


def _identity(value):
    return value


def rows_to_table(columns: Sequence[str], types: Sequence[Any], rows: Sequence[Sequence[Any]],
                  rename: dict[str, str] | None = None, casts: dict[str, str] | None = None):
    """One driver page -> an Arrow table with mapped types, renamed and cast columns.

    Columns are transposed once (``zip(*rows)``) and handed to ``pyarrow.array`` whole: only
    types pyarrow cannot take as the driver returns them (uuids, varints, dates, collections) are
    converted value by value.

    :param types: the driver's column types (or CQL type names); without them Arrow infers.
    :param rename: CQL column -> output column; columns it does not name are dropped.
    :param casts: output column -> Arrow type name (e.g. ``double``).
    :raises UnmappableCQLType: naming every selected column whose type has no mapping.
    :raises ValueError: naming the column when a value does not fit its Arrow type.
    """
    import pyarrow as pa

    selected = [(i, c) for i, c in enumerate(columns) if not rename or c in rename]
    cql_names = [_cql_name(t) for t in types] if types else []
    if cql_names:
        check_mappable({columns[i]: cql_names[i] for i, _ in selected})
    transposed = list(zip(*rows)) if rows else [()] * len(columns)
    arrays, names = [], []
    for index, column in selected:
        values = transposed[index]
        name = rename[column] if rename else column
        try:
            if cql_names and cql_names[index].strip().lower() == "decimal":
                array = _decimal_array(values)
            elif cql_names:
                arrow_type = cql_to_arrow(cql_names[index])
                convert = _converter(cql_names[index])
                if convert is not None:
                    values = [None if v is None else convert(v) for v in values]
                array = pa.array(values, type=arrow_type)
            else:
                array = pa.array(values)
            if casts and name in casts:
                array = array.cast(pa.type_for_alias(casts[name]))
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError) as err:
            described = cql_names[index] if cql_names else "inferred"
            raise ValueError(f"column {column!r} ({described}): a value does not fit its Arrow type: {err}") from err
        arrays.append(array)
        names.append(name)
    return pa.Table.from_arrays(arrays, names=names)


def _decimal_array(values: Sequence[Any]):
    """CQL decimals as ``decimal128(38, 18)``, exactly or not at all.

    Arrow parses the values' text (several times faster than converting ``Decimal`` objects to
    a fixed scale), refuses more than 18 fractional digits, and would silently wrap values with
    more than 20 integer digits, so those are refused here first.
    """
    import decimal
    from functools import partial
    from operator import is_not

    import pyarrow as pa

    present = list(filter(partial(is_not, None), values))
    try:  # adjusted() is the exponent of the leading digit (0 for NaN and infinities, refused by Arrow)
        widest = max(map(decimal.Decimal.adjusted, present), default=0)
    except TypeError:  # not Decimal objects (e.g. floats from a test or another driver)
        present = [decimal.Decimal(str(v)) for v in present]
        widest = max(map(decimal.Decimal.adjusted, present), default=0)
    if widest >= DECIMAL_INTEGER_DIGITS:
        value = max(present, key=decimal.Decimal.adjusted)
        raise pa.ArrowInvalid(f"{value} has more than {DECIMAL_INTEGER_DIGITS} integer digits")
    texts = [None if v is None else str(v) for v in values] if len(present) < len(values) else list(map(str, present))
    return pa.array(texts, type=pa.string()).cast(pa.decimal128(38, 18))


def check_mappable(column_types: dict[str, str]) -> None:
    """Raise one :class:`UnmappableCQLType` naming every column whose CQL type has no mapping."""
    bad = {}
    for column, cql_type in column_types.items():
        try:
            cql_to_arrow(cql_type)
        except UnmappableCQLType:
            bad[column] = cql_type
    if bad:
        from mlops.core.messages import name_list

        listed = name_list(bad.items(), show=lambda item: f"{item[0]!r} ({item[1]})")
        raise UnmappableCQLType(
            f"CQL type {next(iter(bad.values()))!r}: columns {listed} have no Arrow mapping (mapped: "
            f"{', '.join(cql_type_names())}, list, set, map); leave them out of source.keyspaces.columns"
        )
