"""SageMaker batch transform: request shape, idempotent names, terminal states, one output line per input line,
names with the settings' prefix."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from automl_fixtures import (  # noqa: F401  (the *_fixture imports register the fixtures)
    BUCKET,
    REGION,
    aws_settings_fixture,
    moto_clients_fixture,
    stubbed_fixture,
)

from mlops.backends.aws.transform import SageMakerBatchTransform, attempt_names
from mlops.backends.base import JobHandle

# The logical names the port is given, and SageMaker's: the prefix, and for the job a cut plus a
# hash to leave room in 63 characters for the retry suffix.
JOB = "autopilot-batch-predict-transform-manual-2026-01-05-9f8e7d6c"
MODEL = "autopilot-batch-predict-model-manual-2026-01-05-1a2b3c4d"
AWS_JOB = "mlops-autopilot-batch-predict-transform-manual-2026-2807dead"
AWS_MODEL = f"mlops-{MODEL}"
INPUT = f"s3://{BUCKET}/mlops/autopilot/churn/run/transform/input"
OUTPUT = f"s3://{BUCKET}/mlops/autopilot/churn/run/transform/output"
ARGS = {"job_name": JOB, "model_name": MODEL, "input_uri": INPUT, "output_uri": OUTPUT, "input_filter": "$[1:]",
        "join_source": True, "output_filter": "$[0,-2,-1]"}
T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def put(s3, uri: str, text: str) -> None:
    key = uri.removeprefix(f"s3://{BUCKET}/")
    s3.put_object(Bucket=BUCKET, Key=key, Body=text.encode())


def described(name: str, status: str, reason: str | None = None, model: str = AWS_MODEL) -> dict:
    answer = {
        "TransformJobName": name, "TransformJobArn": f"arn:aws:sagemaker:{REGION}:123456789012:transform-job/{name}",
        "TransformJobStatus": status, "ModelName": model, "CreationTime": T0,
        "TransformInput": {"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": INPUT}},
                           "ContentType": "text/csv", "SplitType": "Line"},
        "TransformOutput": {"S3OutputPath": OUTPUT, "Accept": "text/csv", "AssembleWith": "Line"},
        "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
        "DataProcessing": {"InputFilter": "$[1:]", "JoinSource": "Input", "OutputFilter": "$[0,-2,-1]"},
    }
    if reason:
        answer["FailureReason"] = reason
    return answer


# ---------------------------------------------------------------- request shape (moto)
def test_the_job_reads_csv_lines_in_multi_record_batches_and_joins_predictions_to_the_input(aws_settings,
                                                                                           moto_clients):
    sagemaker, s3 = moto_clients
    transform = SageMakerBatchTransform(aws_settings, client=sagemaker, s3_client=s3, max_payload_mb=4,
                                        max_concurrent_transforms=4)

    handle = transform.submit(**ARGS)

    job = sagemaker.describe_transform_job(TransformJobName=AWS_JOB)
    assert (job["ModelName"], job["BatchStrategy"], job["MaxPayloadInMB"], job["MaxConcurrentTransforms"]) == (
        AWS_MODEL, "MultiRecord", 4, 4)
    assert job["TransformInput"] == {
        "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": INPUT}},
        "ContentType": "text/csv", "CompressionType": "None", "SplitType": "Line"}
    assert job["TransformOutput"] == {"S3OutputPath": OUTPUT, "Accept": "text/csv", "AssembleWith": "Line"}
    assert job["DataProcessing"] == {"InputFilter": "$[1:]", "JoinSource": "Input", "OutputFilter": "$[0,-2,-1]"}
    assert job["TransformResources"] == {"InstanceType": "ml.m5.large", "InstanceCount": 1}
    assert (handle.name, handle.done) == (AWS_JOB, False)
    assert handle.trigger == {
        "classpath": "mlops.triggers.sagemaker_jobs.SageMakerJobTrigger",
        "kwargs": {"job_name": AWS_JOB, "job_type": "transform", "waiter_delay": 30, "waiter_max_attempts": 1440,
                   "aws_conn_id": "aws_default", "region_name": REGION}}


def test_the_handles_trigger_is_the_providers_transform_trigger(aws_settings, moto_clients):
    from airflow.providers.amazon.aws.triggers.sagemaker import SageMakerTrigger

    sagemaker, s3 = moto_clients
    handle = SageMakerBatchTransform(aws_settings, client=sagemaker, s3_client=s3).submit(**ARGS)

    trigger = SageMakerTrigger(**handle.trigger["kwargs"])

    assert trigger.waiter_name == "TransformJobComplete"
    assert trigger.waiter_args == {"TransformJobName": AWS_JOB}


def test_a_completed_job_is_waited_for_and_counts_one_output_line_per_input_line(aws_settings, moto_clients):
    sagemaker, s3 = moto_clients
    put(s3, f"{INPUT}/part-0.csv", "a,1,2\nb,3,4\n\nc,5,6\n")
    put(s3, f"{INPUT}/nested/part-1.csv", "d,7,8\n")
    put(s3, f"{OUTPUT}/part-0.csv.out", "a,True.,0.9\nb,False.,0.2\nc,False.,0.1\n")
    put(s3, f"{OUTPUT}/nested/part-1.csv.out", "d,True.,0.7")
    transform = SageMakerBatchTransform(aws_settings, client=sagemaker, s3_client=s3, waiter_delay=0)

    result = transform.transform(**ARGS)

    assert (result.job_name, result.output_uri, result.input_rows, result.output_rows) == (AWS_JOB, OUTPUT, 4, 4)


def test_a_retry_of_a_completed_job_reuses_it(aws_settings, moto_clients):
    sagemaker, s3 = moto_clients
    put(s3, f"{INPUT}/records.csv", "a,1\n")
    put(s3, f"{OUTPUT}/records.csv.out", "a,True.\n")
    transform = SageMakerBatchTransform(aws_settings, client=sagemaker, s3_client=s3)
    transform.submit(**ARGS)

    again = transform.submit(**ARGS)

    assert again.done and again.result["output_rows"] == 1
    assert [j["TransformJobName"] for j in sagemaker.list_transform_jobs()["TransformJobSummaries"]] == [AWS_JOB]


def test_an_output_with_a_missing_line_fails_naming_the_object(aws_settings, moto_clients):
    sagemaker, s3 = moto_clients
    put(s3, f"{INPUT}/records.csv", "a,1\nb,2\nc,3\n")
    put(s3, f"{OUTPUT}/records.csv.out", "a,True.\nc,False.\n")
    transform = SageMakerBatchTransform(aws_settings, client=sagemaker, s3_client=s3, waiter_delay=0)

    with pytest.raises(RuntimeError, match=r"input/records\.csv has 3 lines, its \.out 2"):
        transform.transform(**ARGS)


def test_a_missing_output_object_fails_naming_it(aws_settings, moto_clients):
    sagemaker, s3 = moto_clients
    put(s3, f"{INPUT}/records.csv", "a,1\n")
    transform = SageMakerBatchTransform(aws_settings, client=sagemaker, s3_client=s3, waiter_delay=0)

    with pytest.raises(RuntimeError, match=r"output/records\.csv\.out is missing"):
        transform.transform(**ARGS)


def test_a_single_input_file_maps_to_its_out_file(aws_settings, moto_clients):
    sagemaker, s3 = moto_clients
    put(s3, f"{INPUT}/records.csv", "a,1\nb,2\n")
    put(s3, f"{OUTPUT}/records.csv.out", "a,x\nb,y\n")
    transform = SageMakerBatchTransform(aws_settings, client=sagemaker, s3_client=s3, waiter_delay=0)

    result = transform.transform(**{**ARGS, "input_uri": f"{INPUT}/records.csv"})

    assert (result.input_rows, result.output_rows) == (2, 2)


# ---------------------------------------------------------------- idempotent names (Stubber)
def test_a_running_job_is_attached_to(aws_settings, stubbed):
    client, stubber = stubbed
    stubber.add_response("describe_transform_job", described(AWS_JOB, "InProgress"), {"TransformJobName": AWS_JOB})

    handle = SageMakerBatchTransform(aws_settings, client=client).submit(**ARGS)

    assert (handle.name, handle.done) == (AWS_JOB, False)


def test_after_a_failed_job_a_retry_starts_a_suffixed_one(aws_settings, stubbed):
    client, stubber = stubbed
    retry = f"{AWS_JOB}-r2"
    stubber.add_response("describe_transform_job", described(AWS_JOB, "Failed", "ClientError: bad record"),
                         {"TransformJobName": AWS_JOB})
    stubber.add_client_error("describe_transform_job", "ValidationException",
                             f"Could not find requested job with name {retry}", expected_params={"TransformJobName": retry})
    stubber.add_response("create_transform_job", {"TransformJobArn": f"arn:aws:sagemaker:{REGION}:1:transform-job/x"},
                         {**SageMakerBatchTransform(aws_settings).job_request(retry, AWS_MODEL, INPUT, OUTPUT, "text/csv",
                                                                              "$[1:]", True, "$[0,-2,-1]")})

    handle = SageMakerBatchTransform(aws_settings, client=client).submit(**ARGS)

    assert len(retry) == 63 and (handle.name, handle.done) == (retry, False)


def test_after_every_attempt_failed_the_reasons_are_reported(aws_settings, stubbed):
    client, stubber = stubbed
    for name in attempt_names(AWS_JOB, 2):
        stubber.add_response("describe_transform_job", described(name, "Failed", f"{name} ran out of memory"),
                             {"TransformJobName": name})

    with pytest.raises(RuntimeError, match="failed 2 times: .*ran out of memory; .*-r2 Failed"):
        SageMakerBatchTransform(aws_settings, client=client, attempts=2).submit(**ARGS)


def test_a_job_name_reused_for_another_model_is_refused(aws_settings, stubbed):
    client, stubber = stubbed
    stubber.add_response("describe_transform_job", described(AWS_JOB, "Completed", model="another-model"),
                         {"TransformJobName": AWS_JOB})

    with pytest.raises(ValueError, match=f"transform job {AWS_JOB} exists with a different model"):
        SageMakerBatchTransform(aws_settings, client=client).submit(**ARGS)


def test_waiting_fails_with_the_reason_of_a_failed_job(aws_settings, stubbed):
    client, stubber = stubbed
    failed = described(AWS_JOB, "Failed", "ModelError: the model answered 400 for line 17")
    for answer in (described(AWS_JOB, "InProgress"), failed, failed):
        stubber.add_response("describe_transform_job", answer, {"TransformJobName": AWS_JOB})
    transform = SageMakerBatchTransform(aws_settings, client=client, waiter_delay=0)

    with pytest.raises(RuntimeError, match=f"transform job {AWS_JOB} Failed: ModelError: the model answered 400"):
        transform.wait(JobHandle(kind="transform", name=AWS_JOB, done=False, trigger=transform.trigger(AWS_JOB)))


def test_waiting_fails_when_the_job_is_stopped(aws_settings, stubbed):
    client, stubber = stubbed
    for answer in (described(AWS_JOB, "Stopping"), described(AWS_JOB, "Stopped"), described(AWS_JOB, "Stopped")):
        stubber.add_response("describe_transform_job", answer, {"TransformJobName": AWS_JOB})
    transform = SageMakerBatchTransform(aws_settings, client=client, waiter_delay=0)

    with pytest.raises(RuntimeError, match=f"transform job {AWS_JOB} Stopped"):
        transform.wait(JobHandle(kind="transform", name=AWS_JOB, done=False, trigger=transform.trigger(AWS_JOB)))


# ---------------------------------------------------------------- configuration
def test_a_payload_budget_over_sagemakers_100_mb_is_refused(aws_settings):
    with pytest.raises(ValueError, match="exceeds SageMaker's 100 MB"):
        SageMakerBatchTransform(aws_settings, max_payload_mb=20, max_concurrent_transforms=6)


def test_only_csv_is_accepted(aws_settings):
    with pytest.raises(ValueError, match="application/json"):
        SageMakerBatchTransform(aws_settings).job_request(JOB, MODEL, INPUT, OUTPUT, "application/json")


def test_attempt_names_fit_sagemakers_limit():
    assert attempt_names("a" * 63, 3) == ["a" * 63, "a" * 60 + "-r2", "a" * 60 + "-r3"]


def test_names_that_have_the_prefix_already_are_not_prefixed_again(aws_settings, stubbed):
    client, stubber = stubbed
    stubber.add_response("describe_transform_job", described(AWS_JOB, "InProgress"), {"TransformJobName": AWS_JOB})

    handle = SageMakerBatchTransform(aws_settings, client=client).submit(
        **{**ARGS, "job_name": AWS_JOB, "model_name": AWS_MODEL})

    assert (handle.name, handle.done) == (AWS_JOB, False)


def test_a_job_name_too_long_is_cut_with_a_hash_leaving_room_for_the_retry_suffix(aws_settings):
    transform = SageMakerBatchTransform(aws_settings)

    name = transform.job_name(JOB)

    assert name == AWS_JOB and len(name) == 60
    assert re.fullmatch(r"mlops-autopilot-batch-predict-transform-[a-z0-9-]+-[0-9a-f]{8}", name)
    assert transform.job_name(JOB[:-1] + "d") != name
    assert all(len(attempt) <= 63 for attempt in attempt_names(name, 9))
