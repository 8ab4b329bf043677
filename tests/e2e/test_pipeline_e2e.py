"""End to end on the local backend: every DAG runs with dag.test(), then the outcome is checked
from outside Airflow: the registry, the prod endpoint over HTTP through boto3, the batch output.

Verified how: real training, tuning, registry (SQLite), HTTP runtime and batch transform on this
machine; Keyspaces through a fake session at the cassandra-driver boundary.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    home = tmp_path_factory.mktemp("e2e")
    from testkit.net import free_port

    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MLOPS_"))},
        "MLOPS_HOME": str(home),
        "MLOPS_BACKEND": "local",
        "MLOPS_RUNTIME_PORT": str(free_port()),
        "PYTHONPATH": f"{ROOT / 'plugins'}{os.pathsep}{ROOT / 'tests'}",
    }
    completed = subprocess.run([sys.executable, str(ROOT / "tests/e2e/pipeline_driver.py")], env=env,
                               capture_output=True, text=True, timeout=1800)
    (home / "driver.log").write_text(completed.stdout + completed.stderr)
    settings_env = {k: env[k] for k in ("MLOPS_HOME", "MLOPS_BACKEND", "MLOPS_RUNTIME_PORT")}
    try:
        assert completed.returncode == 0, f"driver failed, log at {home / 'driver.log'}:\n{completed.stderr[-4000:]}"
        yield json.loads(completed.stdout.strip().splitlines()[-1]), settings_env
    finally:
        subprocess.run([sys.executable, "-m", "mlops.backends.local.runtime", "stop"],
                       env={**env, **settings_env}, capture_output=True, timeout=60)


def _settings(env):
    from mlops.settings import Settings

    home = Path(env["MLOPS_HOME"])
    return Settings(backend="local", home=home, data_uri=(home / "data").as_uri(), aws_conn_id="aws_default",
                    runtime_port=int(env["MLOPS_RUNTIME_PORT"]))


def test_keyspaces_ingest_copies_every_row_through_token_ranges(pipeline):
    summary, _ = pipeline
    keyspaces = summary["keyspaces"]
    assert keyspaces["churn"]["rows"] == 1500
    assert keyspaces["retail"]["rows"] == 4000
    assert keyspaces["token_ranges_queried"] == 2 * 3


def test_an_approved_version_is_in_the_registry(pipeline):
    summary, env = pipeline
    from mlops.backends.local.registry import SQLiteRegistry

    registry = SQLiteRegistry(_settings(env).registry_db)
    approved = registry.latest_approved("churn-classifier")
    assert approved is not None
    assert approved.arn == summary["version"]["arn"]
    assert approved.approver == "policy"
    assert approved.metadata["validation_id"] and approved.metadata["dataset_digest"]


def test_prod_endpoint_answers_through_the_boto3_runtime_client(pipeline):
    summary, env = pipeline
    import boto3

    client = boto3.client("sagemaker-runtime", endpoint_url=_settings(env).runtime_url, region_name="us-east-1",
                          aws_access_key_id="local", aws_secret_access_key="local")
    response = client.invoke_endpoint(EndpointName=summary["prod"]["name"], ContentType="text/csv",
                                      Accept="text/csv", Body=summary["example_row"].encode())
    label, probability = response["Body"].read().decode().strip().split(",")
    assert label in {"True.", "False."}
    assert 0.0 <= float(probability) <= 1.0


def test_staging_endpoint_was_torn_down(pipeline):
    summary, env = pipeline
    import boto3
    from botocore.exceptions import ClientError

    client = boto3.client("sagemaker-runtime", endpoint_url=_settings(env).runtime_url, region_name="us-east-1",
                          aws_access_key_id="local", aws_secret_access_key="local")
    with pytest.raises(ClientError):
        client.invoke_endpoint(EndpointName=summary["staging"]["name"], ContentType="text/csv",
                               Body=summary["example_row"].encode())


def test_batch_output_has_one_prediction_per_input_row(pipeline):
    summary, _ = pipeline
    import pandas as pd

    from mlops.storage import to_path

    with to_path(summary["batch"]["predictions_uri"]).open("rb") as handle:
        predictions = pd.read_parquet(handle)
    assert len(predictions) == summary["batch"]["rows"] == 2000
    assert predictions["Phone"].is_unique
    assert predictions["probability"].between(0, 1).all()


def test_segmentation_wrote_every_segment(pipeline):
    summary, _ = pipeline
    import pandas as pd

    from mlops.storage import to_path

    with to_path(summary["segmentation"]["results_uri"]).open("rb") as handle:
        results = pd.read_parquet(handle)
    assert set(results["segment"]) == set(summary["segmentation"]["segments"])
    assert results["total_customers"].sum() == summary["segmentation"]["customers"]
