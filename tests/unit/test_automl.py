"""The local Autopilot twin: FLAML candidates, job records, and models with inference response keys."""

from __future__ import annotations

import csv
import json
import time

import numpy as np
import pandas as pd
import pytest

from mlops.backends.local.automl import FlamlAutoML
from mlops.core.entrypoints import inference_module
from mlops.core.storage import sha256_of, unpack_model

ALL_KEYS = ["predicted_label", "probability", "labels", "probabilities"]


def customers(n: int, seed: int) -> pd.DataFrame:
    """Numeric columns and one text column, as in the churn data."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "tenure": rng.integers(1, 72, n),
        "charges": rng.normal(60, 20, n).round(2),
        "calls": rng.poisson(2, n),
        "plan": rng.choice(["basic", "plus", "premium"], n),
    })


def binary_frame(n: int = 600, seed: int = 0) -> pd.DataFrame:
    frame = customers(n, seed)
    rng = np.random.default_rng(seed + 1)
    score = frame["charges"] / 20 - frame["tenure"] / 25 + frame["calls"] / 2 + (frame["plan"] == "basic")
    frame["Churn?"] = np.where(score + rng.normal(0, 0.7, n) > 2, "True.", "False.")
    return frame


def multiclass_frame(n: int = 520, seed: int = 7) -> pd.DataFrame:
    frame = customers(n, seed)
    frame["tier"] = pd.cut(frame["charges"] + 10 * (frame["plan"] == "premium"), [-np.inf, 50, 70, np.inf],
                           labels=["bronze", "silver", "gold"]).astype(str)
    return frame


def run_job(root, name: str, frame: pd.DataFrame, **spec):
    frame.to_parquet(root / f"{name}.parquet")
    automl = FlamlAutoML(root / "state")
    spec = {"job_name": name, "train_uri": (root / f"{name}.parquet").as_uri(),
            "output_uri": (root / "out").as_uri(), **spec}
    status = automl.create_or_attach(**spec)
    return automl, spec, status


@pytest.fixture(scope="module")
def binary_job(tmp_path_factory):
    return run_job(tmp_path_factory.mktemp("automl"), "churn-autopilot", binary_frame(), target="Churn?",
                   problem_type="binary", objective="AUC", max_candidates=5, time_budget_s=3600,
                   local_time_budget_s=5)


@pytest.fixture(scope="module")
def multiclass_job(tmp_path_factory):
    return run_job(tmp_path_factory.mktemp("automl"), "tier-autopilot", multiclass_frame(), target="tier",
                   problem_type="multiclass", objective="F1macro", max_candidates=2, time_budget_s=3600,
                   local_time_budget_s=3)


def answer(automl: FlamlAutoML, model_name: str, rows: pd.DataFrame, tmp_path) -> list[list[str]]:
    """CSV response lines of the model, through the SageMaker serving handlers."""
    inference = inference_module()
    record = automl.describe_model(model_name)
    container = record["PrimaryContainer"]
    directory = unpack_model(container["ModelDataUrl"], tmp_path / "model", record["sha256"])
    model = inference.model_fn(str(directory))
    keys = inference.response_keys(model, container["Environment"])
    body = rows[model.feature_columns].to_csv(header=False, index=False)
    frame = inference.input_fn(body, "text/csv", model)
    text, _ = inference.output_fn(inference.predict_fn(frame, model), "text/csv", keys)
    return list(csv.reader(text.splitlines()))


# ---------------------------------------------------------------- candidates
def test_candidates_are_ranked_best_first_by_auc(binary_job):
    automl, spec, status = binary_job

    ranked = automl.candidates(spec["job_name"])

    assert status == "Completed"
    assert 1 <= len(ranked) <= spec["max_candidates"]
    values = [c.objective_value for c in ranked]
    assert values == sorted(values, reverse=True)
    assert all(c.objective_metric == "AUC" and 0.5 < c.objective_value <= 1 for c in ranked)
    assert [c.name.split("-")[2] for c in ranked] == [f"c{i}" for i in range(1, len(ranked) + 1)]


def test_candidate_artifacts_follow_the_contract_and_match_their_digest(binary_job, tmp_path):
    automl, spec, _ = binary_job

    for candidate in automl.candidates(spec["job_name"]):
        folder = f"{spec['output_uri']}/{spec['job_name']}/candidates/{candidate.name}"
        assert candidate.model_uri == f"{folder}/model.tar.gz"
        assert sha256_of(candidate.model_uri) == candidate.detail["sha256"]
        directory = unpack_model(candidate.model_uri, tmp_path / candidate.name, candidate.detail["sha256"])
        meta = json.loads((directory / "model.json").read_text())
        assert meta["feature_columns"] == ["tenure", "charges", "calls", "plan"]
        assert (meta["target"], meta["problem_type"], meta["framework"]) == ("Churn?", "binary", "flaml")
        assert meta["classes"] == ["False.", "True."]


def test_a_completed_job_is_attached_not_run_again(binary_job):
    automl, spec, _ = binary_job
    before = automl.describe_job(spec["job_name"])

    started = time.monotonic()
    status = automl.create_or_attach(**spec)

    assert status == "Completed"
    assert time.monotonic() - started < 2
    assert automl.describe_job(spec["job_name"]) == before


@pytest.mark.parametrize("change, named", [
    ({"target": "plan"}, "target"),
    ({"objective": "F1"}, "objective"),
])
def test_a_job_name_reused_for_another_question_is_refused(binary_job, change, named):
    automl, spec, _ = binary_job

    with pytest.raises(ValueError, match=f"different {named} "):
        automl.create_or_attach(**{**spec, **change})


def test_attaching_by_name_from_another_run_reuses_the_job_as_it_was_run(binary_job, tmp_path):
    automl, spec, _ = binary_job
    before = automl.describe_job(spec["job_name"])

    status = automl.create_or_attach(**{**spec, "time_budget_s": 7200, "max_candidates": 2,
                                        "train_uri": (tmp_path / "other.parquet").as_uri(),
                                        "output_uri": (tmp_path / "other").as_uri()})

    assert status == "Completed"
    assert automl.describe_job(spec["job_name"]) == before


def test_submit_returns_a_done_handle_with_the_ranked_candidates(binary_job):
    automl, spec, _ = binary_job

    handle = automl.submit(**spec)

    assert (handle.kind, handle.name, handle.done, handle.trigger) == ("automl", spec["job_name"], True, None)
    assert automl.collect(handle) == {
        "job_name": spec["job_name"], "status": "Completed",
        "candidates": [c.to_dict() for c in automl.candidates(spec["job_name"])]}
    assert automl.wait(handle) is handle


def test_a_failed_job_raises_its_reason_and_is_not_run_again(binary_job):
    automl, spec, _ = binary_job
    failing = {**spec, "job_name": "churn-no-target", "target": "Churned"}
    with pytest.raises(RuntimeError, match="AutoML job churn-no-target Failed: .*Churned"):
        automl.create_or_attach(**failing)
    recorded = automl.describe_job("churn-no-target")

    with pytest.raises(RuntimeError, match="AutoML job churn-no-target Failed: .*Churned"):
        automl.create_or_attach(**failing)
    assert recorded["status"] == "Failed"
    assert automl.describe_job("churn-no-target") == recorded


def test_a_stopped_job_raises_its_reason(binary_job):
    automl, spec, _ = binary_job
    record = {**automl.describe_job(spec["job_name"]), "job_name": "churn-stopped", "status": "Stopped",
              "failure_reason": "stopped by an operator"}
    (automl.state_dir / "jobs" / "churn-stopped.json").write_text(json.dumps(record))

    with pytest.raises(RuntimeError, match="AutoML job churn-stopped Stopped: stopped by an operator"):
        automl.create_or_attach(**{**spec, "job_name": "churn-stopped"})


def test_a_retry_after_a_failed_job_runs_the_next_name_and_its_retry_attaches(binary_job, tmp_path):
    """As on SageMaker, a Failed job is final: the next submit (the task's retry) runs
    ``<name>-r2``, whose own retry attaches to it; the failed record is left as it was."""
    automl, spec, _ = binary_job
    train = tmp_path / "late.parquet"
    request = {**spec, "job_name": "churn-late-data", "train_uri": train.as_uri(), "output_uri": tmp_path.as_uri()}
    with pytest.raises(RuntimeError, match="AutoML job churn-late-data Failed"):
        automl.submit(**request)  # the training data is not there yet
    failed = automl.describe_job("churn-late-data")
    pd.read_parquet(spec["train_uri"]).to_parquet(train)

    retry = automl.submit(**request)

    assert (retry.name, retry.result["job_name"], retry.result["status"]) == ("churn-late-data-r2",) * 2 + ("Completed",)
    assert retry.result["candidates"] and automl.describe_job("churn-late-data") == failed
    assert automl.submit(**request).result == retry.result  # attached, not run a third time


def test_an_unknown_objective_is_refused_listing_the_allowed_ones(tmp_path):
    automl = FlamlAutoML(tmp_path / "state")

    with pytest.raises(ValueError, match="'Recall'.*AUC, Accuracy, F1, F1macro.*MSE, RMSE"):
        automl.create_or_attach("churn-autopilot", (tmp_path / "train.parquet").as_uri(), "Churn?", "binary",
                                "Recall", 3, 3600, (tmp_path / "out").as_uri())
    assert not (tmp_path / "state" / "jobs").exists()


def test_a_regression_objective_is_refused_for_a_classifier(tmp_path):
    automl = FlamlAutoML(tmp_path / "state")

    with pytest.raises(ValueError, match="RMSE.*binary"):
        automl.create_or_attach("churn-autopilot", (tmp_path / "train.parquet").as_uri(), "Churn?", "binary",
                                "RMSE", 3, 3600, (tmp_path / "out").as_uri())


def test_candidates_of_an_unknown_job_is_a_key_error_naming_it(tmp_path):
    with pytest.raises(KeyError, match="no-such-job"):
        FlamlAutoML(tmp_path / "state").candidates("no-such-job")


# ---------------------------------------------------------------- models and response keys
def test_a_binary_model_answers_with_every_response_key(binary_job, tmp_path):
    automl, spec, _ = binary_job
    best = automl.candidates(spec["job_name"])[0]
    automl.create_model("churn-all-keys", best, ALL_KEYS)

    lines = answer(automl, "churn-all-keys", binary_frame(25, seed=11), tmp_path)

    assert automl.describe_model("churn-all-keys")["PrimaryContainer"]["Environment"] == {
        "SAGEMAKER_INFERENCE_OUTPUT": "predicted_label,probability,labels,probabilities"}
    assert len(lines) == 25
    for predicted_label, probability, labels, probabilities in lines:
        labels, probabilities = json.loads(labels), json.loads(probabilities)
        assert labels == ["False.", "True."]
        assert sum(probabilities) == pytest.approx(1)
        assert float(probability) == pytest.approx(probabilities[1])
        assert predicted_label == labels[int(np.argmax(probabilities))]


def test_a_multiclass_model_answers_with_every_response_key(multiclass_job, tmp_path):
    automl, spec, status = multiclass_job
    ranked = automl.candidates(spec["job_name"])
    automl.create_model("tier-all-keys", ranked[0], ALL_KEYS)

    lines = answer(automl, "tier-all-keys", multiclass_frame(30, seed=12), tmp_path)

    assert status == "Completed" and ranked[0].objective_metric == "F1macro"
    assert all(len(line) == 4 for line in lines) and len(lines) == 30
    for predicted_label, probability, labels, probabilities in lines:
        labels, probabilities = json.loads(labels), json.loads(probabilities)
        assert sorted(labels) == ["bronze", "gold", "silver"] and len(probabilities) == 3
        assert sum(probabilities) == pytest.approx(1)
        assert float(probability) == pytest.approx(max(probabilities))
        assert predicted_label == labels[int(np.argmax(probabilities))]


@pytest.mark.parametrize("job, positive", [("binary_job", "True."), ("multiclass_job", "gold")])
def test_the_twin_states_the_meaning_of_probability_its_models_serve(job, positive, request, tmp_path):
    from mlops.ml.batch_predictions import positive_scores

    automl, spec, _ = request.getfixturevalue(job)
    best = automl.candidates(spec["job_name"])[0]
    automl.create_model(f"{spec['job_name']}-meaning", best, ALL_KEYS)
    rows = binary_frame(40, seed=13) if job == "binary_job" else multiclass_frame(40, seed=13)
    lines = answer(automl, f"{spec['job_name']}-meaning", rows, tmp_path)
    served = pd.DataFrame([{"predicted_label": label, "probability": float(probability), "labels": json.loads(labels),
                            "probabilities": json.loads(probabilities)}
                           for label, probability, labels, probabilities in lines])
    stated = automl.probability_of(best)
    other = {"positive_class": "predicted_label", "predicted_label": "positive_class"}[stated]

    assert stated == ("positive_class" if job == "binary_job" else "predicted_label")
    scores = positive_scores(served, positive, stated)  # checks probability against probabilities
    assert scores == pytest.approx([p[served["labels"][0].index(positive)] for p in served["probabilities"]])
    with pytest.raises(ValueError, match="meaning of probability is not the one stated"):
        positive_scores(served, positive, other)


def test_creating_the_same_model_again_is_a_no_op(binary_job):
    automl, spec, _ = binary_job
    best = automl.candidates(spec["job_name"])[0]
    automl.create_model("churn-twice", best, ["predicted_label", "probability"])
    first = automl.describe_model("churn-twice")

    assert automl.create_model("churn-twice", best, ["predicted_label", "probability"]) == "churn-twice"
    assert automl.describe_model("churn-twice") == first


def test_a_model_name_reused_for_other_content_is_refused(binary_job):
    automl, spec, _ = binary_job
    best = automl.candidates(spec["job_name"])[0]
    automl.create_model("churn-reused", best, ["predicted_label"])

    with pytest.raises(ValueError, match="churn-reused"):
        automl.create_model("churn-reused", best, ["predicted_label", "probability"])


def test_an_unknown_response_key_is_refused(binary_job):
    automl, spec, _ = binary_job
    best = automl.candidates(spec["job_name"])[0]

    with pytest.raises(ValueError, match="score"):
        automl.create_model("churn-bad-key", best, ["predicted_label", "score"])
    with pytest.raises(KeyError):
        automl.describe_model("churn-bad-key")


def test_a_regression_model_only_answers_with_predicted_label(tmp_path):
    automl = FlamlAutoML(tmp_path / "state")

    with pytest.raises(ValueError, match="predicted_label"):
        automl.register_model("price-model", (tmp_path / "model.tar.gz").as_uri(), "0" * 64, "regression",
                              ["predicted_label", "probability"])


def test_regression_candidates_are_ranked_lowest_rmse_first(tmp_path):
    frame = customers(500, seed=5)
    frame["spend"] = frame["charges"] * 12 + frame["tenure"] * 3 + np.random.default_rng(5).normal(0, 5, 500)
    automl, spec, _ = run_job(tmp_path, "spend-autopilot", frame, target="spend", problem_type="regression",
                              objective="RMSE", max_candidates=3, time_budget_s=3600, local_time_budget_s=3)

    ranked = automl.candidates(spec["job_name"])

    values = [c.objective_value for c in ranked]
    assert values == sorted(values) and all(v > 0 for v in values)
    assert all(c.objective_metric == "RMSE" for c in ranked)


# ---------------------------------------------------------------- SageMaker's limits, as on AWS
@pytest.mark.parametrize("change, message", [
    ({"time_budget_s": 30}, r"autopilot.time_budget_s=30 is under 3600 s"),
    ({"max_candidates": 751}, r"MaxCandidates=751 must be between 1 and 750"),
    ({"job_name": "churn-autopilot-with-a-name-over-32"}, r"job_name='churn-autopilot-with-a-name-over-32' has 35 "
                                                          r"characters; the limit is 1 to 32"),
    ({"local_time_budget_s": 7200}, r"local_time_budget_s=7200 is not 1 to the job's time_budget_s \(3600\)"),
])
def test_the_twin_refuses_what_autopilot_would_refuse_before_any_work(tmp_path, change, message):
    from mlops.backends.limits import LimitError

    automl = FlamlAutoML(tmp_path / "state")
    spec = {"job_name": "churn-autopilot", "train_uri": (tmp_path / "train.parquet").as_uri(), "target": "Churn?",
            "problem_type": "binary", "objective": "AUC", "max_candidates": 3, "time_budget_s": 3600,
            "output_uri": (tmp_path / "out").as_uri(), **change}

    with pytest.raises((LimitError, ValueError), match=message):
        automl.create_or_attach(**spec)
    assert not (tmp_path / "state" / "jobs").exists()


def test_a_training_set_under_autopilots_500_rows_fails_the_job_naming_the_count(tmp_path):
    automl = FlamlAutoML(tmp_path / "state")
    binary_frame(499).to_parquet(tmp_path / "small.parquet")
    spec = {"job_name": "churn-small", "train_uri": (tmp_path / "small.parquet").as_uri(), "target": "Churn?",
            "problem_type": "binary", "objective": "AUC", "max_candidates": 3, "time_budget_s": 3600,
            "local_time_budget_s": 2, "output_uri": (tmp_path / "out").as_uri()}

    with pytest.raises(RuntimeError, match=r"AutoML job churn-small Failed: LimitError: training data .* has 499 "
                                           r"rows; SageMaker Autopilot needs at least 500"):
        automl.create_or_attach(**spec)
    assert automl.describe_job("churn-small")["status"] == "Failed"
