"""One segmentation run: RFM -> named segments + KMeans -> Parquet, charts and report."""

from __future__ import annotations

from typing import Any


def run_segmentation(partition_uri: str, out_uri: str, run_id: str, run_date: str,
                     k_min: int, k_max: int, seed: int) -> dict[str, Any]:
    """Segment the customers of one retail partition; write results under ``out_uri``.

    Writes

    * ``customers.parquet``: RFM, scores, named segment and cluster per customer;
    * ``ml_clustering_results.parquet``: the seed's table (``run_id``, ``segment``,
      ``total_customers``, ``run_date``) with one row for *every* KMeans cluster, named after
      its dominant RFM segment; this is what the DAG upserts into Keyspaces;
    * ``clusters.parquet``: every cluster with its size and mean recency/frequency/monetary;
    * ``rfm_segments.parquet``: customers per named RFM segment (every segment present);
    * ``clusters.png`` and ``segments.png`` (bar charts) and ``report.html`` (both charts, the
      silhouette of every k tried and the k chosen).

    Re-running with the same inputs and seed writes identical tables.
    """
    import base64
    from datetime import date

    from markupsafe import Markup

    from mlops.core import partitions
    from mlops.core.storage import scratch_dir, to_path
    from mlops.ml.report_html import render_report
    from mlops.ml.segmentation import (
        cluster_counts,
        kmeans_segments,
        rfm_scores,
        rfm_table,
        segment_chart_png,
        segment_counts,
    )

    transactions = partitions.read_partition(partition_uri)
    rfm = rfm_table(transactions)
    scored = rfm_scores(rfm)
    clusters = kmeans_segments(rfm, k_min=k_min, k_max=k_max, seed=seed)
    scored["cluster"] = clusters.labels
    by_cluster = cluster_counts(clusters, scored)
    by_segment = segment_counts(scored)
    results = by_cluster[["segment", "total_customers"]].assign(
        run_id=run_id, run_date=date.fromisoformat(run_date),
    )[["run_id", "segment", "total_customers", "run_date"]]

    out = to_path(out_uri)
    out.mkdir(parents=True, exist_ok=True)
    tables = {
        "customers.parquet": scored.reset_index(),
        "ml_clustering_results.parquet": results,
        "clusters.parquet": by_cluster,
        "rfm_segments.parquet": by_segment,
    }
    for name, frame in tables.items():
        with (out / name).open("wb") as handle:
            frame.to_parquet(handle, index=False)
    scratch = scratch_dir("segments")
    charts = {
        "clusters.png": segment_chart_png(by_cluster, scratch / "clusters.png",
                                          title=f"Customers per KMeans cluster (k={clusters.best_k})", sort=False),
        "segments.png": segment_chart_png(by_segment, scratch / "segments.png"),
    }
    images = {}
    for name, chart in charts.items():
        data = chart.read_bytes()
        (out / name).write_bytes(data)
        images[name] = base64.b64encode(data).decode()

    attrs = rfm.attrs
    (out / "report.html").write_text(render_report(
        "segmentation_report.html.j2", run_id=run_id, run_date=run_date, customers=len(rfm),
        lines=len(transactions), as_of=str(attrs.get("as_of")),
        rows_without_customer=attrs.get("rows_without_customer", 0),
        customers_dropped=attrs.get("customers_dropped", 0), best_k=clusters.best_k, seed=seed, images=images,
        # markup of pandas' own making: to_html(escape=True) escapes every name and value in the tables
        cluster_table=Markup(by_cluster.to_html(index=False, float_format="%.2f", escape=True)),  # noqa: S704
        segment_table=Markup(by_segment.to_html(index=False, escape=True)),  # noqa: S704
        silhouette=[(k, v, clusters.inertia[k], k == clusters.best_k) for k, v in clusters.silhouette.items()],
    ))
    return {
        "customers": int(len(rfm)),
        "segments": {row.segment: int(row.total_customers) for row in by_cluster.itertuples()},
        "rfm_segments": {row.segment: int(row.total_customers) for row in by_segment.itertuples()},
        "best_k": int(clusters.best_k),
        "silhouette": {str(k): float(v) for k, v in clusters.silhouette.items()},
        "results_uri": str(out / "ml_clustering_results.parquet"),
        "report_uri": str(out / "report.html"),
        "chart_uri": str(out / "clusters.png"),
    }
