"""SageMaker tuning and refit (``mlops.backends.aws.training``): request shapes and retries."""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import io
import json
import re
import tarfile

import pytest
from aws.conftest import BUCKET, IMAGE, ROLE, RUN_URI

from mlops.backends.aws.training import (
    TUNING_NAME_MAX,
    JobFailed,
    SageMakerTrainer,
    SageMakerTuner,
    job_name_for,
    source_archive,
)
from mlops.backends.base import JobHandle
from mlops.core.entrypoints import training_module

JOB = "train-model-tune-manual-2026-11-21t06-00-00-00-00-5b1c2d3e"
REFIT = "train-model-refit-manual-2026-11-21t06-00-00-00-00-9a8b7c6d"
SPACE = {
    "learning_rate": {"type": "float", "low": 0.02, "high": 0.3, "log": True},
    "max_iter": {"type": "int", "low": 50, "high": 300},
    "max_leaf_nodes": {"type": "int", "low": 8, "high": 64, "log": True},
}
NOW = dt.datetime(2026, 11, 21, 6, 0, tzinfo=dt.UTC)


def tuner(settings, sagemaker, s3, **kwargs) -> SageMakerTuner:
    return SageMakerTuner(settings, sagemaker_client=sagemaker[0], s3_client=s3, image_uri=IMAGE,
                          waiter_delay=0, waiter_max_attempts=3, **kwargs)


def trainer(settings, sagemaker, s3, **kwargs) -> SageMakerTrainer:
    return SageMakerTrainer(settings, sagemaker_client=sagemaker[0], s3_client=s3, image_uri=IMAGE,
                            waiter_delay=0, waiter_max_attempts=3, **kwargs)


def not_found(stubber, method: str) -> None:
    if method == "describe_training_job":  # what SageMaker answers for a missing training job
        stubber.add_client_error(method, "ValidationException", "Requested resource not found.")
    else:
        stubber.add_client_error(method, "ResourceNotFound", "Amazon SageMaker can't find a tuning job")


def tuning_description(name: str, status: str, **extra) -> dict:
    return {
        "HyperParameterTuningJobName": name,
        "HyperParameterTuningJobArn": f"arn:aws:sagemaker:us-east-1:123456789012:hyper-parameter-tuning-job/{name}",
        "HyperParameterTuningJobConfig": {
            "Strategy": "Bayesian",
            "HyperParameterTuningJobObjective": {"Type": "Maximize", "MetricName": "cv_mean:roc_auc"},
            "ResourceLimits": {"MaxNumberOfTrainingJobs": 3, "MaxParallelTrainingJobs": 2},
            "TrainingJobEarlyStoppingType": "Auto",
            "RandomSeed": 42,
        },
        "TrainingJobDefinition": {
            "AlgorithmSpecification": {"TrainingImage": IMAGE, "TrainingInputMode": "File"},
            "RoleArn": ROLE,
            "OutputDataConfig": {"S3OutputPath": RUN_URI},
            "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 30},
            "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        },
        "HyperParameterTuningJobStatus": status,
        "CreationTime": NOW,
        "TrainingJobStatusCounters": {"Completed": 2, "InProgress": 0, "RetryableError": 0,
                                      "NonRetryableError": 0, "Stopped": 1},
        "ObjectiveStatusCounters": {"Succeeded": 2, "Pending": 0, "Failed": 1},
        **extra,
    }


def training_description(name: str, status: str, **extra) -> dict:
    return {
        "TrainingJobName": name,
        "TrainingJobArn": f"arn:aws:sagemaker:us-east-1:123456789012:training-job/{name}",
        "ModelArtifacts": {"S3ModelArtifacts": f"{RUN_URI}/{name}/output/model.tar.gz"},
        "TrainingJobStatus": status,
        "SecondaryStatus": status,
        "AlgorithmSpecification": {"TrainingImage": IMAGE, "TrainingInputMode": "File"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 30},
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        "CreationTime": NOW,
        **extra,
    }


def summary(name: str, status: str, value: float | None, **params) -> dict:
    result = {
        "TrainingJobName": name,
        "TrainingJobArn": f"arn:aws:sagemaker:us-east-1:123456789012:training-job/{name}",
        "CreationTime": NOW,
        "TrainingStartTime": NOW,
        "TrainingEndTime": NOW + dt.timedelta(seconds=95),
        "TrainingJobStatus": status,
        "TunedHyperParameters": {key: str(value) for key, value in params.items()},
    }
    if value is not None:
        result["FinalHyperParameterTuningJobObjectiveMetric"] = {"Type": "Maximize",
                                                                 "MetricName": "cv_mean:roc_auc", "Value": value}
    return result


def decoded(hyperparameters: dict) -> dict:
    train = training_module()
    return {name: train.decode_value(text) for name, text in hyperparameters.items()}


def sent(requests, operation: str) -> list[dict]:
    return [params for name, params in requests if name == operation]


# ---------------------------------------------------------------- names, image, source
def test_job_names_fit_sagemaker_limits_with_room_for_retry_suffixes():
    name = job_name_for("mlops", JOB, TUNING_NAME_MAX)
    assert name == job_name_for("mlops", JOB, TUNING_NAME_MAX), "stable for the same job"
    assert len(f"{name}-r9") <= TUNING_NAME_MAX
    assert re.fullmatch(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,31}", f"{name}-r9")
    assert re.fullmatch(r"mlops-train-model-t[a-z0-9-]*-[0-9a-f]{8}", name)  # a readable cut and a hash
    assert job_name_for("mlops", JOB.replace("5b1c", "5b1d"), TUNING_NAME_MAX) != name
    assert job_name_for("mlops", "tune-abc", 63) == "mlops-tune-abc"


def test_a_refit_name_too_long_is_cut_to_sagemakers_limit_with_a_hash(settings, sagemaker, s3, training_data):
    _, stubber = sagemaker
    stubber.add_response("describe_training_job", training_description("x", "InProgress"))

    handle = trainer(settings, sagemaker, s3).submit(f"{REFIT}-with-a-longer-step", training_data, BEST, RUN_URI)

    assert len(handle.name) <= 60  # 63 less the room for "-r9"
    assert re.fullmatch(r"mlops-train-model-refit-[a-z0-9-]+-[0-9a-f]{8}", handle.name)
    assert handle.name == job_name_for("mlops", f"{REFIT}-with-a-longer-step", 63) != job_name_for("mlops", REFIT, 63)


def test_source_archive_is_deterministic_and_holds_the_entry_point():
    first, second = source_archive(), source_archive()
    assert first == second
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(first))) as tar:
        names = tar.getnames()
        assert "train.py" in names and not any("__pycache__" in n for n in names)
        assert all(member.mtime == 0 for member in tar.getmembers())


