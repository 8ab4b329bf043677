"""After the transform: predictions as Parquet joined to their ids, evaluation, report, Keyspaces."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from mlops.ml.batch_predictions import (
    choose_threshold,
    evaluate_predictions,
    iter_output_rows,
    parse_list,
    write_evaluation_report,
    write_predictions_parquet,
    write_predictions_to_keyspaces,
)

KEYS = ["predicted_label", "probability", "labels", "probabilities"]


def scored(n: int = 400, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Predictions (all four response keys) and labels with ids in another order."""
    rng = np.random.default_rng(seed)
    truth = rng.random(n) < 0.3
    probability = np.clip(np.where(truth, 0.65, 0.35) + rng.normal(0, 0.2, n), 0.001, 0.999)
    ids = [f"{i:03d}-{i % 7}" for i in range(n)]
    predictions = pd.DataFrame({
        "Phone": ids,
        "predicted_label": np.where(probability >= 0.5, "True.", "False."),
        "probability": probability,
        "labels": [["False.", "True."]] * n,
        "probabilities": [[1 - p, p] for p in probability],
    })
    labels = pd.DataFrame({"Phone": ids, "Churn?": np.where(truth, "True.", "False.")}).sample(frac=1, random_state=1)
    return predictions, labels


def write_out(path, predictions: pd.DataFrame) -> None:
    """A transform .out file as the local handlers write it (list keys as JSON arrays)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    for row in predictions.itertuples(index=False):
        lines.append(f'{row.Phone},{row.predicted_label},{row.probability!r},'
                     f'"{json.dumps(row.labels).replace(chr(34), chr(34) * 2)}",'
                     f'"{json.dumps(row.probabilities).replace(chr(34), chr(34) * 2)}"\n')
    path.write_text("".join(lines))


# ---------------------------------------------------------------- transform output -> Parquet
def test_predictions_parquet_has_one_row_per_output_line_joined_to_its_id(tmp_path):
    predictions, _ = scored(250)
    write_out(tmp_path / "out" / "part-0.csv.out", predictions.iloc[:100])
    write_out(tmp_path / "out" / "part-1.csv.out", predictions.iloc[100:])

    result = write_predictions_parquet((tmp_path / "out").as_uri(), "Phone", KEYS,
                                       (tmp_path / "predictions.parquet").as_uri(), batch_rows=64)

    table = pq.read_table(tmp_path / "predictions.parquet")
    assert result["rows"] == 250 and table.num_rows == 250
    assert table.column_names == ["Phone", *KEYS]
    frame = table.to_pandas()
    assert frame["Phone"].tolist() == predictions["Phone"].tolist()
    np.testing.assert_allclose(frame["probability"], predictions["probability"])
    assert frame["labels"].iloc[0].tolist() == ["False.", "True."]
    np.testing.assert_allclose(np.stack(frame["probabilities"]), np.stack(predictions["probabilities"]))


def test_an_output_line_with_missing_fields_is_refused_naming_the_file(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "records.csv.out").write_text("1,True.,0.9\n2,False.\n")

    with pytest.raises(ValueError, match=r"records\.csv\.out line 2 has 2 fields"):
        list(iter_output_rows((tmp_path / "out").as_uri(), ["predicted_label", "probability"]))


@pytest.mark.parametrize("text", ['["False.", "True."]', "['False.', 'True.']"])
def test_list_keys_parse_from_json_or_python_lists(text):
    assert parse_list(text) == ["False.", "True."]


@pytest.mark.parametrize("text", ["[False., True.]", "False.;True.", '["a, b", "c"'])
def test_a_list_key_that_is_neither_json_nor_python_is_refused_rather_than_split_on_commas(text):
    with pytest.raises(ValueError, match="is not a JSON or Python list"):
        parse_list(text)


# Autopilot's documented answer for keys predicted_label, probability, probabilities, labels
# (SageMaker, "Configure inference output in generated containers"), after the record id.
AUTOPILOT_KEYS = ["predicted_label", "probability", "probabilities", "labels"]
AUTOPILOT_LINE = 'c1,1,0.9,"[0.1, 0.9]","[\'0\', \'1\']"\n'


def test_autopilots_documented_csv_line_and_the_local_handlers_line_parse_to_the_same_shapes(tmp_path):
    from mlops.core.entrypoints import inference_module

    inference = inference_module()
    prediction = {"predicted_label": np.array(["1"], dtype=object), "probability": np.array([0.9]),
                  "labels": ["0", "1"], "probabilities": np.array([[0.1, 0.9]])}
    twin_body, _ = inference.output_fn(prediction, "text/csv", AUTOPILOT_KEYS)
    (tmp_path / "aws").mkdir()
    (tmp_path / "aws" / "records.csv.out").write_text(AUTOPILOT_LINE)
    (tmp_path / "local").mkdir()
    (tmp_path / "local" / "records.csv.out").write_text(f"c1,{twin_body}")

    aws = list(iter_output_rows((tmp_path / "aws").as_uri(), AUTOPILOT_KEYS))
    local = list(iter_output_rows((tmp_path / "local").as_uri(), AUTOPILOT_KEYS))

    assert twin_body != AUTOPILOT_LINE.partition(",")[2]  # JSON lists here, Python literals there
    assert aws == local == [["c1", "1", 0.9, [0.1, 0.9], ["0", "1"]]]


@pytest.mark.parametrize("line, message", [
    ('c1,1,0.9,"[0.1, 0.9]","[\'0\', \'1\', \'2\']"', "3 labels but 2 probabilities"),
    ('c1,1,1.5,"[0.1, 0.9]","[\'0\', \'1\']"', "probability: 1.5 is not a probability in"),
    ('c1,1,0.9,"[0.1, nan]","[\'0\', \'1\']"', r"probabilities: .* is not a JSON or Python list"),
    ('c1,2,0.9,"[0.1, 0.9]","[\'0\', \'1\']"', r"predicted_label '2' is not one of the labels"),
    ('c1,1,high,"[0.1, 0.9]","[\'0\', \'1\']"', "'high' is not a probability"),
])
def test_an_output_line_whose_values_do_not_fit_their_keys_is_refused_naming_the_line(tmp_path, line, message):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "records.csv.out").write_text(AUTOPILOT_LINE + line + "\n")

    with pytest.raises(ValueError, match=rf"records\.csv\.out line 2: .*{message}"):
        list(iter_output_rows((tmp_path / "out").as_uri(), AUTOPILOT_KEYS))


# ---------------------------------------------------------------- evaluation
def test_evaluation_joins_on_ids_and_reports_auc_and_the_confusion_matrix_at_the_threshold():
    predictions, labels = scored()

    result = evaluate_predictions(predictions, labels, "Phone", "Churn?", "True.", min_precision=0.6)

    assert result["rows_evaluated"] == 400
    truth = labels.set_index("Phone").loc[predictions["Phone"], "Churn?"].eq("True.").to_numpy()
    # the reference: scikit-learn's scores of the probabilities against the labels of the same ids
    assert result["roc_auc"] == pytest.approx(roc_auc_score(truth, predictions["probability"]), abs=1e-12)
    assert result["pr_auc"] == pytest.approx(average_precision_score(truth, predictions["probability"]), abs=1e-12)
    assert result["roc_auc"] > 0.8  # the ids were joined: misaligned labels would score about one half
    (tn, fp), (fn, tp) = result["confusion_matrix"]
    assert tn + fp + fn + tp == 400
    chosen = predictions["probability"].to_numpy() >= result["threshold"]
    assert tp == int((chosen & truth).sum()) and fp == int((chosen & ~truth).sum())
    assert result["precision_at_threshold"] == pytest.approx(tp / (tp + fp))


def test_the_threshold_has_the_best_recall_among_those_reaching_the_minimum_precision():
    truth = np.array([1, 1, 0, 1, 0, 0, 1, 0, 0, 0], dtype=bool)
    score = np.array([0.95, 0.9, 0.85, 0.8, 0.7, 0.6, 0.55, 0.4, 0.3, 0.2])

    threshold, met = choose_threshold(truth, score, min_precision=0.75)

    # at 0.8: precision 3/4, recall 3/4; at 0.55 precision 4/7 < 0.75
    assert (threshold, met) == (0.8, True)


def test_an_unreachable_minimum_precision_falls_back_to_half_and_says_so():
    predictions, labels = scored(seed=3)

    result = evaluate_predictions(predictions, labels, "Phone", "Churn?", "True.", min_precision=1.01)

    assert (result["threshold"], result["min_precision_met"]) == (0.5, False)


def ensemble(predictions: pd.DataFrame) -> pd.DataFrame:
    """The same predictions as an Autopilot ensemble answers: probability of the predicted label."""
    return predictions.assign(probability=[max(p) for p in predictions["probabilities"]])


def test_probability_is_read_with_the_meaning_the_model_states():
    predictions, labels = scored(seed=4)
    full = evaluate_predictions(predictions, labels, "Phone", "Churn?", "True.", 0.5)

    positive_class = evaluate_predictions(predictions[["Phone", "probability", "labels"]], labels, "Phone",
                                          "Churn?", "True.", 0.5, probability_of="positive_class")
    negative_class = evaluate_predictions(predictions[["Phone", "probability", "labels"]], labels, "Phone",
                                          "Churn?", "False.", 0.5, probability_of="positive_class")
    ensembled = evaluate_predictions(ensemble(predictions)[["Phone", "predicted_label", "probability"]], labels,
                                     "Phone", "Churn?", "True.", 0.5, probability_of="predicted_label")

    assert positive_class["roc_auc"] == pytest.approx(full["roc_auc"])
    assert negative_class["roc_auc"] == pytest.approx(full["roc_auc"])  # AUC is symmetric in the class
    assert ensembled["roc_auc"] == pytest.approx(full["roc_auc"])
    assert ensembled["confusion_matrix"] == full["confusion_matrix"]


def test_reading_an_ensembles_probability_as_the_positive_class_would_rank_wrongly_and_is_refused():
    predictions, labels = scored(seed=5)

    with pytest.raises(ValueError, match="probability is not the positive class's probability that probabilities "
                                         "give"):
        evaluate_predictions(ensemble(predictions), labels, "Phone", "Churn?", "True.", 0.5,
                             probability_of="positive_class")
    with pytest.raises(ValueError, match="probability alone is ambiguous"):
        evaluate_predictions(ensemble(predictions)[["Phone", "predicted_label", "probability"]], labels, "Phone",
                             "Churn?", "True.", 0.5)
    with pytest.raises(ValueError, match="needs the labels key to know which class"):
        evaluate_predictions(predictions[["Phone", "probability"]], labels, "Phone", "Churn?", "True.", 0.5,
                             probability_of="positive_class")


def test_probability_of_a_multiclass_winner_is_not_read_as_a_class_score():
    predictions = pd.DataFrame({"Phone": ["1", "2"], "predicted_label": ["a", "c"], "probability": [0.5, 0.6],
                                "labels": [["a", "b", "c"]] * 2})
    labels = pd.DataFrame({"Phone": ["1", "2"], "Churn?": ["a", "b"]})

    with pytest.raises(ValueError, match="winning class's for a multiclass model"):
        evaluate_predictions(predictions, labels, "Phone", "Churn?", "a", 0.5, probability_of="predicted_label")


def test_evaluation_without_scores_names_the_response_keys_it_needs():
    predictions, labels = scored(50)

    with pytest.raises(ValueError, match="probability response key"):
        evaluate_predictions(predictions[["Phone", "predicted_label"]], labels, "Phone", "Churn?", "True.", 0.5)


def test_the_report_embeds_roc_pr_confusion_and_threshold_plots(tmp_path):
    predictions, labels = scored()
    evaluation = evaluate_predictions(predictions, labels, "Phone", "Churn?", "True.", 0.6, with_curves=True)

    uri = write_evaluation_report(evaluation, (tmp_path / "run" / "report.html").as_uri(), "Batch predictions",
                                  summary={"rows": 400, "model_name": "churn-model"})

    text = (tmp_path / "run" / "report.html").read_text()
    assert uri.endswith("report.html")
    assert re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,', text) == [
        "ROC curve", "Precision-recall curve", "Confusion matrix", "Threshold choice"]
    assert "churn-model" in text and f"{evaluation['roc_auc']:.4f}" in text


# ---------------------------------------------------------------- Keyspaces
class _Done:
    def __init__(self, error: Exception | None = None):
        self.error = error

    def result(self):
        if self.error:
            raise self.error


class RecordingSession:
    """The cassandra-driver calls the writer makes: prepare once, execute_async per row."""

    def __init__(self, fail_at: int | None = None):
        self.prepared: list[str] = []
        self.rows: list[tuple] = []
        self.fail_at = fail_at

    def prepare(self, query: str) -> str:
        self.prepared.append(query)
        return query

    def execute_async(self, statement, parameters):
        self.rows.append(parameters)
        return _Done(RuntimeError("write timeout") if len(self.rows) == self.fail_at else None)


def test_predictions_are_upserted_into_keyspaces_one_prepared_insert_per_row(tmp_path):
    predictions, _ = scored(130)
    write_out(tmp_path / "out" / "records.csv.out", predictions)
    uri = (tmp_path / "predictions.parquet").as_uri()
    write_predictions_parquet((tmp_path / "out").as_uri(), "Phone", KEYS, uri)
    session = RecordingSession()
    at = datetime(2026, 1, 2, tzinfo=UTC)

    written = write_predictions_to_keyspaces(session, uri, "Phone", "run-1", "churn-model", at, concurrency=8,
                                             batch_rows=50)

    assert written == 130
    assert session.prepared == ['INSERT INTO "mlops"."predictions" (run_id, record_id, predicted_label, '
                                'probability, model_name, predicted_at) VALUES (?, ?, ?, ?, ?, ?)']
    assert [r[1] for r in session.rows] == predictions["Phone"].tolist()
    assert session.rows[0] == ("run-1", predictions["Phone"][0], predictions["predicted_label"][0],
                               pytest.approx(predictions["probability"][0]), "churn-model", at)


def test_a_failed_keyspaces_write_fails_the_upload(tmp_path):
    predictions, _ = scored(40)
    write_out(tmp_path / "out" / "records.csv.out", predictions)
    uri = (tmp_path / "predictions.parquet").as_uri()
    write_predictions_parquet((tmp_path / "out").as_uri(), "Phone", KEYS, uri)

    with pytest.raises(RuntimeError, match="write timeout"):
        write_predictions_to_keyspaces(RecordingSession(fail_at=7), uri, "Phone", "run-1", "m", None,
                                       concurrency=4)
