"""The HTML reports rendered from templates: every value from the data is escaped, the numbers are there."""

from __future__ import annotations

import re

import jinja2
import numpy as np
import pyarrow as pa
import pytest

HOSTILE = "<script>x</script>"
ESCAPED = "&lt;script&gt;x&lt;/script&gt;"


def assert_escaped(html: str) -> None:
    assert HOSTILE not in html and "<script" not in html
    assert ESCAPED in html


def test_the_model_report_escapes_names_from_the_data_and_shows_the_cv_and_holdout_numbers():
    from mlops.ml.evaluation import model_report_html

    tuning = {"job_name": f"tune-{HOSTILE}", "objective": "roc_auc", "n_trials": 4,
              "best": {"hyperparameters": {HOSTILE: 3}, "fold_scores": [0.81, 0.79, 0.83], "mean": 0.81,
                       "std": 0.0163}}
    history = [
        {"number": 0, "state": "COMPLETE", "mean": 0.8, "fold_scores": [0.8, 0.8, 0.8], "params": {"a": 1}},
        {"number": 1, "state": "PRUNED", "mean": 0.7, "fold_scores": [0.7], "params": {"a": 2}},
        {"number": 2, "state": "FAIL", "mean": None, "fold_scores": None, "params": {"a": 3}},
    ]
    curves = {"roc": ([0, 0.4, 1], [0, 0.8, 1]), "pr": ([0, 1], [1, 0.6]), "confusion": np.array([[50, 5], [7, 38]])}
    metrics = {"holdout_roc_auc": 0.912345, "holdout_rows": 100, HOSTILE: 0.5}

    html = model_report_html(f"report {HOSTILE}", tuning, history, metrics, curves,
                             folds={"k": 3, "strategy": HOSTILE, "dataset_digest": None}, model_uri=f"s3://b/{HOSTILE}")

    assert_escaped(html)
    assert f"<title>report {ESCAPED}</title>" in html and f"<code>s3://b/{ESCAPED}</code>" in html
    assert f"tune-{ESCAPED}: 1 complete,\n1 pruned, 1 failed" in html
    assert f"folds: k 3, strategy {ESCAPED}</p>" in html and "dataset_digest" not in html
    assert "mean 0.8100 ± 0.0163 over 3 folds" in html and "best of 4 trials" in html
    assert "<td>0</td><td>0.8100</td>" in html and "<td>2</td><td>0.8300</td>" in html
    assert "<td>2</td><td>FAIL</td><td>None</td><td>0</td>" in html
    assert "<td>holdout_roc_auc</td><td>0.9123</td>" in html and "<td>holdout_rows</td><td>100</td>" in html
    assert f"<td>{ESCAPED}</td><td>0.5000</td>" in html
    assert f"{{&#34;{ESCAPED}&#34;: 3}}" in html, "the best hyperparameters, as escaped JSON"
    assert re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,[A-Za-z0-9+/=]+"/>', html) == [
        "CV per fold", "Tuning history", "Holdout curves"]


def test_the_batch_evaluation_report_escapes_the_summary_and_shows_the_metrics(monkeypatch):
    from mlops.ml import batch_predictions

    monkeypatch.setattr(batch_predictions, "evaluation_plots", lambda evaluation: [("ROC curve", "QUJD")])
    evaluation = {"roc_auc": 0.87654, "rows": 400, "min_precision_met": False, "min_precision": 0.9,
                  "curves": {"roc": HOSTILE}}

    html = batch_predictions.evaluation_report_html(HOSTILE, evaluation, {"model_name": HOSTILE, "evaluation": {}})

    assert_escaped(html)
    assert f"<td>model_name</td><td>{ESCAPED}</td>" in html and "<td>evaluation</td>" not in html
    assert "<td>roc_auc</td><td>0.8765</td>" in html and "<td>rows</td><td>400</td>" in html
    assert "<td>curves</td>" not in html
    assert "No threshold reaches precision 0.90</b>; 0.5 is used." in html
    assert '<h3>ROC curve</h3><img alt="ROC curve" src="data:image/png;base64,QUJD"/>' in html
    met = batch_predictions.evaluation_report_html("t", {**evaluation, "min_precision_met": True})
    assert "No threshold" not in met


