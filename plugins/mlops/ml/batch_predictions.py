"""Before and after a batch transform: build its input, then turn its output into predictions."""

from __future__ import annotations

import csv
import io
import json
from typing import Any


def prepare_transform_input(scoring_uris: list[str], id_column: str, feature_columns: list[str],
                            target: str, out_uri: str) -> dict[str, Any]:
    """Write the headerless CSV a transform job reads (id first, then features) and keep labels apart."""
    import pandas as pd

    from mlops.storage import to_path
    from mlops.validation import load_csv_strict

    frames = []
    for uri in scoring_uris:
        with to_path(uri).open("rb") as handle:
            frames.append(load_csv_strict(handle, None))
    if not frames:
        raise ValueError("no scoring files to predict")
    frame = pd.concat(frames, ignore_index=True)
    missing = [c for c in [id_column, *feature_columns] if c not in frame.columns]
    if missing:
        raise ValueError(f"scoring data lacks columns: {', '.join(missing)}")
    out = to_path(out_uri)
    (out / "input").mkdir(parents=True, exist_ok=True)
    with (out / "input" / "records.csv").open("w") as handle:
        frame[[id_column, *feature_columns]].to_csv(handle, header=False, index=False)
    labels_uri = None
    if target in frame.columns:
        labels_uri = str(out / "labels.parquet")
        with to_path(labels_uri).open("wb") as handle:
            frame[[id_column, target]].to_parquet(handle, index=False)
    return {"input_uri": str(out / "input"), "labels_uri": labels_uri, "rows": int(len(frame))}


def read_transform_output(output_uri: str, id_column: str, keys: list[str]):
    """Parse ``*.out`` files of (id, response keys...) lines into a DataFrame."""
    import pandas as pd

    from mlops.storage import to_path

    records = []
    for path in sorted(p for p in to_path(output_uri).iterdir() if p.name.endswith(".out")):
        for row in csv.reader(io.StringIO(path.read_text())):
            if not row:
                continue
            values = [json.loads(v) if k in ("labels", "probabilities") else v for k, v in zip(keys, row[1:])]
            records.append([row[0], *values])
    frame = pd.DataFrame(records, columns=[id_column, *keys])
    if "probability" in frame:
        frame["probability"] = frame["probability"].astype(float)
    return frame


def evaluate_predictions(predictions, labels, id_column: str, target: str, positive_label: str,
                         min_precision: float) -> dict[str, Any]:
    """ROC AUC, PR AUC, and the threshold with the best recall at ``min_precision``."""
    import numpy as np
    from sklearn import metrics as skm

    joined = predictions.merge(labels, on=id_column, how="inner", validate="one_to_one")
    truth = (joined[target].astype(str) == positive_label).to_numpy()
    score = joined["probability"].to_numpy(dtype=float)
    precision, recall, thresholds = skm.precision_recall_curve(truth, score)
    ok = np.where(precision[:-1] >= min_precision)[0]
    if len(ok):
        best = ok[np.argmax(recall[:-1][ok])]
        threshold = float(thresholds[best])
    else:
        threshold = 0.5
    chosen = score >= threshold
    return {
        "rows_evaluated": int(len(joined)),
        "roc_auc": float(skm.roc_auc_score(truth, score)),
        "pr_auc": float(skm.average_precision_score(truth, score)),
        "threshold": threshold,
        "min_precision": min_precision,
        "precision_at_threshold": float(skm.precision_score(truth, chosen, zero_division=0)),
        "recall_at_threshold": float(skm.recall_score(truth, chosen)),
        "confusion_matrix": skm.confusion_matrix(truth, chosen, labels=[False, True]).tolist(),
    }
