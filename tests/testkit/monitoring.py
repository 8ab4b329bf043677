"""A small churn-like model and its training data, for the data capture and monitoring tests."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import joblib
import numpy as np
import pandas as pd

from mlops.core.storage import pack_model

FEATURES = ["plan", "tenure", "charges", "calls"]
CATEGORICAL = ["plan"]
NUMERIC = ["tenure", "charges", "calls"]
TARGET = "churn"


def churn_like_frame(rows: int, seed: int, shift: bool = False) -> pd.DataFrame:
    """Feature rows from the training distribution; ``shift``: ``charges`` and ``plan`` moved."""
    rng = np.random.default_rng(seed)
    plans = ["basic", "plus", "pro"]
    return pd.DataFrame({
        "plan": rng.choice(plans, rows, p=[0.1, 0.2, 0.7] if shift else [0.5, 0.3, 0.2]),
        "tenure": rng.integers(0, 60, rows),
        "charges": (rng.normal(95, 15, rows) if shift else rng.normal(60, 15, rows)).round(2),
        "calls": rng.poisson(2, rows),
    })


def labels_of(frame: pd.DataFrame) -> np.ndarray:
    churn = ((frame["plan"] == "basic") & (frame["tenure"] < 24)) | (frame["charges"] > 80)
    return np.where(churn, "yes", "no")


@dataclass(frozen=True)
class ChurnLikeModel:
    uri: str
    sha256: str
    training: pd.DataFrame  # features and target, the rows it was fitted on


def churn_like_model(home: Path, rows: int = 2000, flip: bool = False) -> ChurnLikeModel:
    """Fit, write in inference.py's artifact contract (with a schema), pack under ``home``'s data;
    ``flip``: a model that learnt the opposite labels (a candidate that disagrees with everything)."""
    from sklearn.compose import make_column_transformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    frame = churn_like_frame(rows, seed=11)
    target = labels_of(frame)
    if flip:
        target = np.where(target == "yes", "no", "yes")
    estimator = make_pipeline(
        make_column_transformer((OneHotEncoder(handle_unknown="ignore"), CATEGORICAL), remainder="passthrough"),
        LogisticRegression(max_iter=2000),
    ).fit(frame[FEATURES], target)
    name = "churn-like-flipped" if flip else "churn-like"
    model_dir = home / f"model-src-{name}"
    model_dir.mkdir(parents=True, exist_ok=True)
    joblib.dump(estimator, model_dir / "model.joblib")
    (model_dir / "model.json").write_text(json.dumps({
        "feature_columns": FEATURES, "target": TARGET, "problem_type": "binary", "classes": ["no", "yes"],
        "framework": "sklearn", "categorical": CATEGORICAL,
    }))
    uri, sha = pack_model(model_dir, (home / "data" / "models" / name / "model.tar.gz").as_uri())
    return ChurnLikeModel(uri, sha, frame.assign(**{TARGET: target}))


def serve_prod(home: Path):
    """The churn prod endpoint (in prod's account, with the prod config's data capture) serving a
    registered, Approved churn-like version with a baseline and a holdout; the deployment recorded.
    Returns ``(backend, hosting, version, data_capture_config)``; stop ``hosting`` after."""
    from datetime import UTC, datetime

    from mlops.backends import get_backend
    from mlops.backends.base import SUCCEEDED, Deployment, EndpointSpec
    from mlops.core.config import load_pipeline, stage_target
    from mlops.core.settings import get_settings
    from mlops.dag_defaults import CHURN_MODEL_GROUP, PROD_ENDPOINT
    from mlops.deploy.endpoint_options import data_capture_config
    from mlops.ml.monitoring import write_baseline

    backend = get_backend()
    config = load_pipeline("churn")
    target = backend.stages.resolve(stage_target(config, "prod"))
    hosting = backend.hosting_for(target)
    model = churn_like_model(home)
    baseline = write_baseline(model.training, FEATURES, CATEGORICAL, f"{get_settings().data_uri}/run/baseline")
    holdout = home / "data" / "run" / "holdout.parquet"
    model.training.to_parquet(holdout, index=False)
    backend.registry.ensure_group(CHURN_MODEL_GROUP)
    version = backend.registry.register(CHURN_MODEL_GROUP, model.uri, model.sha256, {"holdout_roc_auc": 0.9},
                                        {"dataset_digest": "d", "code_version": "c", "hyperparameters": {},
                                         "holdout_uri": holdout.as_uri(), **baseline})
    version = backend.registry.approve(version.arn, "test", "fixture", {})
    capture = data_capture_config(get_settings(), PROD_ENDPOINT, config.section("endpoint")["prod"])
    endpoint = hosting.deploy(EndpointSpec(PROD_ENDPOINT, "prod-config-1", model.uri, model.sha256,
                                           data_capture_config=capture))
    backend.registry.record_deployment(Deployment(
        arn=version.arn, stage="prod", endpoint_name=endpoint.name, endpoint_config=endpoint.config_name,
        outcome=SUCCEEDED, deployed_at=datetime.now(UTC).isoformat(), account=target.account_id))
    return backend, hosting, version, capture


def send_traffic(hosting, shift: bool, seed: int, requests: int = 100, rows_per_request: int = 20):
    """Send churn-like traffic to the prod endpoint; flush the capture; return the window holding it."""
    from datetime import UTC, datetime

    from mlops.dag_defaults import PROD_ENDPOINT

    client = hosting.runtime_client()
    frame = churn_like_frame(requests * rows_per_request, seed=seed, shift=shift)
    since = datetime.now(UTC)
    for start in range(0, len(frame), rows_per_request):
        body = frame.iloc[start:start + rows_per_request].to_csv(header=False, index=False)
        client.invoke_endpoint(EndpointName=PROD_ENDPOINT, ContentType="text/csv", Body=body,
                               InferenceId=f"{seed}-{start}")
    hosting.flush_capture()
    return since, datetime.now(UTC)


def described_processing_job(arn: str, output_uri: str, when) -> dict:
    """A ``DescribeProcessingJob`` answer for a Model Monitor execution's processing job (moto 5.2
    has none: written here from the API reference, its shape checked by the Stubber against
    botocore's model): its one output, the monitoring output, uploaded to ``output_uri``."""
    name = arn.split("processing-job/", 1)[1]
    return {"ProcessingJobName": name, "ProcessingJobArn": arn, "ProcessingJobStatus": "Completed",
            "CreationTime": when, "RoleArn": "arn:aws:iam::123456789012:role/mlops-sagemaker",
            "AppSpecification": {"ImageUri": "156813124566.dkr.ecr.us-east-1.amazonaws.com/"
                                             "sagemaker-model-monitor-analyzer"},
            "ProcessingResources": {"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large",
                                                      "VolumeSizeInGB": 20}},
            "ProcessingOutputConfig": {"Outputs": [{"OutputName": "monitoring_output", "S3Output": {
                "S3Uri": output_uri, "LocalPath": "/opt/ml/processing/output", "S3UploadMode": "EndOfJob"}}]}}


