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


def test_transactions_without_the_needed_columns_give_a_bounded_error():
    wide = pd.DataFrame(0, index=range(3), columns=[f"c{i}" for i in range(5_000)])

    with pytest.raises(ValueError, match=r"lack columns \['Customer ID', .*\(have \['c0', .* \(5,000 in all\)\)") as caught:
        rfm_table(wide)

    assert len(str(caught.value)) < 500


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
    assert scored["M"].value_counts().tolist() == [24] * 5  # no ties in monetary: equal bins
    assert scored.loc[scored["recency"].idxmin(), "R"] == 5
    assert scored.loc[scored["recency"].idxmax(), "R"] == 1
    assert scored["RFM"].tolist() == [f"{r}{f}{m}" for r, f, m in zip(scored["R"], scored["F"], scored["M"])]


def rfm_of(recency, frequency, monetary, first_id: int = 1) -> pd.DataFrame:
    return pd.DataFrame(
        {"recency": recency, "frequency": frequency, "monetary": np.asarray(monetary, dtype="float64")},
        index=pd.Index(first_id + np.arange(len(recency)), name="customer_id"),
    )


def test_identical_customers_always_get_the_same_scores_and_segment():
    rng = np.random.default_rng(3)
    profiles = np.array([[3, 1, 20.0], [3, 1, 20.0], [40, 2, 150.0], [200, 1, 20.0], [15, 6, 900.0], [90, 3, 300.0]])
    rows = profiles[rng.integers(0, len(profiles), 1_000)]
    rfm = rfm_of(rows[:, 0].astype(int), rows[:, 1].astype(int), rows[:, 2], first_id=rng.integers(1, 10**6))

    scored = rfm_scores(rfm)

    per_profile = scored.groupby(["recency", "frequency", "monetary"])[["R", "F", "M", "segment"]].nunique()
    assert (per_profile == 1).all().all(), per_profile
    assert scored[["R", "F", "M"]].isin(range(1, 6)).all().all()
    assert scored["R"].nunique() > 2 and scored["M"].nunique() > 2  # ties keep a spread of scores


def test_scores_do_not_depend_on_customer_ids_or_row_order():
    rfm = rfm_of([5, 5, 5, 9, 9, 30, 30, 30, 30, 60], [1, 1, 2, 2, 1, 1, 4, 4, 1, 1], [10, 10, 10, 50, 50, 50, 7, 7, 7, 90])
    reordered = rfm.iloc[::-1].set_axis(rfm.index[::-1] * 7 + 3)  # other ids, reversed order

    scored, rescored = rfm_scores(rfm), rfm_scores(reordered)

    assert scored[["R", "F", "M", "segment"]].to_numpy().tolist() == \
        rescored[["R", "F", "M", "segment"]].iloc[::-1].to_numpy().tolist()


def test_when_all_customers_are_identical_they_all_score_the_middle():
    scored = rfm_scores(rfm_of([12] * 50, [2] * 50, [75.5] * 50))

    assert set(map(tuple, scored[["R", "F", "M"]].to_numpy().tolist())) == {(3, 3, 3)}
    assert set(scored["segment"]) == {"Need Attention"}


def test_a_tie_across_a_quintile_boundary_goes_whole_into_the_quintile_of_its_middle():
    # Ten customers: ranks 5..8 tie at 5. Ranked one by one they would span quintiles 2, 3 and 4;
    # their average rank 6.5 is in the fourth.
    monetary = [1, 2, 3, 4, 5, 5, 5, 5, 9, 10]

    scored = rfm_scores(rfm_of(list(range(10, 0, -1)), [1] * 10, monetary))

    assert scored["M"].tolist() == [1, 1, 2, 2, 4, 4, 4, 4, 5, 5]
    assert scored["R"].tolist() == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]  # no ties: equal bins


def test_one_time_buyers_tied_at_the_bottom_keep_the_lowest_frequency_score():
    frequency = [1] * 35 + list(range(2, 67))  # 35% one-time buyers, the rest distinct

    scored = rfm_scores(rfm_of(list(range(1, 101)), frequency, list(range(1, 101))))

    assert set(scored.loc[scored["frequency"] == 1, "F"]) == {1}
    assert scored["F"].value_counts().sort_index().index.tolist() == [1, 2, 3, 4, 5]


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


