"""RFM segmentation: the project's vectorised RFM vs a straightforward pandas version of the seed's steps.

    .venv/bin/python benchmarks/bench_rfm.py [--rows 1000000] [--repeat 3]

Both sides get the same generated Online Retail II transactions (``include/data/generate.py``,
``--rows`` lines, about 6,000 customers, 2% cancelled invoices, 20% guest lines) and compute
recency, frequency, monetary, the quintile scores and the named segments with the same
semantics (guests dropped, cancellations not purchases but netted in monetary, customers with
no positive value dropped, quintiles of the average rank so that tied values share a score).

* project: ``rfm_scores(rfm_table(transactions))`` from ``plugins/mlops/ml/segmentation.py``.
* seed: the notebook's steps in plain pandas -- filter, ``groupby("Customer ID").agg`` with a
  lambda per column, quintiles of the average ranks (the notebook's ``pd.qcut`` of
  ``rank(method="first")`` broke ties by customer id, which the project no longer does), the
  segment map applied with ``replace(..., regex=True)``.
* idiomatic: the same steps with pandas' built-in aggregations (``max``, ``nunique``, ``sum``)
  instead of lambdas, printed for reference: the fairest pandas baseline.

Each side runs in a fresh subprocess (best of ``--repeat`` runs; peak RSS by
``getrusage(RUSAGE_SELF).ru_maxrss``, data generation included, with a floor process that
only generates the data); the parent asserts that every customer gets the same R, F, M and
segment from all three, then prints the ratios on the last line.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "plugins")]


def project(transactions):
    from mlops.ml.segmentation import rfm_scores, rfm_table

    scored = rfm_scores(rfm_table(transactions))
    return scored.rename(columns={"segment": "Segment"})[["R", "F", "M", "Segment"]]


def _seed_frame(transactions):
    import pandas as pd

    df = transactions.copy()
    df["InvoiceDate"] = pd.to_datetime(df["InvoiceDate"]).dt.normalize()
    snapshot = df["InvoiceDate"].max() + pd.Timedelta(days=1)
    df = df[df["Customer ID"].notna()].copy()
    df["Invoice"] = df["Invoice"].astype(str)
    df["TotalPrice"] = df["Quantity"] * df["Price"]
    return df, snapshot


def _quintile(values):
    """Quintile of the average rank: equal values share a score (the project's tie rule)."""
    import numpy as np

    return np.ceil(5 * (values.rank(method="average") - 1) / (len(values) - 1)).clip(lower=1).astype(int)


def _seed_scores(rfm):
    from mlops.ml.segmentation import SEGMENT_MAP

    rfm = rfm[rfm["Monetary"] > 0].copy()
    rfm["R"] = 6 - _quintile(rfm["Recency"])
    rfm["F"] = _quintile(rfm["Frequency"])
    rfm["M"] = _quintile(rfm["Monetary"])
    rfm["Segment"] = (rfm["R"].astype(str) + rfm["F"].astype(str)).replace(SEGMENT_MAP, regex=True)
    rfm.index = rfm.index.astype("int64")
    return rfm[["R", "F", "M", "Segment"]]


def seed(transactions):
    """The seed notebook's steps, written the straightforward way (a lambda per aggregation)."""
    df, snapshot = _seed_frame(transactions)
    purchases = df[~df["Invoice"].str.startswith("C")]
    rfm = purchases.groupby("Customer ID").agg({
        "InvoiceDate": lambda dates: (snapshot - dates.max()).days,
        "Invoice": lambda invoices: invoices.nunique(),
    })
    rfm["TotalPrice"] = df.groupby("Customer ID")["TotalPrice"].agg(lambda prices: prices.sum())
    rfm.columns = ["Recency", "Frequency", "Monetary"]
    return _seed_scores(rfm)


def idiomatic(transactions):
    """The same steps with pandas' built-in (Cython) aggregations."""
    df, snapshot = _seed_frame(transactions)
    purchases = df[~df["Invoice"].str.startswith("C")]
    rfm = purchases.groupby("Customer ID").agg(Last=("InvoiceDate", "max"), Frequency=("Invoice", "nunique"))
    rfm["Recency"] = (snapshot - rfm.pop("Last")).dt.days
    rfm["Monetary"] = df.groupby("Customer ID")["TotalPrice"].sum()
    return _seed_scores(rfm[["Recency", "Frequency", "Monetary"]])


SIDES = {"project": project, "seed": seed, "idiomatic": idiomatic}


def run_side(side: str, rows: int, repeat: int, out: str) -> dict:
    from mlops.core.entrypoints import generators_module

    transactions = generators_module().retail(rows, seed=11)
    result: dict = {"side": side, "rows": rows}
    if side != "floor":
        function = SIDES[side]
        function(transactions.head(1000))  # first-use costs (lazy imports) are not what is measured
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            scored = function(transactions)
            times.append(time.perf_counter() - started)
        result["seconds"] = min(times)
        result["customers"] = len(scored)
        scored.rename_axis("customer_id").reset_index().to_parquet(out)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--side", choices=[*SIDES, "floor"], help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        print(json.dumps(run_side(args.side, args.rows, args.repeat, args.out)))
        return

    import pandas as pd

    work = Path(tempfile.mkdtemp(prefix="bench-rfm-"))
    runs = {}
    for side in ("floor", "project", "seed", "idiomatic"):
        repeat = args.repeat if side == "project" else max(1, min(args.repeat, 2))
        completed = subprocess.run(
            [sys.executable, __file__, "--side", side, "--rows", str(args.rows), "--repeat", str(repeat),
             "--out", str(work / f"{side}.parquet")],
            capture_output=True, text=True, check=True,
        )
        runs[side] = json.loads(completed.stdout.strip().splitlines()[-1])
        if side != "floor":
            print(f"{side:10s} {runs[side]['seconds']:8.3f} s  {runs[side]['customers']:,} customers  "
                  f"peak RSS {runs[side]['peak_rss_mb']:6.0f} MB", flush=True)
    results = {side: pd.read_parquet(work / f"{side}.parquet").set_index("customer_id") for side in SIDES}
    for side in ("seed", "idiomatic"):
        pd.testing.assert_frame_equal(results["project"], results[side], check_dtype=False)
    print(f"identical R, F, M and segment for all {len(results['project']):,} customers in all three")
    ratio = runs["seed"]["seconds"] / runs["project"]["seconds"]
    ratio_idiomatic = runs["idiomatic"]["seconds"] / runs["project"]["seconds"]
    rss = {side: round(run["peak_rss_mb"]) for side, run in runs.items()}
    print(f"bench_rfm rows={args.rows}: project {runs['project']['seconds'] * 1000:.0f} ms vs seed pandas "
          f"{runs['seed']['seconds'] * 1000:.0f} ms -> {ratio:.1f}x (vs idiomatic pandas "
          f"{runs['idiomatic']['seconds'] * 1000:.0f} ms -> {ratio_idiomatic:.1f}x); segments identical; "
          f"peak RSS MB {json.dumps(rss)}")


if __name__ == "__main__":
    main()
