"""Before and after a batch transform: build its input, then turn its output into predictions.

After the transform, :func:`write_predictions_parquet` streams the ``.out`` files (id, then the
response keys) into one Parquet file, :func:`evaluate_predictions` scores them against labels
when the scoring data had some (ROC AUC, PR AUC, the threshold with the best recall at a minimum
precision, the confusion matrix at that threshold), :func:`write_evaluation_report` renders
that as HTML with the plots embedded, and :func:`write_predictions_to_keyspaces` upserts the
predictions into the Keyspaces ``predictions`` table (``sql/keyspaces/predictions.cql``).

pandas, pyarrow, scikit-learn and matplotlib are imported inside the functions: DAG files
import this module's callers at parse time.
"""

from __future__ import annotations

import ast
import base64
import csv
import io
import json
from collections import deque
from collections.abc import Iterator
from typing import Any

LIST_KEYS = ("labels", "probabilities")


def prepare_transform_input(scoring_uris: list[str], id_column: str, feature_columns: list[str],
                            target: str, out_uri: str) -> dict[str, Any]:
    """Write the headerless CSV a transform job reads (id first, then features) and keep labels apart."""
    import pandas as pd

    from mlops.core.messages import name_list
    from mlops.core.storage import to_path
    from mlops.ingest.csv_files import load_csv_strict

    frames = []
    for uri in scoring_uris:
        with to_path(uri).open("rb") as handle:
            frames.append(load_csv_strict(handle, None))
    if not frames:
        raise ValueError("no scoring files to predict")
    frame = pd.concat(frames, ignore_index=True)
    missing = [c for c in [id_column, *feature_columns] if c not in frame.columns]
    if missing:
        raise ValueError(f"scoring data lacks columns: {name_list(missing)}")
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


# ---------------------------------------------------------------- transform output
# What ``probability`` is the probability of (SageMaker, "Configure inference output in generated
# containers"): in ENSEMBLING mode, and for multiclass problems, that of ``predicted_label``; in
# HYPERPARAMETER_TUNING mode for a binary problem, that of Autopilot's positive class, the second
# of ``labels``. The local serving handlers give binary models the second label's too.
PROBABILITY_OF_PREDICTED = "predicted_label"
PROBABILITY_OF_POSITIVE = "positive_class"
PROBABILITY_MEANINGS = (PROBABILITY_OF_PREDICTED, PROBABILITY_OF_POSITIVE)


def parse_list(text: str) -> list[Any]:
    """A list-valued response key from a CSV field: JSON (``["a", "b"]``, the local handlers) or a
    Python literal (``['1', '0']``, Autopilot's containers). Anything else is refused: splitting a
    bare ``[a, b]`` on commas would cut a label that holds one."""
    text = text.strip()
    for parse in (json.loads, ast.literal_eval):
        try:
            value = parse(text)
        except (ValueError, SyntaxError):
            continue
        if isinstance(value, (list, tuple)):
            return list(value)
    raise ValueError(f"{text[:80]!r} is not a JSON or Python list")


def output_files(output_uri: str) -> list[Any]:
    """The ``*.out`` files under ``output_uri`` (nested ones too), in name order."""
    from mlops.core.storage import to_path

    root = to_path(output_uri)
    return sorted((p for p in root.rglob("*") if p.name.endswith(".out") and p.is_file()), key=str)


def _probability(text: Any, where: str) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: {text!r} is not a probability") from None
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{where}: {value} is not a probability in [0, 1]")
    return value


def _checked_row(row: list[Any], keys: list[str], where: str) -> list[Any]:
    """``row`` (id, then ``keys``) with list keys parsed and every value checked: probabilities in
    [0, 1], as many ``probabilities`` as ``labels``, ``predicted_label`` one of the ``labels``."""
    values = dict(zip(keys, row[1:]))
    for key in LIST_KEYS:
        if key in values:
            try:
                values[key] = parse_list(values[key])
            except ValueError as err:
                raise ValueError(f"{where}: {key}: {err}") from None
    if "probability" in values:
        values["probability"] = _probability(values["probability"], f"{where}: probability")
    if "probabilities" in values:
        values["probabilities"] = [_probability(p, f"{where}: probabilities") for p in values["probabilities"]]
    if "labels" in values and "probabilities" in values and len(values["labels"]) != len(values["probabilities"]):
        raise ValueError(f"{where}: {len(values['labels'])} labels but {len(values['probabilities'])} probabilities")
    if "labels" in values and "predicted_label" in values and str(values["predicted_label"]) not in map(
            str, values["labels"]):
        raise ValueError(f"{where}: predicted_label {values['predicted_label']!r} is not one of the labels "
                         f"{values['labels']}")
    return [row[0], *(values[key] for key in keys)]


