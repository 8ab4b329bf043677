"""A fake cassandra-driver session, at the driver boundary the Keyspaces hook uses.

It answers ``SELECT * FROM "ks"."table" WHERE token(pk) > %s AND token(pk) <= %s`` like a real
node: rows whose Murmur3 token (the driver's own implementation) falls in the range, in pages of
the statement's ``fetch_size``, with ``column_names``/``column_types``/``has_more_pages``/
``fetch_next_page``. It can throttle (raise) the first N calls. No server is involved: this is
how the Keyspaces path is tested on machines without Cassandra.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from cassandra.murmur3 import murmur3

QUERY = re.compile(
    r'SELECT \* FROM "(?P<ks>\w+)"\."(?P<table>\w+)" WHERE token\((?P<pk>\w+)\) > %s AND token\((?P=pk)\) <= %s'
)


def token_of(value) -> int:
    return murmur3(str(value).encode("utf-8"))


@dataclass
class FakeTable:
    columns: list[str]
    types: list[str]  # CQL type names
    rows: list[tuple]


class FakeResult:
    def __init__(self, table: FakeTable, rows: list[tuple], fetch_size: int):
        self.column_names = table.columns
        self.column_types = table.types
        self._rows, self._size, self._offset = rows, fetch_size, 0

    @property
    def current_rows(self):
        return self._rows[self._offset:self._offset + self._size]

    @property
    def has_more_pages(self) -> bool:
        return self._offset + self._size < len(self._rows)

    def fetch_next_page(self) -> None:
        self._offset += self._size


@dataclass
class FakeSession:
    tables: dict[str, FakeTable]
    calls: list[tuple] = field(default_factory=list)

    def execute(self, statement, parameters=()):
        query = getattr(statement, "query_string", statement)
        match = QUERY.fullmatch(query.strip())
        if not match:
            raise ValueError(f"fake session does not understand: {query}")
        table = self.tables[f"{match['ks']}.{match['table']}"]
        start, end = parameters
        key = table.columns.index(match["pk"])
        rows = [row for row in table.rows if start < token_of(row[key]) <= end]
        self.calls.append((query, start, end, len(rows)))
        return FakeResult(table, rows, getattr(statement, "fetch_size", None) or 5000)


def tables_from_sample_data(churn, retail) -> dict[str, FakeTable]:
    """The sample frames as the CQL tables in sql/keyspaces/ would hold them."""
    from decimal import Decimal

    import pandas as pd

    churn_cols = ["state", "account_length", "area_code", "phone", "intl_plan", "vmail_plan", "vmail_message",
                  "day_mins", "day_calls", "day_charge", "eve_mins", "eve_calls", "eve_charge", "night_mins",
                  "night_calls", "night_charge", "intl_mins", "intl_calls", "intl_charge", "custserv_calls", "churn"]
    churn_types = ["text", "int", "int", "text", "text", "text", "int", "double", "int", "double", "double", "int",
                   "double", "double", "int", "double", "double", "int", "double", "int", "text"]
    churn_rows = [tuple(v.item() if hasattr(v, "item") else v for v in row)
                  for row in churn.itertuples(index=False, name=None)]
    line = retail.groupby("Invoice").cumcount()
    retail_rows = [
        (invoice, int(n), code, text, int(quantity), when.to_pydatetime(), Decimal(str(price)),
         None if pd.isna(customer) else float(customer), country)
        for invoice, n, code, text, quantity, when, price, customer, country in zip(
            retail["Invoice"], line, retail["StockCode"], retail["Description"], retail["Quantity"],
            retail["InvoiceDate"], retail["Price"], retail["Customer ID"], retail["Country"])
    ]
    return {
        "mlops.customers": FakeTable(churn_cols, churn_types, churn_rows),
        "mlops.online_retail": FakeTable(
            ["invoice", "line", "stockcode", "description", "quantity", "invoicedate", "price", "customer_id",
             "country"],
            ["text", "int", "text", "text", "int", "timestamp", "decimal", "double", "text"],
            retail_rows,
        ),
    }
