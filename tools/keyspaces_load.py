"""Load generated sample data into a Keyspaces (or Cassandra) table with concurrent prepared inserts.

    python -m tools.keyspaces_load --table customers --rows 5000
    python -m tools.keyspaces_load --table online_retail --rows 20000 --create-schema

The rows come from ``include/data/generate.py`` (the same deterministic generators as the demo),
renamed to the table's CQL columns through ``source.keyspaces.columns`` of the use case that
reads the table, and typed after the table's DDL in ``sql/keyspaces/``. ``--create-schema``
first applies every ``sql/keyspaces/*.cql`` file (on a plain Cassandra the keyspace gets
``SimpleStrategy`` with one replica instead of Keyspaces' ``SingleRegionStrategy``; on Amazon
Keyspaces it waits until the new tables are ``ACTIVE``). Rows are upserts: loading the same
rows twice leaves one copy. The command prints the write report and exits non-zero when any
row failed.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops.core.paths import PROJECT_ROOT

if TYPE_CHECKING:
    import pandas as pd

    from mlops.hooks.keyspaces import KeyspacesHook, WriteReport

DDL_DIR = PROJECT_ROOT / "sql" / "keyspaces"
# table -> the use case whose pipeline config reads it (source.keyspaces)
TABLE_USE_CASES = {"customers": "churn", "online_retail": "retail"}
CHUNK_ROWS = 5000


# --- the DDL --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TableDDL:
    """A ``CREATE TABLE`` statement, parsed: column types in order and the primary key."""

    keyspace: str
    name: str
    columns: dict[str, str]
    partition_key: tuple[str, ...]
    clustering: tuple[str, ...] = ()

    @property
    def primary_key(self) -> tuple[str, ...]:
        return self.partition_key + self.clustering


def ddl_statements(text: str) -> list[str]:
    """The statements of a CQL file: ``--`` and ``//`` comments dropped, split on ``;``."""
    without_comments = re.sub(r"(--|//)[^\n]*", "", text)
    return [s.strip() for s in without_comments.split(";") if s.strip()]


