"""The Registry port on the SageMaker Model Registry, with its histories in S3.

Why one module of this length: the Registry port's fourteen methods on one service, together with
the histories SageMaker does not keep (below); split apart, one contract's record-keeping would
live in two files.

What lives where:

* **SageMaker** holds the versions: one model package group per use case; one versioned model
  package per registration, with ``ModelApprovalStatus``, an ``InferenceSpecification`` (the
  scikit-learn serving image, the ``model.tar.gz`` and the serving code, so the package deploys
  as it is from Studio too), ``ModelMetrics`` (a JSON statistics report in S3, with its sha256 as
  ``ContentDigest``), ``MetadataProperties`` (commit, DAG run) and ``CustomerMetadataProperties``
  (sha256, dataset digest, validation id, code version, DAG run, report and golden URIs, one
  ``hp.<name>`` entry per hyperparameter, and the S3 URI of the full metadata JSON);
  approvals are ``update_model_package`` calls with an ``ApprovalDescription``.
* **S3**, under ``<MLOPS_DATA_URI>/registry/``, holds what SageMaker does not keep: the metrics
  and metadata JSON (content-addressed, immutable), the approval history (one JSON record per
  decision, with approver, reason and evidence) and the deployment history (one JSON record per
  deployment under ``registry/deployments/<stage>/``). Keys start with a UTC timestamp, so a
  listing is in time order, and records are never rewritten: concurrent writers cannot lose one
  another's records. Tags or SageMaker Lineage could hold the deployment history too, but tags
  are capped at 50 per resource and lineage queries cannot answer "newest first, by stage"
  without walking the graph; one object per record in S3 answers it with one listing.

CustomerMetadataProperties values must match ``[\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*`` (no braces or
quotes), so JSON never goes there: nested values live in the metadata JSON in S3, and text is
reduced to the allowed characters.

Group names: the port takes logical group names (``churn-classifier``); the SageMaker group is
``<MLOPS_NAME_PREFIX>-<group>`` (:meth:`SageMakerRegistry.group_name`, so the IAM policy can scope
the registry by prefix), and versions report that name in ``ModelVersion.group``. A name that has
the prefix already is kept, so a version's ``group`` can be passed back in.

An approval made in SageMaker Studio is honoured: the status is SageMaker's, and a status that
differs from the last one this registry wrote is reported with Studio's ``LastModifiedBy`` user
as the approver.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import time
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from mlops.backends.aws.clients import AwsClients, is_not_found, or_none
from mlops.backends.aws.s3 import split_s3_uri
from mlops.backends.aws.serving_container import inference_image_uri, serving_environment
from mlops.backends.base import (
    APPROVED,
    DEPLOYMENT_OUTCOMES,
    PENDING,
    REJECTED_DEPLOYMENT,
    Deployment,
    ModelPackageGroupNotFound,
    ModelPackageNotFound,
    ModelVersion,
    RegistrationIdentity,
    Registry,
    check_status,
    require_text,
    strict_json,
)
from mlops.core.naming import prefixed

if TYPE_CHECKING:
    from mlops.core.settings import Settings

CONTENT_TYPES = ["text/csv", "application/json"]

GROUP_NAME_MAX = 63  # ModelPackageGroupName (EntityName)
_GROUP_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
_METADATA_DISALLOWED = re.compile(r"[^\w\s.:/=+\-@]", re.UNICODE)
_METADATA_KEY_DISALLOWED = re.compile(r"[^\w.:/=+\-@]", re.UNICODE)
MAX_METADATA_ENTRIES = 50
MAX_METADATA_VALUE = 256
MAX_APPROVAL_DESCRIPTION = 1024
CLIENT_TOKEN_MAX = 36  # CreateModelPackage ClientToken: 1-36 of [a-zA-Z0-9-]
_UNUSABLE_PACKAGE_STATUSES = ("Failed", "Deleting")

# CustomerMetadataProperties written at registration and on decisions.
KEY_SHA256 = "sha256"
KEY_METADATA_URI = "metadata_uri"
KEY_DECISION = "decision"
KEY_DECIDED_BY = "decided_by"
KEY_DECISION_RECORD = "decision_record"
LINEAGE_KEYS = ("dataset_digest", "validation_id", "code_version", "dag_id", "run_id", "report_uri",
                "golden_uri", "baseline_statistics_uri")


def metadata_value(value: Any) -> str:
    """``value`` as a CustomerMetadataProperties value: allowed characters only, 1-256 long."""
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    text = _METADATA_DISALLOWED.sub("_", text).strip() or "_"
    return text[:MAX_METADATA_VALUE]


def drift_check_baselines(metadata: dict[str, Any]) -> dict[str, Any] | None:
    """``DriftCheckBaselines.ModelDataQuality`` from the registration baseline's ``s3://`` URIs in
    ``metadata`` (``baseline_statistics_uri``, ``baseline_constraints_uri``), or None."""
    statistics, constraints = metadata.get("baseline_statistics_uri"), metadata.get("baseline_constraints_uri")
    if not (isinstance(statistics, str) and isinstance(constraints, str)
            and statistics.startswith("s3://") and constraints.startswith("s3://")):
        return None
    return {"ModelDataQuality": {
        "Statistics": {"ContentType": "application/json", "S3Uri": statistics},
        "Constraints": {"ContentType": "application/json", "S3Uri": constraints},
    }}


def metadata_key(name: str) -> str:
    return (_METADATA_KEY_DISALLOWED.sub("_", name) or "_")[:128]


def _utc(value: datetime | str, name: str) -> datetime:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{name}={value!r} is not an ISO-8601 timestamp") from None
    if not isinstance(value, datetime):
        raise ValueError(f"{name} must be a datetime or an ISO-8601 string, got {type(value).__name__}")
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _iso(value: datetime) -> str:
    return _utc(value, "time").isoformat(timespec="microseconds")


def _record_key(prefix: str, at: datetime) -> str:
    """``<prefix>/<UTC timestamp>-<recording ns>-<random>.json``: lists in time, then record, order."""
    return f"{prefix}/{at:%Y%m%dT%H%M%S%fZ}-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.json"


class SageMakerRegistry(AwsClients, Registry):
    """The SageMaker Model Registry behind the Registry port.

    :param settings: project settings: region, ``MLOPS_DATA_URI`` (``s3://``, the root of the
        histories and reports), the AWS connection, the prod instance type.
    :param sagemaker_client: a boto3 ``sagemaker`` client (default: from the AWS connection).
    :param s3_client: a boto3 ``s3`` client (default: from the AWS connection).
    :param image_uri: serving image of new packages (default: the scikit-learn inference image of
        :func:`~mlops.backends.aws.serving_container.inference_image_uri`, the one training uses).
    """

    def __init__(self, settings: Settings, sagemaker_client=None, s3_client=None, image_uri: str | None = None):
        self.settings = settings
        self.bucket, prefix = split_s3_uri(settings.data_uri)
        self.prefix = f"{prefix.strip('/')}/registry".lstrip("/")
        self._use_clients(sagemaker=sagemaker_client, s3=s3_client)
        self._image_uri = image_uri
        self.page_size = 100  # ListModelPackages MaxResults

    def __repr__(self) -> str:
        return f"{type(self).__name__}(s3://{self.bucket}/{self.prefix})"

    # ------------------------------------------------------------ clients
    @property
    def image_uri(self) -> str:
        if self._image_uri is None:
            self._image_uri = inference_image_uri(self.settings.aws_region)
        return self._image_uri

    # ------------------------------------------------------------ S3 records
    def _uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def _put_json(self, key: str, text: str) -> str:
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=text.encode("utf-8"),
                           ContentType="application/json")
        return self._uri(key)

    def _put_content_addressed(self, folder: str, text: str) -> tuple[str, str]:
        """Store ``text`` under its own sha256 (immutable, so a retry rewrites identical bytes)."""
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        return self._put_json(f"{self.prefix}/{folder}/{digest}.json", text), digest

    def _read_json(self, uri: str) -> Any:
        bucket, key = split_s3_uri(uri)
        return json.loads(self.s3.get_object(Bucket=bucket, Key=key)["Body"].read())

    def _list_records(self, prefix: str) -> list[dict[str, Any]]:
        """Every JSON record under ``prefix``, newest key first."""
        keys = []
        paginator = self.s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=f"{prefix}/"):
            keys += [item["Key"] for item in page.get("Contents", []) if item["Key"].endswith(".json")]
        return [self._read_json(self._uri(key)) for key in sorted(keys, reverse=True)]

    # ------------------------------------------------------------ groups and versions
    def group_name(self, group: str) -> str:
        """The SageMaker name of the model package group ``group``: ``<prefix>-<group>``.

        :raises ValueError: ``group`` is not 1-63 letters, digits and hyphens.
        """
        self._check_group_name(group)
        return prefixed(self.settings.name_prefix, group, GROUP_NAME_MAX)

    def ensure_group(self, group: str, description: str = "") -> None:
        """Create the model package group unless it exists (a concurrent create is fine too)."""
        from botocore.exceptions import ClientError

        group = self.group_name(group)
        existing = or_none(lambda: self.sagemaker.describe_model_package_group(ModelPackageGroupName=group))
        if existing is not None:
            return
        try:
            self.sagemaker.create_model_package_group(
                ModelPackageGroupName=group,
                ModelPackageGroupDescription=description or f"{group} (airflow-sagemaker-mlops)",
            )
        except ClientError as err:
            if "already exists" not in err.response.get("Error", {}).get("Message", "").lower():
                raise

    @staticmethod
    def _check_group_name(group: str) -> None:
        if not isinstance(group, str) or not _GROUP_NAME.fullmatch(group):
            raise ValueError(
                f"model package group name {group!r} must be 1-63 letters, digits and hyphens, "
                "starting and ending with a letter or digit"
            )

    def register(
        self, group: str, model_uri: str, sha256: str, metrics: dict[str, Any],
        metadata: dict[str, Any],
    ) -> ModelVersion:
        """Create the next model package of ``group`` as ``PendingManualApproval``, or return
        the package of ``group`` registered with the same :class:`RegistrationIdentity`
        (``reused=True``).

        With an identity, three things keep one identity to one package:

        * before creating, the group's packages are listed and the one whose description
          carries the identity key (:meth:`client_token`'s source; descriptions cannot be
          changed) and whose metadata JSON has the same identity is returned;
        * ``CreateModelPackage`` carries a ``ClientToken`` derived from the group and the
          identity only, so SageMaker answers a concurrent second run (and a retry) within its
          idempotency window with the first run's package;
        * should SageMaker refuse the token because the second request differs from the first,
          the package registered by the first is looked up and returned.

        Without an identity the token is derived from the group, digest, metrics and metadata
        (which includes the DAG run): only a retry gets its first attempt's package back.

        :raises ModelPackageGroupNotFound: the group was never created (:meth:`ensure_group`).
        :raises ValueError: naming the malformed field.
        """
        from botocore.exceptions import ClientError

        group = self.group_name(group)
        require_text(model_uri, "model_uri")
        if not model_uri.startswith("s3://"):
            raise ValueError(f"model_uri must be an s3:// URI on the aws backend, got {model_uri!r}")
        if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
            raise ValueError(f"sha256 must be 64 hexadecimal characters, got {sha256!r}")
        sha256 = sha256.lower()
        metrics_text = strict_json(metrics, "metrics")
        metadata_text = strict_json(metadata, "metadata")
        identity = RegistrationIdentity.from_metadata(metadata)
        if identity is not None and (existing := self._registered(group, identity)) is not None:
            return dataclasses.replace(existing, reused=True)
        metrics_uri, metrics_digest = self._put_content_addressed(f"{group}/metrics", metrics_text)
        metadata_uri, _ = self._put_content_addressed(f"{group}/metadata", metadata_text)
        if identity is not None:
            token = self.client_token(group, identity)
            description = f"{group}: model.tar.gz sha256 {sha256}; identity {identity.key(group)}"
        else:
            token = hashlib.sha256("\x1f".join((group, sha256, metrics_text, metadata_text)).encode()).hexdigest()
            description = f"{group}: model.tar.gz sha256 {sha256}"
        container = {
            "Image": self.image_uri,
            "ModelDataUrl": model_uri,
            "Environment": serving_environment(self.settings, self.s3),
        }
        request = {
            "ModelPackageGroupName": group,
            "ModelPackageDescription": description,
            "InferenceSpecification": {
                "Containers": [container],
                "SupportedContentTypes": CONTENT_TYPES,
                "SupportedResponseMIMETypes": CONTENT_TYPES,
                "SupportedRealtimeInferenceInstanceTypes": [self.settings.instance_type],
                "SupportedTransformInstanceTypes": [self.settings.instance_type],
            },
            "ModelApprovalStatus": PENDING,
            "ModelMetrics": {"ModelQuality": {"Statistics": {
                "ContentType": "application/json", "S3Uri": metrics_uri,
                "ContentDigest": f"sha256:{metrics_digest}",
            }}},
            "MetadataProperties": {
                "CommitId": str(metadata.get("code_version", "unknown"))[:1024],
                "GeneratedBy": f"airflow:{metadata.get('dag_id', '')}/{metadata.get('run_id', '')}"[:1024],
                "ProjectId": group,
            },
            "CustomerMetadataProperties": self._customer_metadata(sha256, metadata, metadata_uri),
            "ClientToken": token[:CLIENT_TOKEN_MAX],
        }
        baselines = drift_check_baselines(metadata)
        if baselines:
            request["DriftCheckBaselines"] = baselines
        try:
            arn = self.sagemaker.create_model_package(**request)["ModelPackageArn"]
        except ClientError as err:
            message = err.response.get("Error", {}).get("Message", "").lower()
            if "group" in message and ("not exist" in message or "not found" in message):
                raise ModelPackageGroupNotFound(
                    f"model package group {group!r} does not exist; create it with ensure_group() first"
                ) from None
            if identity is not None and (existing := self._registered(group, identity)) is not None:
                return dataclasses.replace(existing, reused=True)  # a concurrent run created it
            raise
        described = self._describe(arn)
        # SageMaker answered the token with another run's package: its metadata JSON is not ours.
        reused = (described.get("CustomerMetadataProperties") or {}).get(KEY_METADATA_URI) != metadata_uri
        return dataclasses.replace(self._version(described), reused=reused)

    @staticmethod
    def client_token(group: str, identity: RegistrationIdentity) -> str:
        """``CreateModelPackage``'s ``ClientToken`` for ``identity`` in the SageMaker group ``group``:
        the first 36 hex characters of :meth:`RegistrationIdentity.key`, the same for every run."""
        return identity.key(group)[:CLIENT_TOKEN_MAX]

    def _registered(self, group: str, identity: RegistrationIdentity) -> ModelVersion | None:
        """The newest usable package of ``group`` registered with ``identity``, or None.

        Candidates are picked from the listing by the identity key in their description; the
        identity is then checked against the package's metadata JSON (exact hyperparameters,
        which the customer metadata holds only as sanitised text).
        """
        marker = f"identity {identity.key(group)}"
        for summary in self._summaries(group, None):
            if (marker not in (summary.get("ModelPackageDescription") or "")
                    or summary.get("ModelPackageStatus") in _UNUSABLE_PACKAGE_STATUSES):
                continue
            version = self.get(summary["ModelPackageArn"])
            if RegistrationIdentity.from_metadata(version.metadata) == identity:
                return version
        return None

    @staticmethod
    def _customer_metadata(sha256: str, metadata: dict[str, Any], metadata_uri: str) -> dict[str, str]:
        properties = {KEY_SHA256: sha256, KEY_METADATA_URI: metadata_uri}
        for key in LINEAGE_KEYS:
            if metadata.get(key) not in (None, ""):
                properties[key] = metadata_value(metadata[key])
        for name, value in sorted((metadata.get("hyperparameters") or {}).items()):
            if len(properties) >= MAX_METADATA_ENTRIES - 3:  # room for the decision entries
                break
            properties[metadata_key(f"hp.{name}")] = metadata_value(value)
        return properties

    def get(self, arn: str) -> ModelVersion:
        """The model package ``arn``; raises :class:`ModelPackageNotFound` (a ``KeyError``)."""
        return self._version(self._describe(arn))

    def _describe(self, arn: str) -> dict[str, Any]:
        described = or_none(lambda: self.sagemaker.describe_model_package(ModelPackageName=arn))
        if described is None:
            raise ModelPackageNotFound(f"model package {arn!r} is not in the SageMaker Model Registry")
        return described

    def _summaries(self, group: str, status: str | None, first_page_only: bool = False) -> list[dict[str, Any]]:
        """Package summaries of ``group``, newest first: sorted by SageMaker *and* by version.

        SageMaker's default order is oldest first; the explicit ``SortOrder`` matters.
        """
        from botocore.exceptions import ClientError

        request: dict[str, Any] = {"ModelPackageGroupName": self.group_name(group), "SortBy": "CreationTime",
                                   "SortOrder": "Descending", "MaxResults": self.page_size}
        if status is not None:
            request["ModelApprovalStatus"] = status
        summaries = []
        try:
            for page in self.sagemaker.get_paginator("list_model_packages").paginate(**request):
                summaries += page.get("ModelPackageSummaryList", [])
                if first_page_only:
                    break
        except ClientError as err:
            if is_not_found(err):
                return []
            raise
        return sorted(summaries, key=lambda s: (s.get("ModelPackageVersion") or 0, s["CreationTime"]),
                      reverse=True)

    def list_versions(self, group: str, status: str | None = None) -> list[ModelVersion]:
        """Versions of ``group``, newest first, optionally only with ``status``."""
        if status is not None:
            check_status(status)
        return [self.get(summary["ModelPackageArn"]) for summary in self._summaries(group, status)]

    def latest_approved(self, group: str) -> ModelVersion | None:
        """The newest Approved version (highest version number), described alone."""
        summaries = self._summaries(group, APPROVED, first_page_only=True)
        return self.get(summaries[0]["ModelPackageArn"]) if summaries else None

    # ------------------------------------------------------------ approvals
    def set_status(
        self, arn: str, status: str, approver: str, reason: str, evidence: dict[str, Any]
    ) -> ModelVersion:
        """Set ``ModelApprovalStatus`` with ``ApprovalDescription`` = ``reason`` and record the
        decision (approver, reason, evidence) in the approval history in S3.

        A package that has ``status`` already is returned as it is: no update, no record.

        :raises ValueError: unknown status, empty approver, or evidence that is not JSON.
        :raises ModelPackageNotFound: unknown ``arn``.
        """
        check_status(status)
        require_text(approver, "approver")
        if not isinstance(reason, str):
            raise ValueError(f"reason must be a string, got {type(reason).__name__}")
        evidence_text = strict_json(evidence, "evidence")
        described = self._describe(arn)
        previous = self._version(described)
        if previous.status == status:
            return previous
        decided_at = datetime.now(UTC)
        record_key = _record_key(self._approvals_prefix(previous), decided_at)
        properties = {
            **described.get("CustomerMetadataProperties", {}),
            KEY_DECISION: status, KEY_DECIDED_BY: metadata_value(approver),
            KEY_DECISION_RECORD: self._uri(record_key),
        }
        # The full map every time: SageMaker merges it, and moto replaces the map with it.
        self.sagemaker.update_model_package(
            ModelPackageArn=arn, ModelApprovalStatus=status,
            ApprovalDescription=reason[:MAX_APPROVAL_DESCRIPTION], CustomerMetadataProperties=properties,
        )
        self._put_json(record_key, json.dumps({
            "arn": arn, "previous_status": previous.status, "status": status, "approver": approver,
            "reason": reason, "evidence": json.loads(evidence_text), "decided_at": _iso(decided_at),
        }, sort_keys=True))
        return self.get(arn)

    def record_external_decision(self, arn: str, status: str, approver: str, reason: str,
                                 evidence: dict[str, Any]) -> None:
        """Add a decision made outside this registry (in SageMaker Studio) to the approval history.

        The package is not updated (its status already is ``status``): no second
        ``UpdateModelPackage``, so no second state-change event for anyone listening.
        """
        check_status(status)
        require_text(approver, "approver")
        evidence = json.loads(strict_json(evidence, "evidence"))
        version = self.get(arn)
        history = self.approval_history(arn)
        decided_at = datetime.now(UTC)
        self._put_json(_record_key(self._approvals_prefix(version), decided_at), json.dumps({
            "arn": arn, "previous_status": history[0]["status"] if history else PENDING, "status": status,
            "approver": approver, "reason": reason, "evidence": {**evidence, "external": True},
            "decided_at": _iso(decided_at),
        }, sort_keys=True))

    def approval_trigger(self, arn: str, waiter_delay: int = 60, waiter_max_attempts: int = 1440) -> dict[str, Any]:
        """The trigger that waits in the triggerer for a decision on ``arn`` (classpath + kwargs)."""
        return {
            "classpath": "mlops.triggers.sagemaker_registry.ModelPackageApprovalTrigger",
            "kwargs": {"model_package_arn": arn, "waiter_delay": waiter_delay,
                       "waiter_max_attempts": waiter_max_attempts, "aws_conn_id": self.settings.aws_conn_id,
                       "region_name": self.settings.aws_region},
        }

    def _approvals_prefix(self, version: ModelVersion) -> str:
        return f"{self.prefix}/{version.group}/approvals/{version.version:06d}"

    def approval_history(self, arn: str) -> list[dict[str, Any]]:
        """Every decision this registry recorded on ``arn``, newest first (see SQLiteRegistry)."""
        return self._list_records(self._approvals_prefix(self.get(arn)))

    # ------------------------------------------------------------ deployments
    def record_deployment(self, deployment: Deployment) -> None:
        """Write one deployment record to ``registry/deployments/<stage>/`` in S3."""
        if deployment.outcome not in DEPLOYMENT_OUTCOMES:
            raise ValueError(
                f"outcome {deployment.outcome!r} is not one of {', '.join(DEPLOYMENT_OUTCOMES)}"
            )
        stage = require_text(deployment.stage, "stage")
        if not re.fullmatch(r"[a-z0-9-]+", stage):
            raise ValueError(f"stage {stage!r} must be lower-case letters, digits and hyphens")
        require_text(deployment.endpoint_name, "endpoint_name")
        if deployment.outcome != REJECTED_DEPLOYMENT:
            require_text(deployment.endpoint_config, "endpoint_config")
        deployed_at = _utc(deployment.deployed_at, "deployed_at")
        strict_json(deployment.detail, "detail")
        self._describe(deployment.arn)  # an unknown package raises ModelPackageNotFound
        record = {**deployment.to_dict(), "deployed_at_utc": _iso(deployed_at)}
        self._put_json(_record_key(f"{self.prefix}/deployments/{stage}", deployed_at),
                       json.dumps(record, sort_keys=True, default=str))

    def deployments(self, stage: str | None = None, account: str | None = None) -> list[Deployment]:
        """Deployment history, newest ``deployed_at`` first (ties: last recorded first); only
        ``stage``'s and the endpoints in ``account`` when given."""
        prefix = f"{self.prefix}/deployments" + (f"/{stage}" if stage else "")
        records = self._list_records(prefix)
        records.sort(key=lambda r: r["deployed_at_utc"], reverse=True)  # stable: keeps record order
        fields = set(Deployment.__dataclass_fields__)
        found = [Deployment(**{k: v for k, v in record.items() if k in fields}) for record in records]
        return [d for d in found if account is None or d.account == account]

    # ------------------------------------------------------------ sharing with stage accounts
    @staticmethod
    def group_policy(group_arn: str, principals: list[str]) -> dict[str, Any]:
        """The model package group's resource policy: ``principals`` (the stages' deployment roles,
        in their accounts) may describe the group and its versions, nothing else. Deploying a
        version needs no more: the stage's model is created from the version's container, whose
        artifact the data bucket's policy lets the stage read (``include/iam/``)."""
        principal = {"AWS": sorted(principals)}
        return {"Version": "2012-10-17", "Statement": [
            {"Sid": "StageAccountsDescribeTheGroup", "Effect": "Allow", "Principal": principal,
             "Action": ["sagemaker:DescribeModelPackageGroup"], "Resource": group_arn},
            {"Sid": "StageAccountsDescribeItsVersions", "Effect": "Allow", "Principal": principal,
             "Action": ["sagemaker:DescribeModelPackage"],
             "Resource": group_arn.replace(":model-package-group/", ":model-package/") + "/*"},
        ]}

    def share_group(self, group: str, targets: list) -> None:
        """Put the group's resource policy naming the deployment roles of ``targets`` in other
        accounts (:meth:`group_policy`). An unchanged policy is left alone; without a target in
        another account nothing is called (a policy put earlier stays: remove it with
        ``DeleteModelPackageGroupPolicy`` when a stage moves back)."""
        name = self.group_name(group)
        principals = sorted({t.principal_arn for t in targets if t.cross_account})
        if not principals:
            return
        current = or_none(lambda: self.sagemaker.get_model_package_group_policy(ModelPackageGroupName=name))
        group_arn = self.sagemaker.describe_model_package_group(ModelPackageGroupName=name)["ModelPackageGroupArn"]
        policy = self.group_policy(group_arn, principals)
        if current is not None and json.loads(current["ResourcePolicy"]) == policy:
            return
        self.sagemaker.put_model_package_group_policy(ModelPackageGroupName=name, ResourcePolicy=json.dumps(policy))

    # ------------------------------------------------------------ packages -> ModelVersion
    def _version(self, described: dict[str, Any]) -> ModelVersion:
        properties = described.get("CustomerMetadataProperties") or {}
        containers = described.get("InferenceSpecification", {}).get("Containers") or [{}]
        statistics = described.get("ModelMetrics", {}).get("ModelQuality", {}).get("Statistics", {})
        metrics = self._read_json(statistics["S3Uri"]) if statistics.get("S3Uri") else {}
        if properties.get(KEY_METADATA_URI):
            metadata = self._read_json(properties[KEY_METADATA_URI])
        else:  # registered elsewhere: what the customer metadata says
            metadata = {k: v for k, v in properties.items() if k not in (KEY_SHA256,)}
        status = described["ModelApprovalStatus"]
        if properties.get(KEY_DECISION) == status:
            approver = properties.get(KEY_DECIDED_BY)
        elif status == PENDING:
            approver = None
        else:  # decided outside this registry, e.g. in SageMaker Studio
            modified_by = described.get("LastModifiedBy") or {}
            approver = (modified_by.get("UserProfileName") or modified_by.get("IamIdentity", {}).get("Arn")
                        or "sagemaker")
        created = described["CreationTime"]
        return ModelVersion(
            group=described["ModelPackageGroupName"],
            version=int(described["ModelPackageVersion"]),
            arn=described["ModelPackageArn"],
            status=status,
            model_uri=containers[0].get("ModelDataUrl", ""),
            sha256=properties.get(KEY_SHA256, ""),
            metrics=metrics,
            metadata=metadata,
            created_at=_iso(created if isinstance(created, datetime) else datetime.fromisoformat(str(created))),
            approver=approver,
            approval_reason=described.get("ApprovalDescription") or None,
        )

    def describe(self, arn: str) -> dict[str, Any]:
        """SageMaker's ``DescribeModelPackage`` answer for ``arn`` (another account's version
        when its group's resource policy allows this one); raises :class:`ModelPackageNotFound`."""
        return self._describe(arn)