# -- vectorised RFM against a plain pandas reference -----------------------------------------------


def reference_rfm(transactions: pd.DataFrame) -> pd.DataFrame:
    """The seed's steps in plain pandas (groupby per customer), as the specification."""
    df = transactions.copy()
    df["day"] = pd.to_datetime(df["InvoiceDate"]).dt.tz_localize(None).dt.normalize()
    as_of = df["day"].max() + pd.Timedelta(days=1)
    df = df[df["Customer ID"].notna()].assign(amount=lambda d: d["Quantity"] * d["Price"])
    df["Invoice"] = df["Invoice"].astype(str)
    purchases = df[~df["Invoice"].str.startswith("C")]
    rfm = purchases.groupby("Customer ID").agg(last=("day", "max"), frequency=("Invoice", "nunique"))
    rfm["monetary"] = df.groupby("Customer ID")["amount"].sum()
    rfm = rfm[rfm["monetary"] > 0]
    rfm["recency"] = (as_of - rfm["last"]).dt.days
    rfm.index = rfm.index.astype("int64")
    return rfm[["recency", "frequency", "monetary"]]


@pytest.fixture(scope="module")
def retail_sample() -> pd.DataFrame:
    from mlops.core.entrypoints import generators_module

    return generators_module().retail(30_000, seed=21)


def assert_same_rfm(rfm: pd.DataFrame, reference: pd.DataFrame) -> None:
    assert rfm.index.tolist() == reference.index.tolist()
    assert rfm["recency"].tolist() == reference["recency"].tolist()
    assert rfm["frequency"].tolist() == reference["frequency"].tolist()
    np.testing.assert_allclose(rfm["monetary"], reference["monetary"], rtol=1e-12)


def test_rfm_matches_the_plain_pandas_reference_on_generated_data(retail_sample):
    assert_same_rfm(rfm_table(retail_sample), reference_rfm(retail_sample))


def test_rfm_does_not_depend_on_the_order_of_the_lines(retail_sample):
    shuffled = retail_sample.sample(frac=1.0, random_state=3).reset_index(drop=True)

    assert_same_rfm(rfm_table(shuffled), reference_rfm(retail_sample))


def test_rfm_reads_utc_timestamps_and_object_invoice_columns_alike(retail_sample):
    variant = retail_sample.assign(
        InvoiceDate=retail_sample["InvoiceDate"].dt.tz_localize("UTC"),
        Invoice=retail_sample["Invoice"].astype(object),
    )

    assert_same_rfm(rfm_table(variant), reference_rfm(retail_sample))


def test_rfm_handles_integer_invoice_numbers_and_non_integral_ids(transactions):
    numbered = transactions[~transactions["Invoice"].str.startswith("C")].assign(
        Invoice=lambda d: d["Invoice"].astype(int), **{"Customer ID": lambda d: d["Customer ID"] + 0.5})

    rfm = rfm_table(numbered)

    assert rfm.index.tolist() == [12346.5, 12347.5, 12348.5]
    assert rfm["frequency"].tolist() == [2, 1, 1]


def test_segments_match_the_regex_map_for_every_customer(retail_sample):
    scored = rfm_scores(rfm_table(retail_sample))
    rf = scored["R"].astype(str) + scored["F"].astype(str)

    by_regex = rf.replace(SEGMENT_MAP, regex=True)

    assert scored["segment"].tolist() == by_regex.tolist()


# -- every cluster written back ------------------------------------------------------------------


def seven_groups(customers: int = 350) -> pd.DataFrame:
    rng = np.random.default_rng(5)
    group = np.arange(customers) % 7
    return pd.DataFrame(
        {
            "recency": np.array([5, 40, 90, 150, 220, 300, 360])[group] + rng.integers(0, 3, customers),
            "frequency": np.array([60, 30, 15, 8, 4, 2, 1])[group],
            "monetary": np.array([9e4, 2e4, 5e3, 1.2e3, 300, 80, 20])[group] * rng.uniform(0.97, 1.03, customers),
        },
        index=pd.Index(12346 + np.arange(customers), name="customer_id"),
    )