# ---------------------------------------------------------------- tuning job
def test_tuning_job_request_runs_k_folds_per_training_job(settings, sagemaker, s3, requests, training_data):
    client, stubber = sagemaker
    port = tuner(settings, sagemaker, s3, max_parallel_jobs=3)
    base = job_name_for("mlops", JOB, TUNING_NAME_MAX)
    not_found(stubber, "describe_hyper_parameter_tuning_job")
    stubber.add_response("create_hyper_parameter_tuning_job",
                         {"HyperParameterTuningJobArn": f"arn:aws:sagemaker:us-east-1:1:hpj/{base}"})

    handle = port.submit(JOB, training_data, SPACE, 12, RUN_URI)

    assert handle.kind == "tuning" and handle.name == base and not handle.done
    assert handle.trigger["classpath"] == "mlops.triggers.sagemaker_jobs.SageMakerJobTrigger"
    assert handle.trigger["kwargs"] == {
        "job_name": base, "job_type": "tuning", "aws_conn_id": "aws_default", "region_name": "us-east-1",
        "waiter_delay": 0, "waiter_max_attempts": 3}
    [request] = sent(requests, "CreateHyperParameterTuningJob")
    config = request["HyperParameterTuningJobConfig"]
    assert config["Strategy"] == "Bayesian"
    assert config["HyperParameterTuningJobObjective"] == {"Type": "Maximize", "MetricName": "cv_mean:roc_auc"}
    assert config["ResourceLimits"] == {"MaxNumberOfTrainingJobs": 12, "MaxParallelTrainingJobs": 3}
    assert config["TrainingJobEarlyStoppingType"] == "Auto"
    assert config["RandomSeed"] == 42
    assert config["ParameterRanges"] == {
        "ContinuousParameterRanges": [
            {"Name": "learning_rate", "MinValue": "0.02", "MaxValue": "0.3", "ScalingType": "Logarithmic"}],
        "IntegerParameterRanges": [
            {"Name": "max_iter", "MinValue": "50", "MaxValue": "300", "ScalingType": "Linear"},
            {"Name": "max_leaf_nodes", "MinValue": "8", "MaxValue": "64", "ScalingType": "Logarithmic"}],
    }

    definition = request["TrainingJobDefinition"]
    algorithm = definition["AlgorithmSpecification"]
    assert algorithm["TrainingImage"] == IMAGE and algorithm["TrainingInputMode"] == "File"
    metrics = {d["Name"]: d["Regex"] for d in algorithm["MetricDefinitions"]}
    assert set(metrics) == {"cv_mean:roc_auc", "cv_std:roc_auc", "fold_0:roc_auc", "fold_1:roc_auc",
                            "fold_2:roc_auc"}, "one metric per fold of the 3-fold manifest"
    log = "fold=1 roc_auc=0.812500;\ncv_mean roc_auc=0.790000;\ncv_std roc_auc=0.010000;\n"
    assert re.findall(metrics["cv_mean:roc_auc"], log) == ["0.790000"]
    assert re.findall(metrics["fold_1:roc_auc"], log) == ["0.812500"]

    static = decoded(definition["StaticHyperParameters"])
    assert static["final_fit"] is False, "trials score the folds; the refit is its own job"
    assert {k: static[k] for k in ("target", "feature_columns", "categorical", "problem_type", "estimator",
                                   "objective", "positive_label", "seed")} == {
        k: v for k, v in training_data.to_dict().items() if k not in ("train_uri", "folds_uri")}
    assert static["sagemaker_program"] == "train.py"
    source = static["sagemaker_submit_directory"]
    digest = hashlib.sha256(source_archive()).hexdigest()
    assert source == f"s3://{BUCKET}/mlops/code/{digest}/sourcedir.tar.gz"
    assert s3.get_object(Bucket=BUCKET, Key=f"mlops/code/{digest}/sourcedir.tar.gz")["Body"].read() == source_archive()
    assert not set(static) & set(SPACE), "tuned hyperparameters are not static"

    channels = {c["ChannelName"]: c for c in definition["InputDataConfig"]}
    assert set(channels) == {"train", "folds"}
    for name, uri in (("train", training_data.train_uri), ("folds", training_data.folds_uri)):
        assert channels[name]["DataSource"]["S3DataSource"]["S3DataType"] == "S3Prefix"
        assert channels[name]["DataSource"]["S3DataSource"]["S3Uri"] == uri
        assert channels[name]["InputMode"] == "File"
    assert definition["RoleArn"] == ROLE
    assert definition["OutputDataConfig"] == {"S3OutputPath": RUN_URI}
    assert definition["ResourceConfig"] == {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 30}
    assert "EnableManagedSpotTraining" not in definition and "CheckpointConfig" not in definition
    assert "MaxWaitTimeInSeconds" not in definition["StoppingCondition"]
    assert request["Tags"] == [{"Key": "mlops:job", "Value": JOB}]


