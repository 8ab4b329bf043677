"""Holdout evaluation and the model report (HTML with embedded PNG plots)."""

from __future__ import annotations

import base64
import html
import io
from typing import Any


def load_model(model_uri: str, sha256: str):
    """Load a packed model through the serving handlers (digest verified first)."""
    from mlops.entrypoints import inference_module
    from mlops.storage import scratch_dir, unpack_model

    directory = unpack_model(model_uri, scratch_dir("eval"), sha256)
    return inference_module().model_fn(str(directory))


def evaluate_holdout(model: dict[str, Any], holdout_uri: str, target: str, positive_label: str | None,
                     golden_rows: int = 20) -> tuple[dict[str, float], dict[str, Any]]:
    """Metrics of the refit model on the holdout, plus curves for the report.

    Returns ``(metrics, curves)``; metrics use the names the approval policy reads
    (``holdout_roc_auc``, ``holdout_pr_auc``, ``holdout_accuracy``, ``holdout_f1``).
    """
    import numpy as np
    import pandas as pd
    from sklearn import metrics as skm

    from mlops.entrypoints import inference_module
    from mlops.storage import to_path

    inference = inference_module()
    loaded = load_model(model["model_uri"], model["sha256"])
    with to_path(holdout_uri).open("rb") as handle:
        holdout = pd.read_parquet(handle)
    features = holdout[loaded.feature_columns]
    prediction = inference.predict_fn(features.copy(), loaded)
    truth = (holdout[target].astype(str) == str(positive_label)).to_numpy()
    probability = np.asarray(prediction["probability"], dtype=float)
    predicted = np.asarray(prediction["predicted_label"]).astype(str) == str(positive_label)
    metrics = {
        "holdout_roc_auc": float(skm.roc_auc_score(truth, probability)),
        "holdout_pr_auc": float(skm.average_precision_score(truth, probability)),
        "holdout_accuracy": float(skm.accuracy_score(truth, predicted)),
        "holdout_f1": float(skm.f1_score(truth, predicted)),
        "holdout_rows": int(len(holdout)),
    }
    fpr, tpr, _ = skm.roc_curve(truth, probability)
    precision, recall, _ = skm.precision_recall_curve(truth, probability)
    curves = {
        "roc": (fpr, tpr), "pr": (recall, precision),
        "confusion": skm.confusion_matrix(truth, predicted, labels=[False, True]),
        "golden": holdout[loaded.feature_columns].head(golden_rows).assign(probability=probability[:golden_rows]),
    }
    return metrics, curves


def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def model_report_html(title: str, tuning: dict[str, Any], history: list[dict[str, Any]],
                      metrics: dict[str, float], curves: dict[str, Any]) -> str:
    """A self-contained HTML report: CV per fold, tuning history, holdout metrics and curves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    best = tuning["best"]
    images = []
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.bar(range(len(best["fold_scores"])), best["fold_scores"], color="#4c72b0")
    ax.axhline(best["mean"], color="black", linestyle="--", label=f"mean {best['mean']:.4f}")
    ax.set(xlabel="fold", ylabel=tuning["objective"], title="CV score per fold (best trial)")
    ax.legend()
    images.append(("CV per fold", _png(fig)))
    complete = [t for t in history if t.get("state") == "COMPLETE"]
    if complete:
        fig, ax = plt.subplots(figsize=(5, 3))
        ax.plot([t["number"] for t in complete], [t["mean"] for t in complete], "o-")
        ax.set(xlabel="trial", ylabel=f"mean {tuning['objective']}", title="Tuning history")
        images.append(("Tuning history", _png(fig)))
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    axes[0].plot(*curves["roc"])
    axes[0].plot([0, 1], [0, 1], ":", color="grey")
    axes[0].set(xlabel="false positive rate", ylabel="true positive rate", title="ROC (holdout)")
    axes[1].plot(*curves["pr"])
    axes[1].set(xlabel="recall", ylabel="precision", title="PR (holdout)")
    matrix = curves["confusion"]
    axes[2].imshow(matrix, cmap="Blues")
    for (i, j), value in np.ndenumerate(matrix):
        axes[2].text(j, i, str(value), ha="center", va="center")
    axes[2].set(xticks=[0, 1], yticks=[0, 1], xticklabels=["neg", "pos"], yticklabels=["neg", "pos"],
                xlabel="predicted", ylabel="actual", title="Confusion matrix (holdout)")
    images.append(("Holdout curves", _png(fig)))
    rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{v:.4f}</td></tr>" if isinstance(v, float)
                   else f"<tr><td>{html.escape(k)}</td><td>{v}</td></tr>" for k, v in metrics.items())
    folds = ", ".join(f"{s:.4f}" for s in best["fold_scores"])
    params = html.escape(str(best["hyperparameters"]))
    plots = "".join(f'<h3>{html.escape(name)}</h3><img src="data:image/png;base64,{data}"/>' for name, data in images)
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}td{{padding:2px 12px}}</style></head>
<body><h1>{html.escape(title)}</h1>
<h2>Cross-validation (best of {tuning['n_trials']} trials)</h2>
<p>{tuning['objective']} per fold: {folds}<br>mean {best['mean']:.4f} ± {best['std']:.4f}</p>
<p>best hyperparameters: <code>{params}</code></p>
<h2>Holdout (never seen by CV or tuning)</h2><table>{rows}</table>{plots}</body></html>"""


def write_report(html_text: str, uri: str) -> str:
    from mlops.storage import to_path

    path = to_path(uri)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html_text)
    return uri



