"""Retail customer segmentation: RFM features, rule-based RFM segments and KMeans clusters.

The seed's retail use case on the Online Retail II schema (``Invoice``, ``Quantity``,
``InvoiceDate``, ``Price``, ``Customer ID``; cancelled invoices start with ``"C"``). Every step is
vectorised numpy/pandas/Arrow (no loop per customer or per line) and deterministic for a seed.
What a run writes back is one row for *every* KMeans cluster (:func:`cluster_counts`), named
after the RFM segment most of its customers are in; the seed's notebook lost a cluster by
writing ``head()`` of the table.

Ties in the RFM scores: a score is a function of the value alone, so customers with the same
recency (or frequency, or monetary value) always get the same score, and identical customers the
same segment, whatever their ids or row order. Each value's position is its *average rank* (a
tied group sits at the middle of the ranks it spans), scaled to ``[0, 1]`` over the ranks
``1..n`` and cut into five equal intervals: ``score = max(1, ceil(5 * (rank - 1) / (n - 1)))``.
Without ties this is exactly ``pd.qcut`` of the ranks into five equal bins; a tied group that
straddles a boundary goes whole into the quintile of its middle, so bins are no longer equal in
size. All customers identical (or a lone customer) score 3, the middle. For frequency, where
one-time buyers tie at the bottom, they keep ``F = 1`` as long as they are under 40% of customers
(their middle rank stays in the first fifth); a larger group moves up a score as a whole.

pandas, numpy, scikit-learn and matplotlib are imported inside the functions: DAG files import
modules that import this one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

CUSTOMER, INVOICE, QUANTITY, PRICE, DATE = "Customer ID", "Invoice", "Quantity", "Price", "InvoiceDate"
RFM_COLUMNS = ("recency", "frequency", "monetary")
CANCELLED_PREFIX = "C"
SILHOUETTE_SAMPLE = 10_000
# The classic RFM segment map on the concatenated R and F scores; together the patterns cover all
# 25 (R, F) pairs exactly once.
SEGMENT_MAP = {
    r"[1-2][1-2]": "Hibernating",
    r"[1-2][3-4]": "At Risk",
    r"[1-2]5": "Can't Lose Them",
    r"3[1-2]": "About to Sleep",
    r"33": "Need Attention",
    r"[3-4][4-5]": "Loyal Customers",
    r"41": "Promising",
    r"51": "New Customers",
    r"[4-5][2-3]": "Potential Loyalists",
    r"5[4-5]": "Champions",
}
SEGMENTS = tuple(dict.fromkeys(SEGMENT_MAP.values()))


def rfm_table(transactions: pd.DataFrame, as_of: Any = None) -> pd.DataFrame:
    """Recency, frequency and monetary value per customer.

    :param transactions: invoice lines with ``Invoice``, ``Quantity``, ``InvoiceDate``, ``Price``
        and ``Customer ID``.
    :param as_of: the snapshot day; default the day after the last ``InvoiceDate`` in
        ``transactions``. Lines dated on or after it are ignored, so an explicit ``as_of`` gives
        the table as it was at the start of that day.
    :return: a frame indexed by ``customer_id`` (int when every id is integral, as with the float
        ids of Online Retail II), sorted by id, with

        * ``recency``: whole days from the customer's last purchase day to ``as_of`` (>= 1);
        * ``frequency``: distinct non-cancelled invoices;
        * ``monetary``: sum of ``Quantity * Price`` over all the customer's lines.

        ``attrs`` records ``as_of``, ``rows_without_customer`` and ``customers_dropped``.

    Choices, as the seed intends:

    * lines without a ``Customer ID`` (guest checkouts) cannot be attributed and are dropped;
    * cancellations (``Invoice`` starting with ``"C"``) are not purchases: they count neither in
      ``frequency`` nor as the last purchase, but their negative amounts reduce ``monetary``, so
      a refunded order does not make a customer look valuable;
    * customers whose ``monetary`` is <= 0 (everything refunded, or only cancellations) have no
      value to segment on and are dropped; their number is logged and kept in
      ``attrs["customers_dropped"]``.

    How it is fast: customers become integer codes, and consecutive lines of the same customer
    and invoice (how invoices are stored) are collapsed into runs with numpy ``reduceat``
    before anything touches strings, so the string work (cancellation prefix, distinct
    invoices) runs on one value per invoice instead of one per line. Runs only shorten the
    work: the result is exact whatever the row order.
    """
    import numpy as np
    import pandas as pd
    import pyarrow.compute as pc

    missing = [c for c in (CUSTOMER, INVOICE, QUANTITY, PRICE, DATE) if c not in transactions.columns]
    if missing:
        from mlops.core.messages import name_list

        raise ValueError(f"transactions lack columns {name_list(missing)} (have {name_list(transactions.columns)})")
    days = _days(transactions[DATE])
    if len(days) == 0:
        raise ValueError("no transactions")
    as_of_day = int(days.max()) + 1 if as_of is None else int(_days(pd.Series([pd.Timestamp(as_of)]))[0])
    codes, customer_ids, rows_without_customer = _customer_codes(transactions[CUSTOMER])
    codes[days >= as_of_day] = -1
    invoices = _strings(transactions[INVOICE])
    amount = transactions[QUANTITY].to_numpy(dtype="float64") * transactions[PRICE].to_numpy(dtype="float64")

    new_run = np.ones(len(codes), dtype=bool)
    if len(codes) > 1:
        same_invoice = pc.equal(invoices.slice(1), invoices.slice(0, len(invoices) - 1))
        new_run[1:] = (codes[1:] != codes[:-1]) | ~same_invoice.to_numpy(zero_copy_only=False)
    starts = np.flatnonzero(new_run)
    run_code = codes[starts]
    run_invoice = invoices.take(starts)
    run_last_day = np.maximum.reduceat(days, starts)
    run_amount = np.add.reduceat(amount, starts)
    run_cancelled = pc.starts_with(run_invoice, CANCELLED_PREFIX).to_numpy(zero_copy_only=False)

    customers = len(customer_ids)
    known = run_code >= 0
    monetary = np.bincount(run_code[known], weights=run_amount[known], minlength=customers)
    bought = known & ~run_cancelled
    last_day = np.full(customers, np.iinfo(np.int64).min, dtype=np.int64)
    np.maximum.at(last_day, run_code[bought], run_last_day[bought])
    invoice_codes = pc.dictionary_encode(run_invoice.filter(bought)).indices.to_numpy(zero_copy_only=False)
    pairs = pd.unique(run_code[bought].astype(np.int64) * (int(invoice_codes.max(initial=0)) + 1) + invoice_codes)
    frequency = np.bincount(pairs // (int(invoice_codes.max(initial=0)) + 1), minlength=customers)

    keep = (monetary > 0) & (frequency > 0)
    dropped = int((~keep & (np.bincount(run_code[known], minlength=customers) > 0)).sum())
    if dropped:
        log.info("dropped %d customers with monetary <= 0 (refunds or only cancellations)", dropped)
    table = pd.DataFrame(
        {
            "recency": (as_of_day - last_day[keep]).astype("int64"),
            "frequency": frequency[keep].astype("int64"),
            "monetary": monetary[keep].astype("float64"),
        },
        index=pd.Index(customer_ids[keep], name="customer_id"),
    )
    table.attrs.update(
        as_of=str(np.datetime64(as_of_day, "D")),
        rows_without_customer=rows_without_customer,
        customers_dropped=dropped,
    )
    return table


def _days(values: pd.Series):
    """Calendar day (days since 1970-01-01, int64) of each timestamp; tz-aware stamps by their
    wall-clock day in their own time zone."""
    import numpy as np
    import pandas as pd

    stamps = pd.to_datetime(values)
    if getattr(stamps.dt, "tz", None) is not None:
        stamps = stamps.dt.tz_localize(None)
    return stamps.to_numpy().astype("datetime64[D]").astype(np.int64)


def _customer_codes(ids: pd.Series):
    """``(codes, sorted unique ids, missing count)``: code -1 marks a missing id. Online Retail
    II stores ids as floats (NaN for guests); integral ids become ints."""
    import numpy as np
    import pandas as pd

    missing = ids.isna().to_numpy()
    if pd.api.types.is_numeric_dtype(ids) and not pd.api.types.is_bool_dtype(ids):
        values = ids.to_numpy(dtype="float64", na_value=np.nan)
        present = values[~missing]
        if len(present) and np.all(present % 1 == 0):
            ints = present.astype(np.int64)
            low, high = int(ints.min()), int(ints.max())
            if high - low < 50_000_000:  # dense ids: a lookup table instead of hashing
                seen = np.zeros(high - low + 1, dtype=bool)
                seen[ints - low] = True
                rank = np.cumsum(seen) - 1
                codes = np.full(len(values), -1, dtype=np.int64)
                codes[~missing] = rank[ints - low]
                return codes, np.flatnonzero(seen) + low, int(missing.sum())
            ids = pd.Series(np.where(missing, np.nan, values)).astype("Int64")
    codes, uniques = pd.factorize(ids, sort=True)
    uniques = np.asarray(uniques.astype("int64") if pd.api.types.is_integer_dtype(uniques) else uniques)
    return codes.astype(np.int64), uniques, int(missing.sum())


def _strings(values: pd.Series):
    """A column as an Arrow string array (zero-copy for pandas' Arrow-backed strings)."""
    import pyarrow as pa

    try:
        array = pa.array(values, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        array = pa.array(values.astype(str), from_pandas=True)
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
        array = array.cast(pa.string())
    return array


def rfm_scores(rfm: pd.DataFrame) -> pd.DataFrame:
    """Add quintile scores ``R``, ``F``, ``M`` (1..5, 5 best), ``RFM`` and the named ``segment``.

    Scores are quintiles of the average rank (see the module docstring for the tie rule): equal
    values get equal scores, and without ties the five bins are equal. Recency is scored in reverse: the most
    recent customers get ``R = 5``. ``segment`` comes from :data:`SEGMENT_MAP` on the ``R`` and
    ``F`` scores, looked up in a 5 x 5 grid (one vectorised take, not a regex per customer).
    """
    import numpy as np

    if rfm.empty:
        raise ValueError("no customers to score")
    scored = rfm.copy()
    scored["R"] = 6 - _quintile(rfm["recency"])
    scored["F"] = _quintile(rfm["frequency"])
    scored["M"] = _quintile(rfm["monetary"])
    digits = np.array(list("012345"), dtype=object)
    r, f, m = (scored[c].to_numpy() for c in ("R", "F", "M"))
    scored["RFM"] = digits[r] + digits[f] + digits[m]
    scored["segment"] = _segment_grid()[r - 1, f - 1]
    return scored


def _segment_grid():
    """``grid[R - 1, F - 1]`` is the segment name of the scores ``R`` and ``F``."""
    import re

    import numpy as np

    grid = np.empty((5, 5), dtype=object)
    for r in range(1, 6):
        for f in range(1, 6):
            grid[r - 1, f - 1] = next(name for pattern, name in SEGMENT_MAP.items() if re.fullmatch(pattern, f"{r}{f}"))
    return grid


def _quintile(values: pd.Series) -> pd.Series:
    """Quintile (1..5) of each value by its average rank: equal values, equal quintiles."""
    import numpy as np
    import pandas as pd

    n = len(values)
    if n == 1:  # no spread to scale: a lone customer sits in the middle
        return pd.Series(3, index=values.index, dtype="int64")
    # Twice the average rank is an integer, so the ceiling is exact integer arithmetic.
    twice_rank = (2 * values.rank(method="average")).round().to_numpy(dtype=np.int64)
    scores = -(-5 * (twice_rank - 2) // (2 * (n - 1)))
    return pd.Series(np.maximum(scores, 1), index=values.index, dtype="int64")


@dataclass
class SegmentationResult:
    """KMeans on the log-scaled RFM table, with k chosen by silhouette.

    :param best_k: the k with the highest silhouette (the smallest such k on a tie).
    :param silhouette: silhouette score per k tried.
    :param inertia: within-cluster sum of squares per k tried (for an elbow plot).
    :param labels: cluster per customer, indexed like the RFM table. Cluster ids are ordered by
        mean monetary value, highest first, so id 0 is the most valuable cluster in every run.
    :param summary: one row for every cluster: ``cluster``, ``customers``, ``recency``,
        ``frequency``, ``monetary`` (means, in the original units).
    :param seed: the random seed used for KMeans and the silhouette sample.
    """

    best_k: int
    silhouette: dict[int, float]
    inertia: dict[int, float]
    labels: pd.Series = field(repr=False)
    summary: pd.DataFrame = field(repr=False)
    seed: int = 42

    def to_dict(self) -> dict[str, Any]:
        """Small JSON-serialisable summary (no per-customer labels), for XCom and reports."""
        return {
            "best_k": int(self.best_k),
            "silhouette": {str(k): float(v) for k, v in self.silhouette.items()},
            "inertia": {str(k): float(v) for k, v in self.inertia.items()},
            "clusters": self.summary.to_dict(orient="records"),
            "customers": len(self.labels),
            "seed": self.seed,
        }


def kmeans_segments(
    rfm: pd.DataFrame, k_min: int = 2, k_max: int = 8, seed: int = 42, *, threads: int | None = 1
) -> SegmentationResult:
    """Cluster customers with KMeans on ``log1p`` + standard-scaled recency, frequency, monetary.

    Each k in ``k_min..k_max`` (capped at customers - 1, the most silhouette allows) is fitted
    with ``KMeans(n_init=10, random_state=seed)`` and scored by silhouette on the same fixed-seed
    sample of at most :data:`SILHOUETTE_SAMPLE` customers, which bounds the O(n^2) cost.

    :param threads: OpenMP/BLAS threads for the fits; ``None`` keeps the library default (all
        cores). One thread is the default because three features leave little to parallelise:
        on a busy two-core worker the default thread pool made 4,400 customers take 37 s instead
        of 2.5 s, with identical labels.
    """
    import numpy as np
    import pandas as pd
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    if k_min < 2 or k_max < k_min:
        raise ValueError(f"need 2 <= k_min <= k_max, got k_min={k_min}, k_max={k_max}")
    n = len(rfm)
    candidates = range(k_min, min(k_max, n - 1) + 1)
    if not candidates:
        raise ValueError(f"{n} customers are too few for k >= {k_min} (silhouette needs k < customers)")
    features = StandardScaler().fit_transform(np.log1p(rfm[list(RFM_COLUMNS)].to_numpy(dtype="float64")))
    sample = SILHOUETTE_SAMPLE if n > SILHOUETTE_SAMPLE else None

    silhouette: dict[int, float] = {}
    inertia: dict[int, float] = {}
    labels_by_k: dict[int, np.ndarray] = {}
    with threadpool_limits(limits=threads):
        for k in candidates:
            model = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(features)
            labels_by_k[k], inertia[k] = model.labels_, float(model.inertia_)
            if len(np.unique(model.labels_)) < 2:  # identical customers: no second cluster exists
                silhouette[k] = -1.0
            else:
                silhouette[k] = float(
                    silhouette_score(features, model.labels_, sample_size=sample, random_state=seed)
                )
    best_k = max(silhouette, key=lambda k: (silhouette[k], -k))

    raw = pd.Series(labels_by_k[best_k], index=rfm.index)
    by_value = rfm["monetary"].groupby(raw).mean().sort_values(ascending=False, kind="stable")
    relabel = pd.Series(np.arange(len(by_value)), index=by_value.index)
    labels = raw.map(relabel).astype("int64").rename("cluster")

    means = rfm[list(RFM_COLUMNS)].groupby(labels).mean()
    summary = (
        pd.DataFrame({"customers": labels.value_counts()})
        .join(means)
        .reindex(range(best_k))
        .fillna({"customers": 0})
        .astype({"customers": "int64"})
        .rename_axis("cluster")
        .reset_index()
    )
    return SegmentationResult(best_k, silhouette, inertia, labels, summary, seed)


def segment_counts(scored: pd.DataFrame) -> pd.DataFrame:
    """Customers per named segment: columns ``segment``, ``total_customers``, one row for every
    segment present, largest first (ties by name)."""
    counts = scored["segment"].value_counts().rename("total_customers").rename_axis("segment").reset_index()
    counts["total_customers"] = counts["total_customers"].astype("int64")
    return counts.sort_values(["total_customers", "segment"], ascending=[False, True], ignore_index=True)


def cluster_names(scored: pd.DataFrame, labels: pd.Series) -> dict[int, str]:
    """A readable name for every cluster: ``"Cluster <id>: <segment>"``, the named RFM segment
    most of its customers are in (ties by name). Cluster ids are unique, so names are too."""
    frame = scored[["segment"]].assign(cluster=labels.reindex(scored.index))
    counts = frame.groupby(["cluster", "segment"]).size().rename("n").reset_index()
    counts = counts.sort_values(["cluster", "n", "segment"], ascending=[True, False, True])
    dominant = counts.drop_duplicates("cluster").set_index("cluster")["segment"]
    return {int(cluster): f"Cluster {int(cluster)}: {dominant[cluster]}" for cluster in sorted(set(labels))}


def cluster_counts(result: SegmentationResult, scored: pd.DataFrame) -> pd.DataFrame:
    """Customers per KMeans cluster, one row for *every* cluster ``0..best_k-1`` in id order:
    ``segment`` (the cluster's name, see :func:`cluster_names`), ``total_customers``, ``cluster``
    and the cluster's mean ``recency``/``frequency``/``monetary``."""
    names = cluster_names(scored, result.labels)
    summary = result.summary.copy()
    summary.insert(0, "segment", [names.get(int(c), f"Cluster {int(c)}") for c in summary["cluster"]])
    return summary.rename(columns={"customers": "total_customers"})


def segment_chart_png(counts: pd.DataFrame, path: str | Path, title: str = "Customers per RFM segment",
                      sort: bool = True) -> Path:
    """Write a horizontal bar chart of ``total_customers`` per ``segment`` as a PNG; return the path.

    :param sort: largest bar on top; ``False`` keeps the rows' order, first row on top.

    Uses matplotlib's object API with the Agg canvas, so it never touches pyplot's global state
    or the process-wide backend (safe in a worker that also runs other tasks).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    ordered = counts.sort_values("total_customers", kind="stable") if sort else counts.iloc[::-1]
    figure = Figure(figsize=(8, 0.45 * len(ordered) + 1.5), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    bars = axes.barh(ordered["segment"].astype(str), ordered["total_customers"], color="#3b75af")
    axes.bar_label(bars, padding=3)
    axes.set_xlabel("customers")
    axes.set_title(title)
    axes.margins(x=0.12)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
    return path