def test_spot_tuning_sets_checkpoints_and_a_wait_limit(settings, sagemaker, s3, requests, training_data):
    _, stubber = sagemaker
    port = tuner(settings, sagemaker, s3, use_spot=True, max_runtime_s=1800, max_wait_s=5400)
    not_found(stubber, "describe_hyper_parameter_tuning_job")
    stubber.add_response("create_hyper_parameter_tuning_job", {"HyperParameterTuningJobArn": "arn:x"})
    handle = port.submit(JOB, training_data, SPACE, 4, RUN_URI)
    definition = sent(requests, "CreateHyperParameterTuningJob")[0]["TrainingJobDefinition"]
    assert definition["EnableManagedSpotTraining"] is True
    assert definition["StoppingCondition"] == {"MaxRuntimeInSeconds": 1800, "MaxWaitTimeInSeconds": 5400}
    assert definition["CheckpointConfig"] == {"S3Uri": f"{RUN_URI}/checkpoints/{handle.name}",
                                              "LocalPath": "/opt/ml/checkpoints"}


def test_spot_follows_mlops_use_spot(settings, sagemaker, s3, monkeypatch):
    monkeypatch.setenv("MLOPS_USE_SPOT", "true")
    assert tuner(settings, sagemaker, s3).use_spot is True
    monkeypatch.setenv("MLOPS_USE_SPOT", "0")
    assert tuner(settings, sagemaker, s3).use_spot is False


