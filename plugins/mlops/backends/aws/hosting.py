"""The Hosting port on SageMaker endpoints.

A deploy is ``submit`` -> ``wait`` (or defer) -> ``collect``, so the operator can free its
worker slot while SageMaker creates or updates the endpoint:

* ``submit`` verifies the artifact's sha256 in S3, then creates — describing first, so a retry
  reuses what its first attempt made — the model (the package's serving container: the
  scikit-learn image, ``ModelDataUrl`` and ``SAGEMAKER_PROGRAM``/``SAGEMAKER_SUBMIT_DIRECTORY``
  naming ``include/serving/inference.py`` in a content-addressed ``sourcedir.tar.gz``), the
  endpoint config (serverless ``ServerlessConfig`` for staging; instance type/count and
  ``DataCaptureConfig`` for prod) and then ``create_endpoint``, or ``update_endpoint`` with the
  blue/green ``DeploymentConfig`` (traffic shifting, ``AutoRollbackConfiguration``). It
  returns a :class:`~mlops.backends.base.JobHandle` carrying the amazon provider's
  ``SageMakerTrigger(job_type="endpoint")``.
* ``wait`` blocks on botocore's ``endpoint_in_service`` waiter (the trigger waits on the same).
* ``collect`` describes the endpoint and returns what it *runs*: ``config_name`` is the
  ``EndpointConfigName`` SageMaker reports, so a blue/green update that the alarms rolled back
  (InService again, on the old config) shows up as a different config, which the caller
  treats as the failure it is.

The model and the endpoint config are both named ``spec.config_name`` (different namespaces),
which derives from (dag, run, stage): a retry finds and reuses them.

Names: the port takes logical names (``churn-classifier-prod``, ``deploy-model-...``) and
:meth:`SageMakerHosting.named` maps them, and the rollback alarms, to their AWS names with
``MLOPS_NAME_PREFIX`` (:func:`mlops.core.naming.prefixed`: ``mlops-churn-classifier-prod``). What it
returns carries the AWS names; a name passed back in is not prefixed twice.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from mlops.backends.aws.clients import AwsClients, or_none
from mlops.backends.aws.s3 import split_s3_uri
from mlops.backends.aws.serving_container import inference_image_uri, serving_environment
from mlops.backends.base import Endpoint, EndpointNotFound, EndpointSpec, Hosting, JobHandle
from mlops.core.naming import prefixed
from mlops.core.storage import DigestMismatch

if TYPE_CHECKING:
    from mlops.core.settings import Settings

log = logging.getLogger(__name__)

VARIANT = "AllTraffic"
TRIGGER = "airflow.providers.amazon.aws.triggers.sagemaker.SageMakerTrigger"
IN_SERVICE = "InService"
BUSY = ("Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting")
FAILED = "Failed"
NAME_MAX = 63  # EndpointName, EndpointConfigName, ModelName
SERVERLESS_KEYS = ("MemorySizeInMB", "MaxConcurrency", "ProvisionedConcurrency")
ALARM_NAME_MAX = 255  # CloudWatch AlarmName


class SageMakerHosting(AwsClients, Hosting):
    """SageMaker real-time endpoints (serverless for staging, instances for prod).

    :param settings: region, execution role, data root, AWS connection, default instance type.
    :param sagemaker_client: boto3 ``sagemaker`` client (default: from the AWS connection).
    :param s3_client: boto3 ``s3`` client, to verify artifacts and upload the serving code.
    :param cloudwatch_client: boto3 ``cloudwatch`` client, to check the rollback alarms exist.
    :param registry: a :class:`~mlops.backends.aws.registry.SageMakerRegistry`, to take a
        package's serving container when the spec names one.
    :param waiter_delay: seconds between ``DescribeEndpoint`` calls while waiting.
    :param waiter_max_attempts: calls before giving up (default 2 h at 30 s: blue/green
        updates with canary steps and a baking period take a while).
    :param account_id: the account ``settings.aws_conn_id`` reaches (a stage's; named in errors).
    """

    def __init__(self, settings: Settings, sagemaker_client=None, s3_client=None, cloudwatch_client=None,
                 runtime_client=None, registry=None, waiter_delay: int = 30, waiter_max_attempts: int = 240,
                 account_id: str = ""):
        if not settings.sagemaker_role_arn:
            raise ValueError("SageMaker hosting needs the execution role ARN (MLOPS_SAGEMAKER_ROLE)")
        self.settings = settings
        self.account_id = account_id
        self._use_clients(sagemaker=sagemaker_client, s3=s3_client, cloudwatch=cloudwatch_client,
                          sagemaker_runtime=runtime_client)
        self._registry = registry
        self.waiter_delay = waiter_delay
        self.waiter_max_attempts = waiter_max_attempts

    @property
    def registry(self):
        if self._registry is None:
            from mlops.backends.aws.registry import SageMakerRegistry

            self._registry = SageMakerRegistry(self.settings, self.sagemaker, self.aws_client("s3"))
        return self._registry

    # ------------------------------------------------------------ names
    def name(self, name: str) -> str:
        """The SageMaker name of an endpoint, endpoint config or model: ``<prefix>-<name>``."""
        return prefixed(self.settings.name_prefix, name, NAME_MAX)

    def alarm_name(self, name: str) -> str:
        """The CloudWatch name of a rollback alarm: ``<prefix>-<name>``."""
        return prefixed(self.settings.name_prefix, name, ALARM_NAME_MAX)

    def named(self, spec: EndpointSpec) -> EndpointSpec:
        """``spec`` with SageMaker's names: endpoint, config (and model), rollback alarms."""
        changes: dict[str, Any] = {"endpoint_name": self.name(spec.endpoint_name),
                                   "config_name": self.name(spec.config_name)}
        deployment_config = spec.deployment_config
        rollback = (deployment_config or {}).get("AutoRollbackConfiguration")
        if rollback and rollback.get("Alarms"):
            alarms = [{**alarm, "AlarmName": self.alarm_name(alarm["AlarmName"])} for alarm in rollback["Alarms"]]
            changes["deployment_config"] = {**deployment_config,
                                            "AutoRollbackConfiguration": {**rollback, "Alarms": alarms}}
        return replace(spec, **changes)

    def _named_alarm(self, request: dict[str, Any]) -> dict[str, Any]:
        dimensions = [{**d, "Value": self.name(d["Value"])} if d.get("Name") == "EndpointName" else d
                      for d in request.get("Dimensions", [])]
        return {**request, "AlarmName": self.alarm_name(request["AlarmName"]), "Dimensions": dimensions}

    # ------------------------------------------------------------ the Hosting port
    def deploy(self, spec: EndpointSpec) -> Endpoint:
        """Create or update the endpoint and block until it settles; see the module docstring."""
        return Endpoint(**self.collect(self.wait(self.submit(spec))))

    def describe(self, endpoint_name: str) -> Endpoint:
        """Raises :class:`~mlops.backends.base.EndpointNotFound` for a missing endpoint."""
        return self._endpoint(self._describe_endpoint(self.name(endpoint_name)))

    def delete(self, endpoint_name: str) -> None:
        """Delete the endpoint, then its endpoint config and model; anything missing is fine."""
        endpoint_name = self.name(endpoint_name)
        try:
            described = self._describe_endpoint(endpoint_name)
        except EndpointNotFound:
            return
        config_name = described["EndpointConfigName"]
        config = or_none(lambda: self.sagemaker.describe_endpoint_config(EndpointConfigName=config_name)) or {}
        models = [v["ModelName"] for v in config.get("ProductionVariants", []) if v.get("ModelName")]
        # Each delete tolerates a resource that is gone already (or_none); any other error raises.
        or_none(lambda: self.sagemaker.delete_endpoint(EndpointName=endpoint_name))
        or_none(lambda: self.sagemaker.delete_endpoint_config(EndpointConfigName=config_name))
        for model in models:
            or_none(lambda model=model: self.sagemaker.delete_model(ModelName=model))
        log.info("deleted endpoint %s (config %s, models %s)", endpoint_name, config_name, models)

    def ensure_rollback_alarms(self, requests: list[dict[str, Any]]) -> list[str]:
        """Create or update the CloudWatch alarms a blue/green update rolls back on (idempotent).

        ``requests`` are ``PutMetricAlarm`` requests (:func:`mlops.deploy.endpoint_options.rollback_alarm_requests`)
        on logical names; the alarms are created under their AWS names (:meth:`alarm_name`),
        watching the endpoint's SageMaker name, and those names are returned. ``PutMetricAlarm``
        overwrites an alarm of the same name, so a retry changes nothing.
        """
        cloudwatch = self.aws_client("cloudwatch")
        named = [self._named_alarm(request) for request in requests]
        for request in named:
            cloudwatch.put_metric_alarm(**request)
        return [request["AlarmName"] for request in named]

    def runtime_client(self):
        """boto3 ``sagemaker-runtime`` client of the project's connection and region."""
        return self.aws_client("sagemaker-runtime")

    def check_package(self, package: dict[str, Any]) -> None:
        """From this hosting's account: describe the version (another account's needs the model
        package group's resource policy), check it is Approved with the registered digest and
        artifact, and stream the artifact's sha256 (another account's bucket needs its bucket
        policy, and its KMS key's policy when SSE-KMS)."""
        from botocore.exceptions import ClientError

        try:
            self._deployable_container(package["arn"], package["model_uri"], package["sha256"])
            self._verify_artifact(package["model_uri"], package["sha256"])
        except ClientError as err:
            error = err.response.get("Error", {})
            if error.get("Code") in ("AccessDenied", "AccessDeniedException", "403"):
                raise PermissionError(
                    f"account {self.account_id or '?'} (connection {self.settings.aws_conn_id}) may not "
                    f"{err.operation_name} for {package['arn']} ({package['model_uri']}): {error.get('Message')}; "
                    "the registry's model package group policy and data bucket policy must name this stage "
                    "(include/iam/README.md, multi-account)") from None
            raise

    # ------------------------------------------------------------ submit / wait / collect
    def submit(self, spec: EndpointSpec) -> JobHandle:
        """Verify the artifact, make model and config (reusing them on a retry), then create or
        update the endpoint. The handle is not done: SageMaker is creating or updating."""
        from mlops.backends.limits import check_endpoint_spec

        spec = self.named(spec)
        check_endpoint_spec(spec)
        self._verify_artifact(spec.model_uri, spec.sha256)
        self._ensure_model(spec)
        self._ensure_endpoint_config(spec)
        deployment_config = spec.deployment_config
        if deployment_config:
            self._check_alarms(deployment_config)
        try:
            described = self._describe_endpoint(spec.endpoint_name)
        except EndpointNotFound:
            self.sagemaker.create_endpoint(EndpointName=spec.endpoint_name, EndpointConfigName=spec.config_name,
                                           Tags=self._tags(spec))
            log.info("creating endpoint %s on config %s", spec.endpoint_name, spec.config_name)
            return self._handle(spec.endpoint_name)
        status = described["EndpointStatus"]
        pending = (described.get("PendingDeploymentSummary") or {}).get("EndpointConfigName")
        if spec.config_name in (described["EndpointConfigName"], pending) and status != FAILED:
            log.info("endpoint %s is %s with config %s already: re-attaching", spec.endpoint_name, status,
                     spec.config_name)
        elif status in BUSY:
            raise RuntimeError(
                f"endpoint {spec.endpoint_name} is {status} with config {pending or described['EndpointConfigName']}; "
                "it cannot take another update until that one ends (the task's retry will try again)"
            )
        elif status == FAILED:
            # A Failed endpoint cannot be updated; SageMaker only lets it be deleted.
            log.warning("endpoint %s is Failed (%s): deleting and re-creating it", spec.endpoint_name,
                        described.get("FailureReason"))
            self.sagemaker.delete_endpoint(EndpointName=spec.endpoint_name)
            self.sagemaker.get_waiter("endpoint_deleted").wait(
                EndpointName=spec.endpoint_name,
                WaiterConfig={"Delay": self.waiter_delay, "MaxAttempts": self.waiter_max_attempts})
            self.sagemaker.create_endpoint(EndpointName=spec.endpoint_name, EndpointConfigName=spec.config_name,
                                           Tags=self._tags(spec))
        else:
            request: dict[str, Any] = {"EndpointName": spec.endpoint_name, "EndpointConfigName": spec.config_name,
                                       "RetainAllVariantProperties": False}
            if deployment_config:
                request["DeploymentConfig"] = deployment_config
            self.sagemaker.update_endpoint(**request)
            log.info("updating endpoint %s from config %s to %s", spec.endpoint_name,
                     described["EndpointConfigName"], spec.config_name)
        return self._handle(spec.endpoint_name)

    def _handle(self, endpoint_name: str) -> JobHandle:
        return JobHandle(kind="endpoint", name=endpoint_name, done=False, trigger={
            "classpath": TRIGGER,
            "kwargs": {"job_name": endpoint_name, "job_type": "endpoint", "waiter_delay": self.waiter_delay,
                       "waiter_max_attempts": self.waiter_max_attempts, "aws_conn_id": self.settings.aws_conn_id,
                       "region_name": self.settings.aws_region},
        })

    def wait(self, handle: JobHandle) -> JobHandle:
        """Block on botocore's ``endpoint_in_service`` waiter; raise with SageMaker's reason."""
        from botocore.exceptions import WaiterError

        if handle.done:
            return handle
        try:
            self.sagemaker.get_waiter("endpoint_in_service").wait(
                EndpointName=handle.name,
                WaiterConfig={"Delay": self.waiter_delay, "MaxAttempts": self.waiter_max_attempts})
        except WaiterError as err:
            reason = (err.last_response or {}).get("FailureReason") or str(err)
            raise RuntimeError(f"endpoint {handle.name} did not come InService: {reason}") from None
        return JobHandle(kind=handle.kind, name=handle.name, done=True, trigger=handle.trigger)

    def collect(self, handle: JobHandle) -> dict[str, Any]:
        """The endpoint as SageMaker runs it now (``config_name`` = its current config)."""
        described = self._describe_endpoint(handle.name)
        if described["EndpointStatus"] != IN_SERVICE:
            raise RuntimeError(f"endpoint {handle.name} is {described['EndpointStatus']}: "
                               f"{described.get('FailureReason') or 'no FailureReason given'}")
        if described.get("FailureReason"):  # InService after a rolled-back update says why here
            log.warning("endpoint %s: %s", handle.name, described["FailureReason"])
        return self._endpoint(described).to_dict()

    # ------------------------------------------------------------ pieces
    def _describe_endpoint(self, name: str) -> dict[str, Any]:
        described = or_none(lambda: self.sagemaker.describe_endpoint(EndpointName=name))
        if described is None:
            raise EndpointNotFound(f"endpoint {name} does not exist in {self.settings.aws_region}")
        return described

    def _endpoint(self, described: dict[str, Any]) -> Endpoint:
        region = self.settings.aws_region
        runtime = f"https://runtime.sagemaker.{region}.amazonaws.com"
        name = described["EndpointName"]
        return Endpoint(name=name, config_name=described["EndpointConfigName"], status=described["EndpointStatus"],
                        url=f"{runtime}/endpoints/{name}/invocations", runtime_endpoint_url=runtime, region=region)

    def _verify_artifact(self, model_uri: str, sha256: str) -> None:
        """Stream the artifact from S3 and compare digests: SageMaker must load what was approved."""
        bucket, key = split_s3_uri(model_uri)
        digest = hashlib.sha256()
        body = self.aws_client("s3").get_object(Bucket=bucket, Key=key)["Body"]
        for chunk in iter(lambda: body.read(1 << 20), b""):
            digest.update(chunk)
        if digest.hexdigest() != sha256:
            raise DigestMismatch(f"{model_uri}: sha256 {digest.hexdigest()} does not match the recorded "
                                 f"{sha256}; refusing to deploy a changed artifact")

    def _deployable_container(self, package_arn: str, model_uri: str, sha256: str) -> dict[str, Any]:
        """The version's serving container, as this account describes it: only an Approved
        version with the recorded digest and artifact."""
        from mlops.backends.aws.registry import KEY_SHA256
        from mlops.backends.base import APPROVED

        described = self.registry.describe(package_arn)
        containers = described.get("InferenceSpecification", {}).get("Containers") or []
        if not containers:
            raise ValueError(f"model package {package_arn} has no InferenceSpecification container")
        if described["ModelApprovalStatus"] != APPROVED:
            raise ValueError(f"{package_arn} is {described['ModelApprovalStatus']}; only Approved versions are deployed")
        recorded = (described.get("CustomerMetadataProperties") or {}).get(KEY_SHA256)
        if recorded != sha256:
            raise DigestMismatch(f"{package_arn} records sha256 {recorded}, the deploy was given {sha256}")
        if containers[0].get("ModelDataUrl") != model_uri:
            raise ValueError(f"{package_arn} serves {containers[0].get('ModelDataUrl')}, the spec says {model_uri}")
        return containers[0]

    def _container(self, spec: EndpointSpec) -> dict[str, Any]:
        package_arn = spec.model_package_arn
        if package_arn:
            container = self._deployable_container(package_arn, spec.model_uri, spec.sha256)
            image, environment = container["Image"], dict(container.get("Environment") or {})
        else:
            image = inference_image_uri(self.settings.aws_region)
            environment = serving_environment(self.settings, self.aws_client("s3"))
        return {"Image": image, "ModelDataUrl": spec.model_uri,
                "Environment": {**environment, **dict(spec.environment)}}

    def _ensure_model(self, spec: EndpointSpec) -> None:
        if or_none(lambda: self.sagemaker.describe_model(ModelName=spec.config_name)) is not None:
            return
        self.sagemaker.create_model(ModelName=spec.config_name, PrimaryContainer=self._container(spec),
                                    ExecutionRoleArn=self.settings.sagemaker_role_arn, Tags=self._tags(spec))

    def _ensure_endpoint_config(self, spec: EndpointSpec) -> None:
        existing = or_none(lambda: self.sagemaker.describe_endpoint_config(EndpointConfigName=spec.config_name))
        if existing is not None:
            return
        variant: dict[str, Any] = {"VariantName": VARIANT, "ModelName": spec.config_name}
        if spec.serverless:
            variant["ServerlessConfig"] = {key: int(spec.serverless[key]) for key in SERVERLESS_KEYS
                                           if spec.serverless.get(key) is not None}
        else:
            variant.update(InstanceType=spec.instance_type or self.settings.instance_type,
                           InitialInstanceCount=int(spec.initial_instance_count), InitialVariantWeight=1.0)
        request: dict[str, Any] = {"EndpointConfigName": spec.config_name, "ProductionVariants": [variant],
                                   "Tags": self._tags(spec)}
        data_capture = spec.data_capture_config
        if data_capture:
            request["DataCaptureConfig"] = data_capture
        self.sagemaker.create_endpoint_config(**request)

    def _check_alarms(self, deployment_config: dict[str, Any]) -> None:
        """SageMaker can only roll back on alarms that exist: name the missing ones up front."""
        names = [a["AlarmName"] for a in deployment_config.get("AutoRollbackConfiguration", {}).get("Alarms", [])]
        if not names:
            return
        found = {a["AlarmName"] for a in self.aws_client("cloudwatch").describe_alarms(
            AlarmNames=names).get("MetricAlarms", [])}
        missing = [name for name in names if name not in found]
        if missing:
            raise ValueError(f"rollback alarm(s) {', '.join(missing)} do not exist in CloudWatch; create them "
                             "with hosting.ensure_rollback_alarms() before a blue/green update")

    @staticmethod
    def _tags(spec: EndpointSpec) -> list[dict[str, str]]:
        tags = [{"Key": "mlops:sha256", "Value": spec.sha256}]
        if spec.model_package_arn:
            tags.append({"Key": "mlops:model-package-arn", "Value": spec.model_package_arn})
        return tags
