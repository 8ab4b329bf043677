"""SageMaker batch transform behind the BatchTransform port.

One ``CreateTransformJob`` per call: CSV in (``SplitType=Line``), CSV out (``AssembleWith=Line``,
``Accept=text/csv``), ``BatchStrategy=MultiRecord`` with a payload limit, and SageMaker's
``DataProcessing`` (``InputFilter``, ``JoinSource=Input``, ``OutputFilter``) so every output line
carries its record id. Names are idempotent as for training: a retry describes first and
re-attaches to a running job, reuses a Completed one, and only after a Failed or Stopped job
starts a new one under a suffixed name (``<name>-r2``, ``-r3``, ...).

A running job comes back as a :class:`~mlops.backends.base.JobHandle` carrying the amazon
provider's ``SageMakerTrigger(job_type="transform")``; :meth:`SageMakerBatchTransform.wait` blocks
on the provider's ``TransformJobComplete`` waiter (the same rules). :meth:`collect` checks that
every input object got an ``.out`` object with one line per input line (streamed from S3).

Names: the job and model names the port takes are logical; the job runs as
``<MLOPS_NAME_PREFIX>-<job name>`` (:func:`mlops.core.naming.prefixed`, room left for ``-rN``) on the
model ``<prefix>-<model name>``, and results carry those names. A name that has the prefix
already is kept (a model name from the Autopilot task's XCom, say).
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any

from mlops.backends.aws.clients import AwsClients, or_none, stop_quietly
from mlops.backends.aws.s3 import split_s3_uri
from mlops.backends.base import BatchTransform, JobHandle, TransformResult
from mlops.core.naming import RETRY_ROOM, attempt_name, prefixed

if TYPE_CHECKING:
    from mlops.core.settings import Settings

log = logging.getLogger(__name__)

COMPLETED, IN_PROGRESS, STOPPING, FAILED, STOPPED = "Completed", "InProgress", "Stopping", "Failed", "Stopped"
CSV = "text/csv"
TRIGGER = "mlops.triggers.sagemaker_jobs.SageMakerJobTrigger"  # the provider's, which also stops on kill
WAITER_NAME = "TransformJobComplete"
MAX_NAME = 63  # TransformJobName, ModelName


def attempt_names(job_name: str, attempts: int) -> list[str]:
    """``job_name``, then ``<job_name>-r2`` ... ``-r<attempts>`` (shortened to SageMaker's 63 characters)."""
    names = [job_name]
    for n in range(2, attempts + 1):
        room = len(attempt_name("", n))
        names.append(attempt_name(job_name[: MAX_NAME - room].rstrip("-"), n))
    return names


class SageMakerBatchTransform(AwsClients, BatchTransform):
    """The BatchTransform port on SageMaker batch transform.

    :param settings: project settings (region, AWS connection).
    :param client: a boto3 ``sagemaker`` client; default: one from ``settings``.
    :param s3_client: a boto3 ``s3`` client for the row counts; default: one from ``settings``.
    :param instance_type: transform instance type.
    :param instance_count: transform instances.
    :param max_payload_mb: ``MaxPayloadInMB``, the size limit of one MultiRecord mini-batch.
    :param max_concurrent_transforms: requests in flight per instance; ``None`` lets SageMaker
        choose. ``max_concurrent_transforms * max_payload_mb`` must stay within 100 MB.
    :param attempts: job names tried (the first, then suffixed) before giving up on failures.
    :param waiter_delay: seconds between status checks while waiting.
    :param max_wait_s: how long to wait for one job before the wait times out.
    :param count_rows: stream the input and output objects to check one output line per input
        line (and report the counts); ``False`` skips that read and reports ``-1``.
    """

    def __init__(self, settings: Settings, client=None, s3_client=None, instance_type: str = "ml.m5.large",
                 instance_count: int = 1, max_payload_mb: int = 6, max_concurrent_transforms: int | None = None,
                 attempts: int = 5, waiter_delay: int = 30, max_wait_s: int = 12 * 3600,
                 count_rows: bool = True):
        from mlops.backends.limits import check_transform_payload

        check_transform_payload(max_payload_mb, max_concurrent_transforms)
        self.settings = settings
        self._use_clients(sagemaker=client, s3=s3_client)
        self.instance_type = instance_type
        self.instance_count = instance_count
        self.max_payload_mb = max_payload_mb
        self.max_concurrent_transforms = max_concurrent_transforms
        self.attempts = attempts
        self.waiter_delay = waiter_delay
        self.max_wait_s = max_wait_s
        self.count_rows = count_rows

    # ------------------------------------------------------------ names
    def job_name(self, name: str) -> str:
        """The SageMaker name of the transform job ``name``: ``<prefix>-<name>``, leaving room in
        63 characters for the retry suffix."""
        return prefixed(self.settings.name_prefix, name, MAX_NAME - RETRY_ROOM)

    def model_name(self, name: str) -> str:
        """The SageMaker name of the model ``name``: ``<prefix>-<name>``."""
        return prefixed(self.settings.name_prefix, name, MAX_NAME)

    # ------------------------------------------------------------ requests
    def job_request(self, job_name: str, model_name: str, input_uri: str, output_uri: str,
                    content_type: str = CSV, input_filter: str | None = None, join_source: bool = False,
                    output_filter: str | None = None) -> dict[str, Any]:
        """The ``CreateTransformJob`` request for the port's arguments (names: SageMaker's), its
        names and payload checked against SageMaker's limits (:func:`mlops.backends.limits.check_transform`)."""
        from mlops.backends.limits import check_transform

        check_transform(job_name, model_name, self.max_payload_mb, self.max_concurrent_transforms)
        if (content_type or CSV).split(";")[0].strip().lower() != CSV:
            raise ValueError(f"content type {content_type!r} is not supported: SplitType=Line reads {CSV}")
        split_s3_uri(input_uri)
        split_s3_uri(output_uri)
        request: dict[str, Any] = {
            "TransformJobName": job_name,
            "ModelName": model_name,
            "BatchStrategy": "MultiRecord",
            "MaxPayloadInMB": self.max_payload_mb,
            "TransformInput": {
                "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": input_uri}},
                "ContentType": CSV,
                "CompressionType": "None",
                "SplitType": "Line",
            },
            "TransformOutput": {"S3OutputPath": output_uri.rstrip("/"), "Accept": CSV, "AssembleWith": "Line"},
            "TransformResources": {"InstanceType": self.instance_type, "InstanceCount": self.instance_count},
            "DataProcessing": {
                "InputFilter": input_filter or "$",
                "JoinSource": "Input" if join_source else "None",
                "OutputFilter": output_filter or "$",
            },
        }
        if self.max_concurrent_transforms:
            request["MaxConcurrentTransforms"] = self.max_concurrent_transforms
        return request

    def trigger(self, job_name: str) -> dict[str, Any]:
        return {"classpath": TRIGGER, "kwargs": {
            "job_name": job_name, "job_type": "transform", "waiter_delay": self.waiter_delay,
            "waiter_max_attempts": max(1, math.ceil(self.max_wait_s / max(self.waiter_delay, 1))),
            "aws_conn_id": self.settings.aws_conn_id, "region_name": self.settings.aws_region,
        }}

    def describe_job(self, job_name: str) -> dict[str, Any] | None:
        """``DescribeTransformJob``, or ``None`` when there is no job of that name."""
        return or_none(lambda: self.sagemaker.describe_transform_job(TransformJobName=job_name))

    @staticmethod
    def _check_same_job(described: dict[str, Any], request: dict[str, Any]) -> None:
        def fields(job: dict[str, Any]) -> dict[str, Any]:
            return {
                "model": job.get("ModelName"),
                "input": job["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"],
                "output": job["TransformOutput"]["S3OutputPath"].rstrip("/"),
                "data processing": job.get("DataProcessing") or {},
            }

        have, want = fields(described), fields(request)
        if not have["data processing"]:  # a job created without DataProcessing does not echo the defaults
            have["data processing"] = {"InputFilter": "$", "JoinSource": "None", "OutputFilter": "$"}
        changed = sorted(k for k in want if have[k] != want[k])
        if changed:
            raise ValueError(f"transform job {request['TransformJobName']} exists with a different "
                             f"{', '.join(changed)}; use a new job name for a new configuration")

    # ------------------------------------------------------------ submit / wait / collect
    def submit(self, job_name: str, model_name: str, input_uri: str, output_uri: str,
               content_type: str = CSV, input_filter: str | None = None, join_source: bool = False,
               output_filter: str | None = None) -> JobHandle:
        """Start the transform job, re-attach to it, or reuse it; see the module docstring."""
        from botocore.exceptions import ClientError

        job_name, model_name = self.job_name(job_name), self.model_name(model_name)
        reasons = []
        for name in attempt_names(job_name, self.attempts):
            request = self.job_request(name, model_name, input_uri, output_uri, content_type, input_filter,
                                       join_source, output_filter)
            described = self.describe_job(name)
            if described is None:
                try:
                    self.sagemaker.create_transform_job(**request)
                except ClientError as err:
                    if err.response.get("Error", {}).get("Code") != "ResourceInUse":
                        raise
                    described = self.describe_job(name)
                    if described is None:
                        raise
                else:
                    log.info("created transform job %s: model %s, %s -> %s", name, model_name, input_uri,
                             output_uri)
                    return JobHandle(kind="transform", name=name, done=False, trigger=self.trigger(name))
            self._check_same_job(described, request)
            status = described["TransformJobStatus"]
            if status == COMPLETED:
                log.info("transform job %s already Completed: reusing it", name)
                return JobHandle(kind="transform", name=name, done=True, result=self._result(name, described))
            if status in (IN_PROGRESS, STOPPING):
                log.info("transform job %s is %s: attaching", name, status)
                return JobHandle(kind="transform", name=name, done=False, trigger=self.trigger(name))
            reasons.append(f"{name} {status}: {described.get('FailureReason') or 'no FailureReason given'}")
            log.warning("transform job %s; trying the next name", reasons[-1])
        raise RuntimeError(f"transform job {job_name} failed {len(reasons)} times: {'; '.join(reasons)}")

    def wait(self, handle: JobHandle) -> JobHandle:
        """Block on the provider's ``TransformJobComplete`` waiter; raise with the job's reason."""
        from airflow.providers.amazon.aws.exceptions import WaiterTerminalFailure
        from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook
        from airflow.providers.amazon.aws.utils.waiter_with_logging import wait

        if handle.done:
            return handle
        kwargs = (handle.trigger or {}).get("kwargs", {})
        waiter = SageMakerHook(aws_conn_id=self.settings.aws_conn_id).get_waiter(WAITER_NAME, client=self.sagemaker)
        try:
            wait(waiter, kwargs.get("waiter_delay", self.waiter_delay),
                 kwargs.get("waiter_max_attempts", math.ceil(self.max_wait_s / max(self.waiter_delay, 1))),
                 {"TransformJobName": handle.name}, f"transform job {handle.name} did not complete",
                 f"transform job {handle.name} is running", ["TransformJobStatus"])
        except WaiterTerminalFailure as err:
            described = self.describe_job(handle.name) or err.last_response or {}
            raise RuntimeError(f"transform job {handle.name} {described.get('TransformJobStatus')}: "
                               f"{described.get('FailureReason') or 'no FailureReason given'}") from err
        return JobHandle(kind="transform", name=handle.name, done=True, result=self._result(handle.name))

    def stop(self, handle: JobHandle | None) -> None:
        """Stop the transform job (the task was killed while it waited); an ended job is left alone."""
        if handle is None or handle.done:
            log.warning("no running transform job to stop")
            return
        stop_quietly(lambda: self.sagemaker.stop_transform_job(TransformJobName=handle.name),
                     f"transform job {handle.name}")

    def collect(self, handle: JobHandle) -> dict[str, Any]:
        """The :class:`TransformResult` dict of a Completed job."""
        return handle.result if handle.result is not None else self._result(handle.name)

    def _result(self, job_name: str, described: dict[str, Any] | None = None) -> dict[str, Any]:
        described = described or self.describe_job(job_name)
        if described is None:
            raise KeyError(f"no transform job named {job_name!r}")
        status = described["TransformJobStatus"]
        if status != COMPLETED:
            raise RuntimeError(f"transform job {job_name} is {status}: "
                               f"{described.get('FailureReason') or 'no FailureReason given'}")
        input_uri = described["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"]
        output_uri = described["TransformOutput"]["S3OutputPath"].rstrip("/")
        input_rows = output_rows = -1
        if self.count_rows:
            input_rows, output_rows = self.check_line_counts(job_name, input_uri, output_uri)
        return TransformResult(job_name, output_uri, input_rows, output_rows).to_dict()

    # ------------------------------------------------------------ one output line per input line
    def _keys(self, bucket: str, prefix: str) -> list[str]:
        paginator = self.s3.get_paginator("list_objects_v2")
        return sorted(obj["Key"] for page in paginator.paginate(Bucket=bucket, Prefix=prefix)
                      for obj in page.get("Contents", []) if not obj["Key"].endswith("/"))

    def _count_lines(self, bucket: str, key: str) -> int:
        body = self.s3.get_object(Bucket=bucket, Key=key)["Body"]
        try:
            return sum(1 for line in body.iter_lines(chunk_size=1 << 20) if line.strip())
        finally:
            body.close()

    def check_line_counts(self, job_name: str, input_uri: str, output_uri: str) -> tuple[int, int]:
        """(input lines, output lines) over all objects; ``RuntimeError`` naming any object whose
        ``.out`` is missing or has another number of non-empty lines than its input."""
        in_bucket, in_prefix = split_s3_uri(input_uri)
        out_bucket, out_prefix = split_s3_uri(output_uri)
        inputs = self._keys(in_bucket, in_prefix)
        if not inputs:
            raise RuntimeError(f"transform job {job_name}: no input objects under {input_uri}")
        base = in_prefix if in_prefix.endswith("/") or in_prefix not in inputs else in_prefix.rpartition("/")[0]
        outputs = set(self._keys(out_bucket, out_prefix))
        total_in = total_out = 0
        problems = []
        for key in inputs:
            relative = key[len(base):].lstrip("/")
            out_key = f"{out_prefix.rstrip('/')}/{relative}.out".lstrip("/")
            n_in = self._count_lines(in_bucket, key)
            if out_key not in outputs:
                problems.append(f"s3://{out_bucket}/{out_key} is missing")
                continue
            n_out = self._count_lines(out_bucket, out_key)
            if n_in != n_out:
                problems.append(f"s3://{in_bucket}/{key} has {n_in} lines, its .out {n_out}")
            total_in += n_in
            total_out += n_out
        if problems:
            raise RuntimeError(f"transform job {job_name}: {'; '.join(problems)}")
        log.info("transform job %s: %d input lines -> %d output lines in %d object(s)", job_name, total_in,
                 total_out, len(inputs))
        return total_in, total_out