@pytest.mark.parametrize("prefixed", [False, True], ids=["logical name", "name with the prefix already"])
def test_retry_reattaches_to_an_in_progress_tuning_job_without_creating_one(
        settings, sagemaker, s3, requests, training_data, prefixed):
    _, stubber = sagemaker
    base = job_name_for("mlops", JOB, TUNING_NAME_MAX)
    assert job_name_for("mlops", base, TUNING_NAME_MAX) == base
    stubber.add_response("describe_hyper_parameter_tuning_job", tuning_description(base, "InProgress"),
                         {"HyperParameterTuningJobName": base})
    handle = tuner(settings, sagemaker, s3).submit(base if prefixed else JOB, training_data, SPACE, 3, RUN_URI)
    assert (handle.name, handle.done) == (base, False)
    assert handle.trigger["kwargs"]["job_name"] == base
    assert [name for name, _ in requests] == ["DescribeHyperParameterTuningJob"]
    assert not s3.list_objects_v2(Bucket=BUCKET, Prefix="mlops/code/").get("Contents"), "nothing uploaded"


def test_retry_reuses_a_completed_tuning_job_and_captures_its_best_trial(
        settings, sagemaker, s3, requests, training_data):
    _, stubber = sagemaker
    base = job_name_for("mlops", JOB, TUNING_NAME_MAX)
    best_name = f"{base}-002-0badf00d"
    best = summary(best_name, "Completed", 0.91, learning_rate=0.061, max_iter=180, max_leaf_nodes=16)
    stubber.add_response("describe_hyper_parameter_tuning_job", tuning_description(base, "Completed"))
    port = tuner(settings, sagemaker, s3)
    handle = port.submit(JOB, training_data, SPACE, 3, RUN_URI)
    assert (handle.name, handle.done) == (base, True)

    stubber.add_response("describe_hyper_parameter_tuning_job",
                         tuning_description(base, "Completed", BestTrainingJob=best))
    stubber.add_response("describe_training_job", training_description(best_name, "Completed", FinalMetricDataList=[
        {"MetricName": "fold_2:roc_auc", "Value": 0.93, "Timestamp": NOW},
        {"MetricName": "fold_0:roc_auc", "Value": 0.90, "Timestamp": NOW},
        {"MetricName": "fold_1:roc_auc", "Value": 0.90, "Timestamp": NOW},
        {"MetricName": "cv_mean:roc_auc", "Value": 0.91, "Timestamp": NOW},
        {"MetricName": "cv_std:roc_auc", "Value": 0.0141, "Timestamp": NOW},
    ]), {"TrainingJobName": best_name})
    stubber.add_response("list_training_jobs_for_hyper_parameter_tuning_job", {"TrainingJobSummaries": [
        summary(f"{base}-001-aaaaaaaa", "Completed", 0.88, learning_rate=0.2, max_iter=60, max_leaf_nodes=8),
        best,
        summary(f"{base}-003-cccccccc", "Stopped", 0.85, learning_rate=0.29, max_iter=290, max_leaf_nodes=60),
    ]})
    result = port.collect(handle)

    assert result["job_name"] == base and result["objective"] == "roc_auc" and result["n_trials"] == 3
    assert result["best"] == {"hyperparameters": {"learning_rate": 0.061, "max_iter": 180, "max_leaf_nodes": 16},
                              "fold_scores": [0.90, 0.90, 0.93], "mean": 0.91, "std": 0.0141}
    assert result["history_uri"] == f"{RUN_URI}/{base}/tuning_history.json"
    history = json.loads(s3.get_object(Bucket=BUCKET, Key=result["history_uri"].split(f"{BUCKET}/")[1])["Body"].read())
    assert [t["state"] for t in history["trials"]] == ["COMPLETE", "COMPLETE", "PRUNED"]
    assert [t["mean"] for t in history["trials"]] == [0.88, 0.91, 0.85]
    assert history["best_trial"] == 1 and history["best_training_job"] == best_name
    assert "CreateHyperParameterTuningJob" not in [name for name, _ in requests]