def _split_top_level(text: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for index, char in enumerate(text):
        depth += (char in "(<") - (char in ")>")
        if char == "," and depth == 0:
            parts.append(text[start:index].strip())
            start = index + 1
    parts.append(text[start:].strip())
    return [p for p in parts if p]


def _identifier(text: str) -> str:
    text = text.strip()
    return text[1:-1].replace('""', '"') if text.startswith('"') else text.lower()


def parse_create_table(statement: str) -> TableDDL:
    """Parse ``CREATE TABLE [IF NOT EXISTS] ks.t (col type [PRIMARY KEY], ..., PRIMARY KEY (...))``."""
    match = re.match(r"\s*CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?([\w\"]+)\.([\w\"]+)\s*\((.*)\)",
                     statement, flags=re.I | re.S)
    if not match:
        raise ValueError(f"not a CREATE TABLE statement with a keyspace-qualified name: {statement[:80]!r}")
    depth, end = 0, None
    body = match[3]
    for index, char in enumerate(body):  # the column list ends at its matching parenthesis
        depth += (char == "(") - (char == ")")
        if depth < 0:
            end = index
            break
    body = body[:end]
    columns: dict[str, str] = {}
    partition: tuple[str, ...] = ()
    clustering: tuple[str, ...] = ()
    for item in _split_top_level(body):
        key = re.fullmatch(r"PRIMARY\s+KEY\s*\((.*)\)", item, flags=re.I | re.S)
        if key:
            parts = _split_top_level(key[1])
            first = parts[0]
            if first.startswith("("):
                partition = tuple(_identifier(p) for p in _split_top_level(first[1:-1]))
            else:
                partition = (_identifier(first),)
            clustering = tuple(_identifier(p) for p in parts[1:])
            continue
        column = re.fullmatch(r'("[^"]+"|\w+)\s+(.+?)(\s+PRIMARY\s+KEY)?', item, flags=re.I | re.S)
        if not column:
            raise ValueError(f"cannot parse column definition {item!r}")
        name = _identifier(column[1])
        columns[name] = re.sub(r"\s+", " ", column[2].strip().lower())
        if column[3]:
            partition = (name,)
    if not partition:
        raise ValueError(f"table {match[1]}.{match[2]} has no primary key")
    return TableDDL(_identifier(match[1]), _identifier(match[2]), columns, partition, clustering)


def schema_statements(keyspaces: bool = True, directory: Path = DDL_DIR) -> list[str]:
    """Every statement of ``sql/keyspaces/*.cql`` in file order; for a plain Cassandra
    (``keyspaces=False``) the keyspace uses ``SimpleStrategy`` with one replica."""
    statements = []
    for path in sorted(directory.glob("*.cql")):
        for statement in ddl_statements(path.read_text(encoding="utf-8")):
            if not keyspaces:
                statement = re.sub(r"\{\s*'class'\s*:\s*'SingleRegionStrategy'\s*\}",
                                   "{'class': 'SimpleStrategy', 'replication_factor': 1}", statement)
            statements.append(statement)
    return statements


def table_ddl(table: str, directory: Path = DDL_DIR) -> TableDDL:
    """The parsed DDL of ``table`` from ``sql/keyspaces/``."""
    for statement in schema_statements(directory=directory):
        if re.match(r"\s*CREATE\s+TABLE", statement, flags=re.I):
            parsed = parse_create_table(statement)
            if parsed.name == table:
                return parsed
    raise ValueError(f"no CREATE TABLE for {table!r} in {directory}")


def apply_schema(hook: KeyspacesHook, keyspaces: bool | None = None, timeout_s: float = 600.0) -> list[str]:
    """Run the DDL in ``sql/keyspaces/`` through ``hook``; on Amazon Keyspaces wait until the
    keyspace exists and every table is ``ACTIVE`` (Keyspaces creates them asynchronously).

    :param keyspaces: whether the target is Amazon Keyspaces; default: from the connection's host.
    :return: the names of the tables created (or already there).
    """
    if keyspaces is None:
        keyspaces = hook.connection_settings().is_keyspaces
    tables = []
    for statement in schema_statements(keyspaces=keyspaces):
        hook.execute(statement)
        if re.match(r"\s*CREATE\s+KEYSPACE", statement, flags=re.I) and keyspaces:
            name = re.search(r"EXISTS\s+([\w\"]+)|KEYSPACE\s+([\w\"]+)", statement, flags=re.I)
            keyspace = _identifier(name[1] or name[2])
            _wait_until(hook, "SELECT keyspace_name FROM system_schema_mcs.keyspaces WHERE keyspace_name = %s",
                        (keyspace,), lambda rows: bool(rows), f"keyspace {keyspace}", timeout_s)
        if re.match(r"\s*CREATE\s+TABLE", statement, flags=re.I):
            ddl = parse_create_table(statement)
            tables.append(f"{ddl.keyspace}.{ddl.name}")
            if keyspaces:
                _wait_until(hook, "SELECT status FROM system_schema_mcs.tables "
                                  "WHERE keyspace_name = %s AND table_name = %s",
                            (ddl.keyspace, ddl.name), lambda rows: bool(rows) and rows[0][0] == "ACTIVE",
                            f"table {ddl.keyspace}.{ddl.name}", timeout_s)
    return tables


def _wait_until(hook: KeyspacesHook, query: str, parameters: tuple, done, what: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    delay = 1.0
    while True:
        rows = list(hook.execute(query, parameters))
        if done(rows):
            return
        if time.monotonic() + delay > deadline:
            raise TimeoutError(f"{what} not ready after {timeout_s:.0f}s (last answer {rows!r})")
        hook.log.info("waiting for %s to become active", what)
        time.sleep(delay)
        delay = min(delay * 2, 15.0)


# --- sample rows ----------------------------------------------------------------------------------


def sample_frame(table: str, rows: int, seed: int | None = None) -> pd.DataFrame:
    """Deterministic sample data for ``table`` in the use case's schema (the demo's generators)."""
    from mlops.core.entrypoints import generators_module

    if table not in TABLE_USE_CASES:
        raise ValueError(f"no sample data for table {table!r} (have: {', '.join(sorted(TABLE_USE_CASES))})")
    generate = getattr(generators_module(), TABLE_USE_CASES[table])
    return generate(rows) if seed is None else generate(rows, seed=seed)


def _python_values(values: pd.Series, cql_type: str) -> list[Any]:
    """One column as the Python values the driver binds for ``cql_type`` (nulls as ``None``)."""
    from decimal import Decimal

    import pandas as pd

    missing = values.isna().to_numpy()
    if cql_type == "timestamp":
        converted = list(pd.to_datetime(values).dt.to_pydatetime())
    elif cql_type == "decimal":
        converted = [Decimal(repr(float(v))) for v in values.to_numpy(dtype="float64", na_value=0.0)]
    elif cql_type in ("int", "bigint", "smallint", "tinyint", "varint", "counter"):
        converted = values.fillna(0).astype("int64").tolist()
    elif cql_type in ("double", "float"):
        converted = values.astype("float64").tolist()
    elif cql_type in ("text", "ascii", "varchar"):
        converted = values.astype(str).tolist()
    elif cql_type == "date":
        converted = list(pd.to_datetime(values).dt.date)
    else:
        converted = values.tolist()
    if missing.any():
        converted = [None if gone else value for value, gone in zip(converted, missing)]
    return converted


def cql_rows(table: str, frame: pd.DataFrame, chunk_rows: int = CHUNK_ROWS) -> tuple[list[str], Iterator[tuple]]:
    """``frame`` (the use case's schema) as rows of ``table``'s CQL columns, in DDL order.

    Columns are renamed through ``source.keyspaces.columns`` of the use case; ``online_retail``
    also gets ``line`` (the line's position in its invoice, part of the primary key). Rows are
    converted ``chunk_rows`` at a time, so the iterator holds one chunk of Python objects.
    """
    from mlops.core.config import load_pipeline

    ddl = table_ddl(table)
    mapping = load_pipeline(TABLE_USE_CASES[table]).source["keyspaces"]["columns"]
    frame = frame.reset_index(drop=True)
    if table == "online_retail" and "line" not in frame.columns:
        frame = frame.assign(line=frame.groupby(mapping["invoice"], sort=False).cumcount())
        mapping = {**mapping, "line": "line"}
    columns = [c for c in ddl.columns if c in mapping]
    missing = [c for c in ddl.primary_key if c not in columns]
    if missing:
        raise ValueError(f"{table}: primary key columns {missing} have no source column")

    def rows() -> Iterator[tuple]:
        for start in range(0, len(frame), chunk_rows):
            chunk = frame.iloc[start:start + chunk_rows]
            yield from zip(*(_python_values(chunk[mapping[c]], ddl.columns[c]) for c in columns))

    return columns, rows()


def load_sample(hook: KeyspacesHook, table: str, rows: int, seed: int | None = None, concurrency: int = 64,
                keyspace: str | None = None) -> WriteReport:
    """Generate ``rows`` sample rows for ``table`` and upsert them through ``hook``."""
    ddl = table_ddl(table)
    columns, values = cql_rows(table, sample_frame(table, rows, seed))
    return hook.write_rows(keyspace or ddl.keyspace, table, columns, values, concurrency=concurrency,
                           chunk_size=CHUNK_ROWS, key_columns=list(ddl.primary_key))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.keyspaces_load", description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", required=True, choices=sorted(TABLE_USE_CASES))
    parser.add_argument("--rows", type=int, required=True, help="number of rows to generate and write")
    parser.add_argument("--seed", type=int, default=None, help="generator seed (default: the generator's)")
    parser.add_argument("--conn-id", default="keyspaces_default", help="Airflow connection to Keyspaces/Cassandra")
    parser.add_argument("--keyspace", default=None, help="keyspace (default: the one in sql/keyspaces/)")
    parser.add_argument("--concurrency", type=int, default=64, help="inserts in flight at once")
    parser.add_argument("--create-schema", action="store_true", help="apply sql/keyspaces/*.cql first")
    args = parser.parse_args(argv)
    if args.rows < 1:
        parser.error("--rows must be >= 1")
    from mlops.hooks.keyspaces import KeyspacesHook

    hook = KeyspacesHook(args.conn_id)
    started = time.perf_counter()
    try:
        if args.create_schema:
            print(f"schema: {', '.join(apply_schema(hook))}")
        report = load_sample(hook, args.table, args.rows, args.seed, args.concurrency, args.keyspace)
    finally:
        hook.close()
    elapsed = time.perf_counter() - started
    print(json.dumps({**report.to_dict(), "seconds": round(elapsed, 2),
                      "rows_per_s": round(report.written / elapsed) if elapsed else None}))
    return 0 if report.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
