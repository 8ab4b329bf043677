"""``include/training/train.py`` run by the SageMaker scikit-learn container's training toolkit.

Each job is the request the AWS backend builds, laid out as SageMaker lays it out and run by
sagemaker-training with the container's ``sagemaker_sklearn_container.training`` (see
``conftest.py``): the refit writes the model the serving contract tests serve, and a tuning
trial prints the metric lines the tuning job's ``MetricDefinitions`` capture.
"""

from __future__ import annotations

import json
import re

from testkit.training_job import REFIT_HYPERPARAMETERS, parquet_bytes, run_training_job


def test_the_refit_runs_under_the_toolkit_and_writes_the_model_where_sagemaker_collects_it(refit_job, churn_frame):
    assert refit_job.returncode == 0, refit_job.output[-3000:]
    meta = json.loads((refit_job.model_dir / "model.json").read_text())

    assert (refit_job.model_dir / "model.joblib").is_file()
    assert (refit_job.opt_ml / "output" / "success").exists()  # the toolkit's verdict
    assert meta["hyperparameters"] == REFIT_HYPERPARAMETERS
    assert meta["feature_columns"] == json.loads(refit_job.request["HyperParameters"]["feature_columns"])
    assert meta["classes"] == ["False.", "True."]
    assert meta["framework_version"] == "1.9.0"  # fitted by the container's scikit-learn
    assert refit_job.metrics()["n_rows"] == len(churn_frame)


def test_a_tuning_trial_scores_every_fold_and_prints_what_the_metric_definitions_capture(
        container, aws_requests, churn_frame, tmp_path):
    definition = aws_requests["tuning"]["TrainingJobDefinition"]
    # what SageMaker writes for one trial: the static hyperparameters, the tuned ones as text,
    # and the objective's name
    hyperparameters = {**definition["StaticHyperParameters"], "learning_rate": "0.1",
                       "_tuning_objective_metric": "cv_mean:roc_auc"}
    channels = {"train": {"train.parquet": parquet_bytes(churn_frame)},
                "folds": {"folds.json": json.dumps(aws_requests["manifest"]).encode()}}

    code, output = run_training_job(container, tmp_path / "opt" / "ml", hyperparameters, channels,
                                    aws_requests["source"])

    assert code == 0, output[-3000:]
    metrics = json.loads((tmp_path / "opt" / "ml" / "output" / "data" / "metrics.json").read_text())
    captured = {d["Name"]: [float(v) for v in re.findall(d["Regex"], output)]
                for d in definition["AlgorithmSpecification"]["MetricDefinitions"]}
    assert captured["cv_mean:roc_auc"][-1] == round(metrics["cv_mean"], 6)  # SageMaker reports the last value
    assert len(captured["cv_mean:roc_auc"]) == metrics["k"] == 3  # one running mean per fold
    assert [captured[f"fold_{fold}:roc_auc"] for fold in range(3)] == [[round(s, 6)] for s in metrics["fold_scores"]]
    assert not (tmp_path / "opt" / "ml" / "model" / "model.joblib").exists()  # a trial does not refit


def test_a_bad_hyperparameter_fails_the_job_with_the_entry_points_message_as_its_failure_reason(container, aws_requests, churn_frame,
                                                                          tmp_path):
    hyperparameters = {**aws_requests["refit"]["HyperParameters"], "max_depthh": "3"}

    code, _ = run_training_job(container, tmp_path / "opt" / "ml", hyperparameters,
                               {"train": {"train.parquet": parquet_bytes(churn_frame)}}, aws_requests["source"])

    failure = (tmp_path / "opt" / "ml" / "output" / "failure").read_text()  # the job's FailureReason
    assert code != 0
    assert failure.startswith("ValueError: gradient_boosting (HistGradientBoostingClassifier) has no "
                              "hyperparameter(s) ['max_depthh']; valid: ")
