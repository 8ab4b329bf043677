"""Keyspaces extraction: the project's token-range extractor vs ``pandas.DataFrame(list(session.execute(...)))``.

    .venv/bin/python benchmarks/bench_ingest.py [--rows 1000000] [--segments 4] [--fetch-size 5000]

Both sides read the same table -- ``online_retail``'s nine columns (text, int, timestamp, decimal,
double), generated row by row on demand -- through the same fake cassandra-driver session
(``tests/testkit/fake_cassandra.py``: pages of ``fetch_size`` rows in token order, named-tuple
rows as the driver's default row factory makes them, or plain tuples where the hook's read
execution profile asks for ``tuple_factory``, as its cluster does). Only the tokens are held (8 bytes a
row), so the harness itself barely grows with the row count.

* project: ``KeyspacesHook.iter_pages`` + ``extract_to_parquet`` over ``--segments`` token ranges
  in turn (the DAG runs them as parallel mapped tasks; here they run one after another), one
  Parquet file per range, one row group per page, CQL types mapped to Arrow (decimal kept exact).
  It pauses the cyclic GC during the loop (see ``paused_gc``); ``project_gc_on`` is the same
  run with the collector left on, printed so the effect of that choice is visible.
* baseline: ``pd.DataFrame(list(session.execute(SimpleStatement("SELECT * FROM ...", fetch_size))))``
  -- the issue's expression -- timed on its own, then ``to_parquet`` of the same frame, because
  the extractor's job ends with a Parquet file and the baseline's does not.

Each side runs in a fresh subprocess, at ``--rows`` and at a quarter of it, and reports its own
``getrusage(RUSAGE_SELF).ru_maxrss`` (peak RSS of the whole process, imports included); a third
subprocess that builds the table and imports everything but extracts nothing gives the floor.
The last line prints the rows/s ratios and every RSS figure.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "plugins"), str(ROOT / "tests")]

COLUMNS = ["invoice", "line", "stockcode", "description", "quantity", "invoicedate", "price", "customer_id",
           "country"]
TYPES = ["text", "int", "text", "text", "int", "timestamp", "decimal", "double", "text"]
LINES_PER_INVOICE = 12


def retail_table(n_rows: int):
    """A generated ``online_retail`` table: row ``i`` is line ``i % 12`` of invoice ``i // 12``."""
    from decimal import Decimal

    import numpy as np

    from testkit.fake_cassandra import GeneratedTable

    codes = np.array([f"{85000 + i}{chr(65 + i % 12)}" for i in range(300)], dtype=object)
    descriptions = np.array([f"PRODUCT {i} IN COLOUR {i % 12}" for i in range(300)], dtype=object)
    countries = np.array(["United Kingdom", "Germany", "France", "EIRE", "Netherlands", "Spain"], dtype=object)
    cents = np.arange(50, 5050, 5)
    prices = np.array([Decimal(int(c)).scaleb(-2) for c in cents], dtype=object)
    start = np.datetime64("2009-12-01T08:00:00", "us")

    def invoice_text(invoice: int) -> str:
        return ("C" if invoice % 50 == 0 else "") + str(489434 + invoice)

    def make_rows(numbers) -> list[tuple]:
        # Values that depend on the invoice only are made once per invoice of the page.
        numbers = np.asarray(numbers, dtype=np.int64)
        invoices, of_row = np.unique(numbers // LINES_PER_INVOICE, return_inverse=True)
        of_row = of_row.tolist()
        texts = [invoice_text(int(v)) for v in invoices]
        stamps = (start + (invoices * 97).astype("timedelta64[m]")).astype(object).tolist()
        customers = [None if v % 5 == 0 else 12346.0 + v % 5000 for v in invoices.tolist()]
        country = countries[invoices % len(countries)].tolist()
        product = (numbers * 7919) % 300
        return list(zip(
            [texts[i] for i in of_row],
            (numbers % LINES_PER_INVOICE).tolist(),
            codes[product].tolist(),
            descriptions[product].tolist(),
            ((numbers % 24) + 1).tolist(),
            [stamps[i] for i in of_row],
            prices[(numbers * 31) % len(prices)].tolist(),
            [customers[i] for i in of_row],
            [country[i] for i in of_row],
        ))

    return GeneratedTable(COLUMNS, TYPES, "invoice", n_rows,
                          key_bytes=lambda i: invoice_text(i // LINES_PER_INVOICE).encode(), make_rows=make_rows)


def run_side(side: str, rows: int, segments: int, fetch_size: int) -> dict:
    """One side in this (fresh) process; returns rows, seconds and peak RSS."""
    os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="bench-airflow-"))
    import pandas as pd
    import pyarrow.parquet as pq
    from cassandra.query import SimpleStatement

    from mlops.hooks.keyspaces import READ_PROFILE, KeyspacesHook, token_ranges
    from mlops.ingest.cql_arrow import rows_to_table
    from mlops.operators.keyspaces import extract_to_parquet, select_range_query
    from testkit.fake_cassandra import FakeSession

    # The session stands for one from the cluster the hook builds: same execution profiles.
    session = FakeSession({"mlops.online_retail": retail_table(rows)}, record_requests=False,
                          execution_profiles=KeyspacesHook().execution_profiles())
    KeyspacesHook.get_session = lambda self: session  # the seam the e2e driver uses too
    KeyspacesHook.close = lambda self: None
    # Warm up both paths on a few rows (first-use costs, e.g. imports pyarrow does lazily).
    warm = Path(tempfile.mkdtemp(prefix="bench-warm-"))
    first = session.execute(SimpleStatement("SELECT * FROM mlops.online_retail", fetch_size=10))
    pd.DataFrame(first.current_rows).to_parquet(warm / "w.parquet")
    first = session.execute(SimpleStatement("SELECT * FROM mlops.online_retail", fetch_size=10),
                            execution_profile=READ_PROFILE)
    pq.write_table(rows_to_table(first.column_names, first.column_types, first.current_rows), warm / "p.parquet")
    out = Path(tempfile.mkdtemp(prefix=f"bench-ingest-{side}-"))
    result: dict = {"side": side, "rows": rows}
    started = time.perf_counter()
    if side in ("project", "project_gc_on"):
        hook = KeyspacesHook()
        query = select_range_query("mlops", "online_retail", "invoice", COLUMNS)
        written = 0
        for index, bounds in enumerate(token_ranges(segments)):
            written += extract_to_parquet(hook, query, bounds, fetch_size, out / f"part-{index}.parquet",
                                          pause_gc=side == "project")
        result["seconds"] = time.perf_counter() - started
        result["written"] = written
    elif side == "baseline":
        frame = pd.DataFrame(list(session.execute(SimpleStatement("SELECT * FROM mlops.online_retail",
                                                                  fetch_size=fetch_size))))
        result["seconds"] = time.perf_counter() - started
        frame.to_parquet(out / "baseline.parquet")
        result["seconds_with_parquet"] = time.perf_counter() - started
        result["written"] = pq.ParquetFile(out / "baseline.parquet").metadata.num_rows
    elif side != "floor":
        raise ValueError(side)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def in_subprocess(side: str, rows: int, segments: int, fetch_size: int) -> dict:
    completed = subprocess.run(
        [sys.executable, __file__, "--side", side, "--rows", str(rows), "--segments", str(segments),
         "--fetch-size", str(fetch_size)],
        capture_output=True, text=True, check=True,
    )
    return json.loads(completed.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--segments", type=int, default=4)
    parser.add_argument("--fetch-size", type=int, default=5000)
    parser.add_argument("--side", choices=["project", "project_gc_on", "baseline", "floor"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        print(json.dumps(run_side(args.side, args.rows, args.segments, args.fetch_size)))
        return

    quarter = max(args.rows // 4, 1)
    runs = {}
    for rows in (args.rows, quarter):
        for side in ("floor", "project", "baseline", "project_gc_on")[:4 if rows == args.rows else 3]:
            runs[side, rows] = in_subprocess(side, rows, args.segments, args.fetch_size)
            if side != "floor":
                assert runs[side, rows]["written"] == rows, runs[side, rows]
                print(f"{side:8s} rows={rows:>9,}  {rows / runs[side, rows]['seconds']:>10,.0f} rows/s  "
                      f"peak RSS {runs[side, rows]['peak_rss_mb']:7.0f} MB", flush=True)
    project, baseline = runs["project", args.rows], runs["baseline", args.rows]
    ratio = baseline["seconds"] / project["seconds"]
    ratio_parquet = baseline["seconds_with_parquet"] / project["seconds"]
    gc_on = runs["project_gc_on", args.rows]
    rss = {f"{side}@{rows}": round(runs[side, rows]["peak_rss_mb"]) for side, rows in runs}
    print(f"bench_ingest rows={args.rows} segments={args.segments} fetch_size={args.fetch_size}: "
          f"project {args.rows / project['seconds']:,.0f} rows/s vs DataFrame(list(execute)) "
          f"{args.rows / baseline['seconds']:,.0f} rows/s -> ratio {ratio:.2f}x "
          f"(vs baseline + to_parquet {ratio_parquet:.2f}x; project with the GC left on "
          f"{baseline['seconds'] / gc_on['seconds']:.2f}x); peak RSS MB {json.dumps(rss)}")


if __name__ == "__main__":
    main()