@pytest.mark.parametrize("status", ["Failed", "Stopped"])
def test_a_failed_tuning_job_is_retried_under_the_next_suffixed_name(
        settings, sagemaker, s3, requests, training_data, status):
    _, stubber = sagemaker
    base = job_name_for("mlops", JOB, TUNING_NAME_MAX)
    stubber.add_response("describe_hyper_parameter_tuning_job",
                         tuning_description(base, status, FailureReason="ClientError: bad data"),
                         {"HyperParameterTuningJobName": base})
    stubber.add_response("describe_hyper_parameter_tuning_job",
                         tuning_description(f"{base}-r2", "Failed", FailureReason="again"),
                         {"HyperParameterTuningJobName": f"{base}-r2"})
    stubber.add_client_error("describe_hyper_parameter_tuning_job", "ResourceNotFound", "not found",
                             expected_params={"HyperParameterTuningJobName": f"{base}-r3"})
    stubber.add_response("create_hyper_parameter_tuning_job", {"HyperParameterTuningJobArn": "arn:x"})
    handle = tuner(settings, sagemaker, s3).submit(JOB, training_data, SPACE, 3, RUN_URI)
    assert (handle.name, handle.done) == (f"{base}-r3", False)
    [request] = sent(requests, "CreateHyperParameterTuningJob")
    assert request["HyperParameterTuningJobName"] == f"{base}-r3"


def test_wait_blocks_on_the_provider_waiter_and_reports_a_failure(settings, sagemaker, s3):
    _, stubber = sagemaker
    port = tuner(settings, sagemaker, s3)
    stubber.add_response("describe_hyper_parameter_tuning_job", tuning_description("t1", "InProgress"))
    stubber.add_response("describe_hyper_parameter_tuning_job", tuning_description("t1", "Completed"))
    assert port.wait(JobHandle(kind="tuning", name="t1", done=False)).done

    stubber.add_response("describe_hyper_parameter_tuning_job",
                         tuning_description("t2", "Failed", FailureReason="No training job succeeded"))
    with pytest.raises(JobFailed, match="t2 did not complete: No training job succeeded"):
        port.wait(JobHandle(kind="tuning", name="t2", done=False))


def test_collect_refuses_a_tuning_job_that_did_not_complete(settings, sagemaker, s3):
    _, stubber = sagemaker
    stubber.add_response("describe_hyper_parameter_tuning_job",
                         tuning_description("t3", "Failed", FailureReason="AlgorithmError: boom"))
    with pytest.raises(JobFailed, match="t3 is Failed: AlgorithmError: boom"):
        tuner(settings, sagemaker, s3).collect(JobHandle(kind="tuning", name="t3", done=True))


def test_the_deferral_trigger_is_the_providers_and_serialises(settings, sagemaker, s3):
    from airflow.sdk.module_loading import import_string

    handle = tuner(settings, sagemaker, s3).running("t4")
    trigger = import_string(handle.trigger["classpath"])(**handle.trigger["kwargs"])
    classpath, kwargs = trigger.serialize()
    assert classpath == handle.trigger["classpath"]
    assert kwargs["job_name"] == "t4" and kwargs["job_type"] == "tuning"


# ---------------------------------------------------------------- refit training job
BEST = {"learning_rate": 0.061, "max_iter": 180, "max_leaf_nodes": 16}


def test_refit_request_fits_every_row_with_the_best_hyperparameters(
        settings, sagemaker, s3, requests, training_data):
    _, stubber = sagemaker
    base = job_name_for("mlops", REFIT, 63)
    not_found(stubber, "describe_training_job")
    stubber.add_response("create_training_job", {"TrainingJobArn": f"arn:aws:sagemaker:us-east-1:1:training-job/{base}"})
    handle = trainer(settings, sagemaker, s3).submit(REFIT, training_data, BEST, RUN_URI)

    assert (handle.kind, handle.name, handle.done) == ("training", base, False)
    assert handle.trigger["kwargs"]["job_type"] == "training"
    [request] = sent(requests, "CreateTrainingJob")
    values = decoded(request["HyperParameters"])
    assert {k: values[k] for k in BEST} == BEST
    assert "final_fit" not in values, "the refit keeps the default: fit on every row"
    assert values["target"] == "Churn?" and values["sagemaker_program"] == "train.py"
    assert values["sagemaker_submit_directory"].endswith("/sourcedir.tar.gz")
    assert [c["ChannelName"] for c in request["InputDataConfig"]] == ["train"], "no folds: no CV in the refit"
    assert request["AlgorithmSpecification"] == {"TrainingImage": IMAGE, "TrainingInputMode": "File"}
    assert request["OutputDataConfig"] == {"S3OutputPath": RUN_URI}
    assert request["RoleArn"] == ROLE
    assert "EnableManagedSpotTraining" not in request