def test_cluster_counts_have_a_row_for_every_cluster_even_beyond_five():
    from mlops.ml.segmentation import cluster_counts

    rfm = seven_groups()
    result = kmeans_segments(rfm, k_min=2, k_max=9, seed=42)
    counts = cluster_counts(result, rfm_scores(rfm))

    assert result.best_k == 7  # head() would have written five of them
    assert counts["cluster"].tolist() == list(range(7))
    assert counts["total_customers"].sum() == len(rfm)
    assert counts["segment"].is_unique
    assert counts["segment"].str.fullmatch(r"Cluster \d: .+").all()


def test_a_cluster_is_named_after_the_segment_most_of_its_customers_are_in():
    from mlops.ml.segmentation import cluster_names

    scored = pd.DataFrame({"segment": ["Champions", "Champions", "At Risk", "At Risk", "At Risk"]},
                          index=[1, 2, 3, 4, 5])
    labels = pd.Series([0, 0, 0, 1, 1], index=[1, 2, 3, 4, 5])

    assert cluster_names(scored, labels) == {0: "Cluster 0: Champions", 1: "Cluster 1: At Risk"}


# -- the run -------------------------------------------------------------------------------------


@pytest.fixture
def retail_partition(mlops_home, retail_sample):
    import pyarrow as pa

    from mlops.core import partitions

    directory = partitions.partition_path("retail", "2026-01-02")
    parts = partitions.write_parts(directory, [pa.Table.from_pandas(retail_sample, preserve_index=False)], "t")
    partitions.commit(directory, parts, None, {"kind": "test"})
    return str(directory)


def run(partition_uri, out_uri, k_max=6):
    from mlops.ml.segmentation_job import run_segmentation

    return run_segmentation(partition_uri, out_uri, "manual__1", "2026-01-02", k_min=2, k_max=k_max, seed=42)


def read(uri: str) -> pd.DataFrame:
    from mlops.core.storage import to_path

    with to_path(uri).open("rb") as handle:
        return pd.read_parquet(handle)


def test_the_run_writes_a_result_row_for_every_cluster(retail_partition, mlops_home):
    import pyarrow.parquet as pq

    from mlops.core.storage import to_path

    summary = run(retail_partition, (mlops_home / "out").as_uri())

    results = read(summary["results_uri"])
    assert list(results.columns) == ["run_id", "segment", "total_customers", "run_date"]
    assert len(results) == summary["best_k"]
    assert summary["best_k"] == int(max(summary["silhouette"], key=summary["silhouette"].get))
    assert results["total_customers"].sum() == summary["customers"]
    assert dict(zip(results["segment"], results["total_customers"])) == summary["segments"]
    assert set(results["run_id"]) == {"manual__1"}
    with to_path(summary["results_uri"]).open("rb") as handle:
        assert str(pq.read_schema(handle).field("run_date").type) == "date32[day]"
    assert sum(summary["rfm_segments"].values()) == summary["customers"]


def test_the_report_shows_the_chart_and_the_silhouette_of_every_k(retail_partition, mlops_home):
    from mlops.core.storage import to_path

    summary = run(retail_partition, (mlops_home / "out").as_uri())

    report = to_path(summary["report_uri"]).read_text()
    assert report.count("data:image/png;base64,") == 2
    for k in range(2, 7):
        assert f"<td>{k}</td>" in report
    assert f"k = {summary['best_k']}, chosen by silhouette" in report
    assert to_path(summary["chart_uri"]).read_bytes().startswith(b"\x89PNG")


def test_rerunning_the_same_partition_gives_identical_results(retail_partition, mlops_home):
    first = run(retail_partition, (mlops_home / "first").as_uri())
    second = run(retail_partition, (mlops_home / "second").as_uri())

    pd.testing.assert_frame_equal(read(first["results_uri"]), read(second["results_uri"]))
    pd.testing.assert_frame_equal(read(first["results_uri"].replace("ml_clustering_results", "customers")),
                                  read(second["results_uri"].replace("ml_clustering_results", "customers")))