def iter_output_rows(output_uri: str, keys: list[str]) -> Iterator[list[Any]]:
    """``[id, value per key]`` for every line of the ``.out`` files, streamed; list keys parsed and
    every line checked (:func:`_checked_row`), a bad one named by file and line."""
    width = 1 + len(keys)
    for path in output_files(output_uri):
        with path.open("r", newline="") as handle:
            for number, row in enumerate(csv.reader(handle), 1):
                if not row:
                    continue
                if len(row) != width:
                    raise ValueError(f"{path} line {number} has {len(row)} fields; expected the id and "
                                     f"{', '.join(keys)}")
                yield _checked_row(row, keys, f"{path} line {number}")


def _arrow_schema(id_column: str, keys: list[str]):
    import pyarrow as pa

    types = {"predicted_label": pa.string(), "probability": pa.float64(), "labels": pa.list_(pa.string()),
             "probabilities": pa.list_(pa.float64())}
    return pa.schema([(id_column, pa.string()), *((k, types[k]) for k in keys)])


def _batch_table(rows: list[list[Any]], schema):
    import pyarrow as pa

    columns = list(zip(*rows)) if rows else [[] for _ in schema]
    arrays = []
    for field, values in zip(schema, columns):
        if pa.types.is_list(field.type):
            values = [[str(v) if pa.types.is_string(field.type.value_type) else float(v) for v in value]
                      for value in values]
        elif pa.types.is_floating(field.type):
            values = [float(v) for v in values]
        else:
            values = [str(v) for v in values]
        arrays.append(pa.array(values, type=field.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def write_predictions_parquet(output_uri: str, id_column: str, keys: list[str], dest_uri: str,
                              batch_rows: int = 100_000) -> dict[str, Any]:
    """Stream the transform's ``.out`` files into one Parquet file of ``id_column`` + ``keys``.

    Memory stays at one batch of ``batch_rows`` rows whatever the output size. Returns
    ``{"predictions_uri", "rows"}``.
    """
    import pyarrow.parquet as pq

    from mlops.core.storage import to_path

    unknown = [k for k in keys if k not in ("predicted_label", "probability", *LIST_KEYS)]
    if unknown:
        raise ValueError(f"unknown response keys {unknown}")
    schema = _arrow_schema(id_column, keys)
    dest = to_path(dest_uri)
    dest.parent.mkdir(parents=True, exist_ok=True)
    rows = 0
    with dest.open("wb") as handle, pq.ParquetWriter(handle, schema) as writer:
        batch: list[list[Any]] = []
        for row in iter_output_rows(output_uri, keys):
            batch.append(row)
            if len(batch) == batch_rows:
                writer.write_table(_batch_table(batch, schema))
                rows += len(batch)
                batch = []
        if batch or rows == 0:
            writer.write_table(_batch_table(batch, schema))
            rows += len(batch)
    return {"predictions_uri": str(dest_uri), "rows": rows}


# ---------------------------------------------------------------- evaluation
def positive_scores(predictions, positive_label: str, probability_of: str | None = None):
    """Probability of ``positive_label`` per row.

    From ``labels`` + ``probabilities`` when the predictions have them (every row must list the
    same labels). Otherwise from ``probability``, whose meaning depends on the model and must be
    given as ``probability_of``: ``"predicted_label"`` (Autopilot ENSEMBLING; needs
    ``predicted_label``) or ``"positive_class"`` (Autopilot HYPERPARAMETER_TUNING binary, the local
    handlers' binary models: the second of ``labels``; needs ``labels``). A binary problem only:
    for more classes ``probability`` says nothing of the others. When both are there,
    ``probability`` must agree with ``probabilities`` under the stated meaning.
    """
    import numpy as np

    positive = str(positive_label)
    if probability_of is not None and probability_of not in PROBABILITY_MEANINGS:
        raise ValueError(f"probability_of={probability_of!r} is not one of {', '.join(PROBABILITY_MEANINGS)}")
    labels = None
    if "labels" in predictions and len(predictions):
        listed = {tuple(str(v) for v in row) for row in predictions["labels"]}
        if len(listed) != 1:
            raise ValueError(f"the rows list different labels: {sorted(listed)[:3]}")
        labels = list(listed.pop())
        if positive not in labels:
            raise ValueError(f"positive label {positive!r} is not among the model's labels {labels}")
    if labels is not None and "probabilities" in predictions:
        table = np.array([list(map(float, p)) for p in predictions["probabilities"]], dtype=float)
        if "probability" in predictions and probability_of is not None:
            at = table.argmax(axis=1) if probability_of == PROBABILITY_OF_PREDICTED else np.full(len(table), 1)
            expected = table[np.arange(len(table)), at]
            if not np.allclose(predictions["probability"].to_numpy(dtype=float), expected, atol=1e-6):
                raise ValueError(f"probability is not the {probability_of.replace('_', ' ')}'s probability that "
                                 "probabilities give: the model's meaning of probability is not the one stated")
        return table[:, labels.index(positive)]
    if "probability" not in predictions:
        raise ValueError("evaluation needs the probability response key, or labels and probabilities")
    score = predictions["probability"].to_numpy(dtype=float)
    if probability_of is None:
        raise ValueError("probability alone is ambiguous: Autopilot gives the predicted label's (ENSEMBLING) or "
                         "the positive class's (HYPERPARAMETER_TUNING, binary); evaluate with the labels and "
                         "probabilities response keys, or say which (probability_of)")
    if labels is not None and len(labels) != 2:
        raise ValueError("probability is the winning class's for a multiclass model; evaluate with the labels and "
                         "probabilities response keys")
    if probability_of == PROBABILITY_OF_PREDICTED:
        if "predicted_label" not in predictions:
            raise ValueError("probability is the predicted label's: evaluation needs the predicted_label key too")
        predicted = predictions["predicted_label"].astype(str).to_numpy()
        if labels is None and len(set(predicted)) > 2:
            raise ValueError("probability is the winning class's for a multiclass model; evaluate with the labels "
                             "and probabilities response keys")
        return np.where(predicted == positive, score, 1.0 - score)
    if labels is None:
        raise ValueError("probability is the positive class's (the second of labels): evaluation needs the labels "
                         "key to know which class that is")
    return score if labels[1] == positive else 1.0 - score


def choose_threshold(truth, score, min_precision: float) -> tuple[float, bool]:
    """The threshold with the best recall among those reaching ``min_precision`` (the highest such
    threshold among equal recalls); ``(0.5, False)`` when no threshold reaches it."""
    import numpy as np
    from sklearn import metrics as skm

    precision, recall, thresholds = skm.precision_recall_curve(truth, score)
    ok = np.where(precision[:-1] >= min_precision)[0]
    if not len(ok):
        return 0.5, False
    best_recall = recall[:-1][ok].max()
    best = ok[recall[:-1][ok] == best_recall].max()
    return float(thresholds[best]), True


def evaluate_predictions(predictions, labels, id_column: str, target: str, positive_label: str,
                         min_precision: float, with_curves: bool = False,
                         probability_of: str | None = None) -> dict[str, Any]:
    """ROC AUC, PR AUC, the threshold with the best recall at ``min_precision`` and the
    confusion matrix (rows: actual negative/positive, columns: predicted) at that threshold.

    ``predictions`` and ``labels`` are joined one-to-one on ``id_column`` (as text); the scores
    come from :func:`positive_scores` (``probability_of``: what ``probability`` means). With
    ``with_curves`` the result also holds ``"curves"`` (ROC, PR and precision/recall by
    threshold) for :func:`write_evaluation_report`.
    """
    import numpy as np
    from sklearn import metrics as skm

    left = predictions.assign(**{id_column: predictions[id_column].astype(str)})
    right = labels[[id_column, target]].assign(**{id_column: labels[id_column].astype(str)})
    joined = left.merge(right, on=id_column, how="inner", validate="one_to_one")
    if not len(joined):
        raise ValueError(f"no prediction shares an {id_column} with the labels")
    truth = (joined[target].astype(str) == str(positive_label)).to_numpy()
    if truth.all() or not truth.any():
        raise ValueError(f"the labelled rows hold only one class of {target}: ROC and PR are undefined")
    score = positive_scores(joined, positive_label, probability_of)
    threshold, met = choose_threshold(truth, score, min_precision)
    chosen = score >= threshold
    result = {
        "rows_evaluated": int(len(joined)),
        "rows_predicted": int(len(predictions)),
        "positive_label": str(positive_label),
        "positive_rate": float(truth.mean()),
        "roc_auc": float(skm.roc_auc_score(truth, score)),
        "pr_auc": float(skm.average_precision_score(truth, score)),
        "threshold": threshold,
        "min_precision": float(min_precision),
        "min_precision_met": met,
        "precision_at_threshold": float(skm.precision_score(truth, chosen, zero_division=0)),
        "recall_at_threshold": float(skm.recall_score(truth, chosen, zero_division=0)),
        "confusion_matrix": skm.confusion_matrix(truth, chosen, labels=[False, True]).tolist(),
    }
    if with_curves:
        fpr, tpr, _ = skm.roc_curve(truth, score)
        precision, recall, thresholds = skm.precision_recall_curve(truth, score)
        result["curves"] = {
            "roc": {"fpr": fpr.tolist(), "tpr": tpr.tolist()},
            "pr": {"recall": recall.tolist(), "precision": precision.tolist()},
            "by_threshold": {"threshold": thresholds.tolist(), "precision": precision[:-1].tolist(),
                             "recall": recall[:-1].tolist()},
            "operating_point": {
                "fpr": float(np.mean(chosen[~truth])), "tpr": float(np.mean(chosen[truth])),
            },
        }
    return result


# ---------------------------------------------------------------- report
def _png(figure) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode()


def evaluation_plots(evaluation: dict[str, Any]) -> list[tuple[str, str]]:
    """``(title, base64 PNG)`` for ROC, PR, the confusion matrix and precision/recall by threshold.

    Uses matplotlib's object API on the Agg canvas: no pyplot global state, safe in workers.
    """
    from matplotlib.figure import Figure

    curves = evaluation["curves"]
    threshold, floor = evaluation["threshold"], evaluation["min_precision"]
    point = curves["operating_point"]
    plots = []

    figure = Figure(figsize=(4.6, 4))
    ax = figure.subplots()
    ax.plot(curves["roc"]["fpr"], curves["roc"]["tpr"], label=f"ROC AUC {evaluation['roc_auc']:.4f}")
    ax.plot([0, 1], [0, 1], ":", color="grey")
    ax.plot([point["fpr"]], [point["tpr"]], "o", color="crimson", label=f"threshold {threshold:.3f}")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC")
    ax.legend(loc="lower right")
    plots.append(("ROC curve", _png(figure)))

    figure = Figure(figsize=(4.6, 4))
    ax = figure.subplots()
    ax.plot(curves["pr"]["recall"], curves["pr"]["precision"], label=f"PR AUC {evaluation['pr_auc']:.4f}")
    ax.axhline(floor, linestyle="--", color="grey", label=f"min precision {floor:.2f}")
    ax.plot([evaluation["recall_at_threshold"]], [evaluation["precision_at_threshold"]], "o", color="crimson",
            label=f"threshold {threshold:.3f}")
    ax.set(xlabel="recall", ylabel="precision", title="Precision-recall", ylim=(0, 1.02))
    ax.legend(loc="lower left")
    plots.append(("Precision-recall curve", _png(figure)))

    figure = Figure(figsize=(4, 3.6))
    ax = figure.subplots()
    matrix = evaluation["confusion_matrix"]
    ax.imshow(matrix, cmap="Blues")
    largest = max(max(row) for row in matrix) or 1
    for i, row in enumerate(matrix):
        for j, value in enumerate(row):
            ax.text(j, i, str(value), ha="center", va="center", color="white" if value > largest / 2 else "black")
    ax.set(xticks=[0, 1], yticks=[0, 1], xticklabels=["negative", "positive"],
           yticklabels=["negative", "positive"], xlabel="predicted", ylabel="actual",
           title=f"Confusion matrix at {threshold:.3f}")
    plots.append(("Confusion matrix", _png(figure)))

    figure = Figure(figsize=(5.6, 3.6))
    ax = figure.subplots()
    by = curves["by_threshold"]
    ax.plot(by["threshold"], by["precision"], label="precision")
    ax.plot(by["threshold"], by["recall"], label="recall")
    ax.axhline(floor, linestyle="--", color="grey", label=f"min precision {floor:.2f}")
    ax.axvline(threshold, color="crimson", label=f"chosen {threshold:.3f}")
    ax.set(xlabel="threshold", ylabel="value", title="Precision and recall by threshold", ylim=(0, 1.02))
    ax.legend(loc="best")
    plots.append(("Threshold choice", _png(figure)))
    return plots


def evaluation_report_html(title: str, evaluation: dict[str, Any], summary: dict[str, Any] | None = None) -> str:
    """A self-contained HTML report: the run summary, the metrics and the four plots."""
    from mlops.ml.report_html import render_report

    return render_report(
        "batch_evaluation.html.j2", title=title,
        about=[(k, v) for k, v in (summary or {}).items() if k != "evaluation"],
        metrics=[(k, v) for k, v in evaluation.items() if k != "curves"],
        min_precision_met=evaluation["min_precision_met"],
        min_precision=None if evaluation["min_precision_met"] else evaluation["min_precision"],
        plots=evaluation_plots(evaluation),
    )


def write_evaluation_report(evaluation: dict[str, Any], report_uri: str, title: str,
                            summary: dict[str, Any] | None = None) -> str:
    """Write :func:`evaluation_report_html` to ``report_uri``; ``evaluation`` needs its curves."""
    from mlops.core.storage import to_path

    if "curves" not in evaluation:
        raise ValueError("the report needs evaluate_predictions(..., with_curves=True)")
    path = to_path(report_uri)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(evaluation_report_html(title, evaluation, summary))
    return report_uri


# ---------------------------------------------------------------- Keyspaces
INSERT_PREDICTION = (
    'INSERT INTO "{keyspace}"."{table}" (run_id, record_id, predicted_label, probability, model_name, '
    "predicted_at) VALUES (?, ?, ?, ?, ?, ?)"
)


def write_predictions_to_keyspaces(session, predictions_uri: str, id_column: str, run_id: str,
                                   model_name: str, predicted_at, keyspace: str = "mlops",
                                   table: str = "predictions", concurrency: int = 64,
                                   batch_rows: int = 50_000) -> int:
    """Upsert every prediction into the Keyspaces predictions table; return the row count.

    One prepared ``INSERT`` per row (Keyspaces has no bulk load; an upsert keyed on
    ``(run_id, record_id)`` makes a re-run overwrite, never duplicate), at most ``concurrency``
    requests in flight, the Parquet file read ``batch_rows`` at a time. ``session`` is a
    cassandra-driver session (``KeyspacesHook.get_session()``); the first failed write raises.
    """
    import pyarrow.parquet as pq

    from mlops.core.storage import to_path

    statement = session.prepare(INSERT_PREDICTION.format(keyspace=keyspace, table=table))
    pending: deque = deque()
    written = 0
    with to_path(predictions_uri).open("rb") as handle:
        parquet = pq.ParquetFile(handle)
        names = set(parquet.schema_arrow.names)
        columns = [c for c in (id_column, "predicted_label", "probability") if c in names]
        for batch in parquet.iter_batches(batch_size=batch_rows, columns=columns):
            data = batch.to_pydict()
            ids = data[id_column]
            labels = data.get("predicted_label") or [None] * len(ids)
            probabilities = data.get("probability") or [None] * len(ids)
            for record_id, label, probability in zip(ids, labels, probabilities):
                pending.append(session.execute_async(statement, (
                    run_id, str(record_id), None if label is None else str(label),
                    None if probability is None else float(probability), model_name, predicted_at,
                )))
                if len(pending) >= concurrency:
                    pending.popleft().result()
                    written += 1
    while pending:
        pending.popleft().result()
        written += 1
    return written