def test_spot_refit_checkpoints(settings, sagemaker, s3, requests, training_data):
    _, stubber = sagemaker
    not_found(stubber, "describe_training_job")
    stubber.add_response("create_training_job", {"TrainingJobArn": "arn:x"})
    handle = trainer(settings, sagemaker, s3, use_spot=True).submit(REFIT, training_data, BEST, RUN_URI)
    [request] = sent(requests, "CreateTrainingJob")
    assert request["EnableManagedSpotTraining"] is True
    assert request["CheckpointConfig"]["S3Uri"] == f"{RUN_URI}/checkpoints/{handle.name}"
    assert request["StoppingCondition"]["MaxWaitTimeInSeconds"] >= request["StoppingCondition"]["MaxRuntimeInSeconds"]


def test_refit_retry_reattaches_reuses_or_renames(settings, sagemaker, s3, requests, training_data):
    _, stubber = sagemaker
    base = job_name_for("mlops", REFIT, 63)
    port = trainer(settings, sagemaker, s3)

    stubber.add_response("describe_training_job", training_description(base, "InProgress"))
    assert port.submit(REFIT, training_data, BEST, RUN_URI).done is False

    stubber.add_response("describe_training_job", training_description(base, "Completed"))
    assert port.submit(REFIT, training_data, BEST, RUN_URI) == JobHandle(kind="training", name=base, done=True)
    assert "CreateTrainingJob" not in [name for name, _ in requests]

    stubber.add_response("describe_training_job", training_description(base, "Failed", FailureReason="OOM"))
    not_found(stubber, "describe_training_job")
    stubber.add_response("create_training_job", {"TrainingJobArn": "arn:x"})
    handle = port.submit(REFIT, training_data, BEST, RUN_URI)
    assert handle.name == f"{base}-r2"
    assert [r["TrainingJobName"] for r in sent(requests, "CreateTrainingJob")] == [f"{base}-r2"]


def test_refit_result_points_at_the_model_artifact_with_its_streamed_sha256(settings, sagemaker, s3):
    _, stubber = sagemaker
    name = "mlops-refit-job"
    artifact = b"model bytes " * 100_000
    s3.put_object(Bucket=BUCKET, Key=f"mlops/training/churn/manual_run/{name}/output/model.tar.gz", Body=artifact)
    hyperparameters = training_module().encode_hyperparameters(
        {**BEST, "target": "Churn?", "sagemaker_program": "train.py", "seed": 42})
    stubber.add_response("describe_training_job",
                         training_description(name, "Completed", HyperParameters=hyperparameters))
    result = trainer(settings, sagemaker, s3).collect(JobHandle(kind="training", name=name, done=True))
    assert result == {"job_name": name, "model_uri": f"{RUN_URI}/{name}/output/model.tar.gz",
                      "sha256": hashlib.sha256(artifact).hexdigest(), "hyperparameters": BEST}


def test_refit_wait_reports_the_failure_reason(settings, sagemaker, s3):
    _, stubber = sagemaker
    stubber.add_response("describe_training_job", training_description("j", "Stopped", FailureReason="stopped by user"))
    with pytest.raises(JobFailed, match="stopped by user"):
        trainer(settings, sagemaker, s3).wait(JobHandle(kind="training", name="j", done=False))


def test_refit_collect_refuses_a_job_that_did_not_complete(settings, sagemaker, s3):
    _, stubber = sagemaker
    stubber.add_response("describe_training_job", training_description("j", "Failed", FailureReason="OOM"))
    with pytest.raises(JobFailed, match="j is Failed: OOM"):
        trainer(settings, sagemaker, s3).collect(JobHandle(kind="training", name="j", done=True))


def test_connection_qualified_uris_reach_sagemaker_as_plain_s3_uris(settings, sagemaker, s3, requests,
                                                                   training_data):
    # ``str(ObjectStoragePath(..., conn_id="aws_default"))`` is ``s3://aws_default@bucket/key``.
    from dataclasses import replace

    _, stubber = sagemaker
    qualified = replace(training_data, train_uri=training_data.train_uri.replace("s3://", "s3://aws_default@"))
    not_found(stubber, "describe_training_job")
    stubber.add_response("create_training_job", {"TrainingJobArn": "arn:x"})
    trainer(settings, sagemaker, s3).submit(REFIT, qualified, BEST, RUN_URI.replace("s3://", "s3://aws_default@") + "/")
    [request] = sent(requests, "CreateTrainingJob")
    assert request["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"] == training_data.train_uri
    assert request["OutputDataConfig"] == {"S3OutputPath": RUN_URI}
