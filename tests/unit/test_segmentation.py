"""RFM features, RFM segments and KMeans clusters for the retail use case."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from mlops.ml.segmentation import (
    SEGMENT_MAP,
    SEGMENTS,
    kmeans_segments,
    rfm_scores,
    rfm_table,
    segment_chart_png,
    segment_counts,
)


def line(invoice, customer, day, quantity, price):
    return {
        "Invoice": invoice, "StockCode": "85123A", "Description": "HEART T-LIGHT HOLDER",
        "Quantity": quantity, "InvoiceDate": pd.Timestamp(day), "Price": price,
        "Customer ID": customer, "Country": "United Kingdom",
    }  # fmt: skip


@pytest.fixture
def transactions() -> pd.DataFrame:
    """Hand-made lines; the last invoice is on 2011-12-09, so as_of defaults to 2011-12-10."""
    return pd.DataFrame(
        [
            # 12346: two invoices (one with two lines), one cancelled invoice that refunds 10.
            line("500001", 12346.0, "2011-12-01 09:00", 10, 2.0),
            line("500001", 12346.0, "2011-12-01 09:00", 1, 5.0),
            line("500002", 12346.0, "2011-12-05 14:30", 4, 2.5),
            line("C500003", 12346.0, "2011-12-08 10:00", -5, 2.0),
            # 12347: one invoice, bought late in the day on the last day.
            line("500004", 12347.0, "2011-12-09 18:45", 3, 10.0),
            # 12348: bought 30, then cancelled all of it (net 0): dropped.
            line("500005", 12348.0, "2011-11-01 10:00", 3, 10.0),
            line("C500006", 12348.0, "2011-11-02 10:00", -3, 10.0),
            # 12349: only a cancellation: no purchase, negative value: dropped.
            line("C500007", 12349.0, "2011-10-01 10:00", -2, 4.0),
            # a guest line (no customer): ignored, though it is the dataset's latest line.
            line("500008", np.nan, "2011-12-09 19:00", 100, 1.0),
        ]
    )


def synthetic_rfm(customers: int = 120, seed: int = 0) -> pd.DataFrame:
    """Three well separated customer groups, plus many ties in frequency."""
    rng = np.random.default_rng(seed)
    group = rng.integers(0, 3, customers)
    return pd.DataFrame(
        {
            "recency": np.array([10, 120, 360])[group] + rng.integers(0, 10, customers),
            "frequency": np.array([20, 4, 1])[group] + rng.integers(0, 2, customers),
            "monetary": np.array([5000.0, 800.0, 60.0])[group] * rng.uniform(0.8, 1.2, customers),
        },
        index=pd.Index(12346 + np.arange(customers), name="customer_id"),
    )


# -- rfm_table -----------------------------------------------------------------------------------


def test_rfm_values_are_exact_on_a_hand_made_table(transactions):
    rfm = rfm_table(transactions)

    assert rfm.index.tolist() == [12346, 12347]
    assert rfm.loc[12346].tolist() == [5, 2, 20 + 5 + 10 - 10]  # last purchase 12-05; refund counted
    assert rfm.loc[12347].tolist() == [1, 1, 30]  # bought on the last day: recency 1


def test_rfm_index_is_integer_customer_ids(transactions):
    rfm = rfm_table(transactions)
    assert rfm.index.name == "customer_id"
    assert rfm.index.dtype == "int64"
    assert list(rfm.columns) == ["recency", "frequency", "monetary"]


def test_cancellations_do_not_count_as_purchases_or_last_purchase(transactions):
    rfm = rfm_table(transactions)
    # 12346's cancellation on 12-08 is later than its last purchase on 12-05
    assert rfm.loc[12346, "recency"] == (pd.Timestamp("2011-12-10") - pd.Timestamp("2011-12-05")).days
    assert rfm.loc[12346, "frequency"] == 2


def test_customers_without_positive_value_are_dropped_and_counted(transactions):
    rfm = rfm_table(transactions)

    assert 12348 not in rfm.index and 12349 not in rfm.index
    assert rfm.attrs["customers_dropped"] == 2
    assert rfm.attrs["rows_without_customer"] == 1
    assert rfm.attrs["as_of"] == "2011-12-10"


def test_explicit_as_of_ignores_later_lines(transactions):
    rfm = rfm_table(transactions, as_of="2011-12-05")

    assert rfm.index.tolist() == [12346]  # 12347 bought after the snapshot
    assert rfm.loc[12346].tolist() == [4, 1, 25]  # only invoice 500001, on 12-01


# -- rfm_scores ----------------------------------------------------------------------------------


def test_scores_are_quintiles_from_1_to_5_with_recent_customers_high():
    scored = rfm_scores(synthetic_rfm())

    for score in ("R", "F", "M"):
        assert set(scored[score]) == {1, 2, 3, 4, 5}
        assert scored[score].value_counts().tolist() == [24] * 5  # equal bins despite ties
    assert scored.loc[scored["recency"].idxmin(), "R"] == 5
    assert scored.loc[scored["recency"].idxmax(), "R"] == 1
    assert scored["RFM"].tolist() == [f"{r}{f}{m}" for r, f, m in zip(scored["R"], scored["F"], scored["M"])]


def test_segments_follow_the_classic_rf_map():
    scored = rfm_scores(synthetic_rfm())
    expected = {
        "55": "Champions", "54": "Champions", "51": "New Customers", "41": "Promising",
        "33": "Need Attention", "44": "Loyal Customers", "35": "Loyal Customers",
        "42": "Potential Loyalists", "31": "About to Sleep", "15": "Can't Lose Them",
        "24": "At Risk", "11": "Hibernating", "22": "Hibernating",
    }  # fmt: skip

    assert set(scored["segment"]) <= set(SEGMENTS)
    rf = scored["R"].astype(str) + scored["F"].astype(str)
    for code, segment in expected.items():
        assert (scored.loc[rf == code, "segment"] == segment).all()


def test_every_rf_pair_matches_exactly_one_segment_rule():
    for code in (f"{r}{f}" for r in range(1, 6) for f in range(1, 6)):
        matches = [name for pattern, name in SEGMENT_MAP.items() if re.fullmatch(pattern, code)]
        assert len(matches) == 1, (code, matches)


def test_segment_counts_cover_every_segment_present():
    scored = rfm_scores(synthetic_rfm())

    counts = segment_counts(scored)

    assert list(counts.columns) == ["segment", "total_customers"]
    assert set(counts["segment"]) == set(scored["segment"])
    assert counts["total_customers"].sum() == len(scored)
    assert counts["total_customers"].is_monotonic_decreasing


# -- kmeans_segments -----------------------------------------------------------------------------


def test_kmeans_summary_has_every_cluster_and_counts_sum_to_customers():
    rfm = synthetic_rfm()

    result = kmeans_segments(rfm, k_min=2, k_max=5, seed=42)

    assert sorted(result.silhouette) == [2, 3, 4, 5]
    assert result.best_k == max(result.silhouette, key=result.silhouette.get)
    assert result.best_k == 3  # the three generated groups
    assert result.summary["cluster"].tolist() == list(range(result.best_k))
    assert result.summary["customers"].sum() == len(rfm)
    assert (result.summary["customers"] > 0).all()
    assert result.labels.index.equals(rfm.index)
    assert set(result.labels) == set(range(result.best_k))


def test_kmeans_cluster_ids_are_ordered_by_value():
    result = kmeans_segments(synthetic_rfm(), k_min=2, k_max=4)
    assert result.summary["monetary"].is_monotonic_decreasing


def test_kmeans_is_deterministic_for_a_seed():
    rfm = synthetic_rfm(seed=3)

    first = kmeans_segments(rfm, k_min=2, k_max=4, seed=7)
    second = kmeans_segments(rfm, k_min=2, k_max=4, seed=7)

    assert first.silhouette == second.silhouette
    assert first.labels.equals(second.labels)
    assert first.to_dict() == second.to_dict()


def test_kmeans_caps_k_below_the_number_of_customers():
    result = kmeans_segments(synthetic_rfm(customers=5), k_min=2, k_max=8)
    assert max(result.silhouette) == 4


def test_kmeans_rejects_too_few_customers():
    with pytest.raises(ValueError, match="too few"):
        kmeans_segments(synthetic_rfm(customers=2))


def test_scores_work_for_fewer_than_five_customers(transactions):
    scored = rfm_scores(rfm_table(transactions))

    assert scored.loc[12347, ["R", "F"]].tolist() == [5, 1]  # most recent, fewest invoices
    assert scored.loc[12346, ["R", "F"]].tolist() == [1, 5]
    assert scored["segment"].tolist() == ["Can't Lose Them", "New Customers"]


# -- chart ---------------------------------------------------------------------------------------


def test_segment_chart_is_a_png(tmp_path):
    counts = segment_counts(rfm_scores(synthetic_rfm()))

    path = segment_chart_png(counts, tmp_path / "charts" / "segments.png")

    assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert path.stat().st_size > 1000
