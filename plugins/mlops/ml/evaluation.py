"""The quality gate, holdout evaluation and the model report (HTML with embedded PNG plots)."""

from __future__ import annotations

import base64
import io
import json
from typing import Any


def load_model(model_uri: str, sha256: str):
    """Load a packed model through the serving handlers (digest verified first)."""
    from mlops.core.entrypoints import inference_module
    from mlops.core.storage import scratch_dir, unpack_model

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

    from mlops.core.entrypoints import inference_module
    from mlops.core.storage import to_path

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


def quality_gate(mean: float, baseline: float, objective: str) -> dict[str, Any]:
    """The quality gate's decision on the best trial's mean CV ``objective``.

    Passes when ``mean >= baseline``. Below the baseline nothing is refit or registered (not
    even as ``Rejected``): there is no model to record, and the run's reason says why.
    """
    passed = bool(mean >= baseline)
    relation = "reaches" if passed else "is below"
    return {
        "passed": passed,
        "objective": objective,
        "cv_mean": float(mean),
        "baseline": float(baseline),
        "reason": f"mean CV {objective} {mean:.4f} {relation} the baseline {baseline}"
                  + ("" if passed else "; no model refit or registered"),
    }


def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def _history_plot(plt, objective: str, history: list[dict[str, Any]]) -> str | None:
    """Every trial's mean (pruned ones at the mean they were stopped with) and the best so far."""
    scored = [t for t in history if t.get("mean") is not None]
    if not scored:
        return None
    fig, ax = plt.subplots(figsize=(6, 3.2))
    complete = [t for t in scored if t.get("state") == "COMPLETE"]
    pruned = [t for t in scored if t.get("state") == "PRUNED"]
    ax.plot([t["number"] for t in complete], [t["mean"] for t in complete], "o", color="#4c72b0",
            label="complete (k-fold mean)")
    if pruned:
        ax.plot([t["number"] for t in pruned], [t["mean"] for t in pruned], "x", color="#c44e52",
                label="pruned (mean when stopped)")
    best, line = None, []
    for trial in sorted(complete, key=lambda t: t["number"]):
        best = trial["mean"] if best is None else max(best, trial["mean"])
        line.append((trial["number"], best))
    if line:
        ax.step(*zip(*line), where="post", color="black", label="best so far")
    ax.set(xlabel="trial", ylabel=f"mean {objective}", title="Tuning history")
    ax.legend(fontsize="small")
    return _png(fig)


def model_report_html(title: str, tuning: dict[str, Any], history: list[dict[str, Any]],
                      metrics: dict[str, float], curves: dict[str, Any],
                      folds: dict[str, Any] | None = None, model_uri: str | None = None) -> str:
    """A self-contained HTML report: CV per fold (mean ± std), the tuning history, the holdout
    metrics, confusion matrix and ROC/PR curves, as embedded PNGs.

    :param tuning: a ``TuningResult`` dict; ``history``: its trial records.
    :param folds: the fold manifest's ``k``, ``seed``, ``strategy``, ``dataset_digest``.
    :param model_uri: the model the report describes.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    best = tuning["best"]
    objective = tuning["objective"]
    images = []
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.bar(range(len(best["fold_scores"])), best["fold_scores"], color="#4c72b0")
    ax.axhline(best["mean"], color="black", linestyle="--", label=f"mean {best['mean']:.4f}")
    if best["fold_scores"]:
        low, high = min(best["fold_scores"]), max(best["fold_scores"])
        margin = max(high - low, 0.01)
        ax.set_ylim(low - margin, high + margin)
    ax.set(xlabel="fold", ylabel=objective, title="CV score per fold (best trial)")
    ax.legend()
    images.append(("CV per fold", _png(fig)))
    history_png = _history_plot(plt, objective, history)
    if history_png:
        images.append(("Tuning history", history_png))
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

    from mlops.ml.report_html import render_report

    counts = {state: sum(t.get("state") == state for t in history) for state in ("COMPLETE", "PRUNED", "FAIL")}
    trials = [{"number": t["number"], "state": str(t.get("state")), "mean": t.get("mean"),
               "folds": len(t.get("fold_scores") or []), "params": json.dumps(t.get("params"), sort_keys=True)}
              for t in history]
    return render_report(
        "model_report.html.j2", title=title, model_uri=model_uri, tuning=tuning, best=best, objective=objective,
        folds=[f"{k} {v}" for k, v in folds.items() if v is not None] if folds else None,
        params=json.dumps(best["hyperparameters"], sort_keys=True), job_name=str(tuning.get("job_name", "")),
        counts=counts, trials=trials, metrics=metrics, images=images,
    )


def write_report(html_text: str, uri: str) -> str:
    from mlops.core.storage import to_path

    path = to_path(uri)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html_text)
    return uri