def test_the_monitoring_report_escapes_feature_names_and_shows_every_distance():
    from mlops.ml.monitoring import monitoring_report_html

    def feature(name, distance, drift):
        return {"name": name, "inferred_type": "Fractional", "distance": distance, "threshold": 0.1,
                "noise_floor": 0.05, "psi": 0.25, "completeness": 1.0, "drift": drift,
                "plot": {"labels": ["a", "b"], "baseline": [0.5, 0.5], "capture": [0.2, 0.8]}}

    result = {"features": [feature(HOSTILE, 0.4321, True), feature("calls", 0.02, False)],
              "violations": [{"constraint_check_type": "data_drift_check", "feature_name": HOSTILE,
                              "description": f"distance 0.4321 > 0.1 for {HOSTILE}"}],
              "model_quality": {"metrics": {"roc_auc": 0.77}}, "window": {"since": "2026-03-04", "until": "2026-03-05"},
              "status": "CompletedWithViolations", "rows": 300, "unreadable_records": 2, "statistic": "L-infinity",
              "min_rows": 50}

    html = monitoring_report_html(f"monitoring {HOSTILE}", result)

    assert_escaped(html)
    assert f"<tr><td>{ESCAPED}</td><td>Fractional</td><td>0.4321</td><td>0.1</td><td>0.0500</td><td>0.2500</td>" in html
    assert "<td>calls</td><td>Fractional</td><td>0.0200</td>" in html
    assert html.count("<b>drift</b>") == 1 and html.count("<td>ok</td>") == 1
    assert f"<li><b>data_drift_check</b> {ESCAPED}: distance 0.4321 &gt; 0.1 for {ESCAPED}</li>" in html
    assert "<b>CompletedWithViolations</b>, 300 captured rows\n(2 unreadable records)" in html
    assert "&#34;roc_auc&#34;: 0.77" in html
    assert re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,', html) == [ESCAPED, "calls"]
    quiet = monitoring_report_html("t", {**result, "violations": [], "model_quality": None, "window": {}})
    assert "<li>none</li>" in quiet and "No ground truth joined in this window." in quiet
    assert "Window None .. None" in quiet


def test_the_segmentation_report_escapes_the_run_id_and_shows_the_counts(mlops_home):
    from mlops.core import partitions
    from mlops.core.entrypoints import generators_module
    from mlops.core.storage import to_path
    from mlops.ml.segmentation_job import run_segmentation

    directory = partitions.partition_path("retail", "2026-01-02")
    frame = generators_module().retail(3000, seed=21)
    partitions.commit(directory, partitions.write_parts(directory, [pa.Table.from_pandas(frame, preserve_index=False)],
                                                        "t"), None, {"kind": "test"})

    summary = run_segmentation(str(directory), (mlops_home / "out").as_uri(), HOSTILE, "2026-01-02",
                               k_min=2, k_max=4, seed=42)

    html = to_path(summary["report_uri"]).read_text()
    assert_escaped(html)
    assert f"<title>Customer segmentation {ESCAPED}</title>" in html
    assert f"Run {ESCAPED} for 2026-01-02: {summary['customers']} customers from 3000 invoice" in html
    assert f"k = {summary['best_k']}, chosen by silhouette" in html
    for k, score in summary["silhouette"].items():
        assert f"<tr><td>{k}</td><td>{score:.4f}</td>" in html
    assert html.count("<td>chosen</td>") == 1
    assert html.count('<table border="1" class="dataframe">') == 2, "the cluster and segment tables"
    for segment, customers in summary["rfm_segments"].items():
        assert re.search(rf"<td>{re.escape(segment)}</td>\s*<td>{customers}</td>", html), segment
    for cluster, (segment, customers) in enumerate(summary["segments"].items()):
        assert re.search(rf"<td>{re.escape(segment)}</td>\s*<td>{cluster}</td>\s*<td>{customers}</td>", html), segment


def test_a_variable_the_template_needs_but_is_not_given_fails_loudly():
    from mlops.ml.report_html import render_report

    with pytest.raises(jinja2.UndefinedError, match="title"):
        render_report("monitoring_report.html.j2", result={}, window={}, quality=None, plots=[])