def capture_jsonl(frame: pd.DataFrame, start, probabilities, ids: str = "id") -> str:
    """``frame`` as the capture file of SageMaker data capture (one CSV record a second from
    ``start``, the answered ``probabilities``, inference ids ``<ids>-<i>``): the lines a prod
    endpoint writes to ``<destination>/<endpoint>/AllTraffic/yyyy/mm/dd/hh/``."""
    from datetime import timedelta

    from mlops.backends.local.runtime.capture import CaptureSettings, capture_record

    settings = CaptureSettings.from_config({"EnableCapture": True, "InitialSamplingPercentage": 100,
                                            "DestinationS3Uri": "s3://capture",
                                            "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}]})
    lines = []
    for i, (row, probability) in enumerate(zip(frame.itertuples(index=False), probabilities)):
        record = capture_record(settings, ",".join(str(v) for v in row).encode(), "text/csv",
                                f"{'True.' if probability > 0.5 else 'False.'},{probability}\n".encode(),
                                "text/csv; charset=utf-8", start + timedelta(seconds=i), f"{ids}-{i}", f"e-{i}")
        lines.append(json.dumps(record))
    return "\n".join(lines) + "\n"


def ground_truth_jsonl(labels, ids: str = "id") -> str:
    """SageMaker ground-truth records labelling the inference ids ``<ids>-<i>``."""
    return "".join(json.dumps({"groundTruthData": {"data": str(label), "encoding": "CSV"},
                               "eventMetadata": {"eventId": f"{ids}-{i}"}, "eventVersion": "0"}) + "\n"
                   for i, label in enumerate(labels))
