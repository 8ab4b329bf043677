"""One segmentation run: RFM -> named segments + KMeans -> Parquet, chart and report."""

from __future__ import annotations

from typing import Any


def run_segmentation(partition_uri: str, out_uri: str, run_id: str, run_date: str,
                     k_min: int, k_max: int, seed: int) -> dict[str, Any]:
    """Segment the customers of one retail partition; write results under ``out_uri``.

    Writes ``customers.parquet`` (RFM, scores, named segment, cluster per customer),
    ``ml_clustering_results.parquet`` (the seed's table: run_id, segment, total_customers,
    run_date, one row for *every* segment), ``segments.png`` and ``report.html``.
    """
    import base64
    import html

    from mlops import partitions
    from mlops.ml.segmentation import (
        kmeans_segments,
        rfm_scores,
        rfm_table,
        segment_chart_png,
        segment_counts,
    )
    from mlops.storage import scratch_dir, to_path

    transactions = partitions.read_partition(partition_uri)
    rfm = rfm_table(transactions)
    scored = rfm_scores(rfm)
    clusters = kmeans_segments(rfm, k_min=k_min, k_max=k_max, seed=seed)
    scored["cluster"] = clusters.labels
    counts = segment_counts(scored)
    results = counts.assign(run_id=run_id, run_date=run_date)[["run_id", "segment", "total_customers", "run_date"]]
    out = to_path(out_uri)
    out.mkdir(parents=True, exist_ok=True)
    for name, frame in (("customers.parquet", scored.reset_index()), ("ml_clustering_results.parquet", results)):
        with (out / name).open("wb") as handle:
            frame.to_parquet(handle, index=False)
    chart = scratch_dir("segments") / "segments.png"
    segment_chart_png(counts, chart)
    (out / "segments.png").write_bytes(chart.read_bytes())
    image = base64.b64encode(chart.read_bytes()).decode()
    silhouette = "".join(f"<tr><td>{k}</td><td>{v:.4f}</td></tr>" for k, v in clusters.silhouette.items())
    summary = clusters.summary.to_html(index=False, float_format="%.2f")
    table = counts.to_html(index=False)
    (out / "report.html").write_text(f"""<!doctype html><html><head><meta charset="utf-8">
<title>Customer segmentation {html.escape(run_id)}</title></head><body style="font-family:sans-serif">
<h1>Customer segmentation</h1><p>{len(rfm)} customers from {len(transactions)} transactions.</p>
<h2>RFM segments</h2>{table}<img src="data:image/png;base64,{image}"/>
<h2>KMeans (k chosen by silhouette: {clusters.best_k})</h2><table><tr><th>k</th><th>silhouette</th></tr>
{silhouette}</table>{summary}</body></html>""")
    return {
        "customers": int(len(rfm)),
        "segments": {row.segment: int(row.total_customers) for row in counts.itertuples()},
        "best_k": int(clusters.best_k),
        "silhouette": {str(k): float(v) for k, v in clusters.silhouette.items()},
        "results_uri": str(out / "ml_clustering_results.parquet"),
        "report_uri": str(out / "report.html"),
    }
