"""The demo's chain as the scheduler tests run it, and how they read its outcomes outside Airflow:
the registry, the prod endpoint over HTTP through boto3, Parquet rows in the object store.

Shared by the LocalExecutor run (``tests/e2e/test_scheduler.py``) and the CeleryExecutor run
(``tests/e2e/test_celery.py``), so both assert the same outcomes.
"""

from __future__ import annotations

import yaml

from testkit.airflow import ROOT

CHURN_ROWS, RETAIL_ROWS, SCORING_ROWS = 1500, 4000, 2000


def small_pipelines(folder):
    """The shipped pipeline configs with budgets for a test: fewer trials, a short AutoML budget,
    and a prod latency policy that a busy CI machine cannot fail."""
    folder.mkdir()
    for source in (ROOT / "include" / "pipelines").glob("*.yaml"):
        config = yaml.safe_load(source.read_text())
        if "training" in config:
            config["training"]["n_trials"] = 2
        if "autopilot" in config:
            config["autopilot"]["local_time_budget_s"] = 10
        if "endpoint" in config:
            config["endpoint"]["test"]["requests"] = 20
            config["approval"]["prod"]["max_p95_latency_ms"] = 10_000
        (folder / source.name).write_text(yaml.safe_dump(config, sort_keys=False))
    return folder


def run_the_demos_chain(api, trigger_autopilot: bool = False) -> dict:
    """Sample data landed, the demo's chain run and answered by the policy over the HITL REST API."""
    from tools.demo import PolicyApprover, collect_summary, generate_sample_data, run_chain

    generate_sample_data(CHURN_ROWS, RETAIL_ROWS)
    approver = PolicyApprover(api)
    runs = run_chain(api, approver, timeout=1500, trigger_autopilot=trigger_autopilot)
    summary = collect_summary(lambda dag_id, task_id, key="return_value": api.xcom(dag_id, runs[dag_id],
                                                                                   task_id, key))
    return {"runs": runs, "summary": summary, "answered": approver.answered}


def registry():
    from mlops.backends import get_backend

    return get_backend().registry


def runtime_client(stage: str = "prod"):
    """A ``sagemaker-runtime`` client of ``stage``'s account (the local twin's stages are accounts
    of their own: a client of one does not see the other's endpoints)."""
    from mlops.backends import get_backend
    from mlops.core.config import load_pipeline, stage_target

    backend = get_backend()
    return backend.hosting_for(backend.stages.resolve(stage_target(load_pipeline("churn"), stage))).runtime_client()


def read_parquet(uri: str):
    import pandas as pd

    from mlops.core.storage import to_path

    with to_path(uri).open("rb") as handle:
        return pd.read_parquet(handle)


def golden_answer(summary: dict) -> tuple[str, float]:
    """What the registered model answers for the summary's ``example_row`` (the first golden row):
    the probability of the positive class computed at training time, and the label it picks
    (``True.`` above one half, as ``predict_proba``'s argmax over ``["False.", "True."]``)."""
    from mlops.deploy.endpoint_checks import load_golden

    version = registry().get(summary["registered"]["arn"])
    _, rows, probabilities = load_golden(version.metadata["golden_uri"])
    assert ",".join(str(v) for v in rows[0]) == summary["example_row"]
    probability = float(probabilities[0])
    return ("True." if probability > 0.5 else "False."), probability


def invoke(endpoint: str, row: str, stage: str = "prod") -> tuple[str, float]:
    body = runtime_client(stage).invoke_endpoint(EndpointName=endpoint, ContentType="text/csv", Accept="text/csv",
                                            Body=row.encode())["Body"].read().decode()
    label, probability = body.strip().split(",")
    return label, float(probability)


def assert_prod_answers_and_staging_is_gone(summary: dict) -> None:
    """The prod endpoint gives the registered golden answer over HTTP; staging, asked in its own
    account where it lived, is "not found" (torn down after the deploy)."""
    import pytest
    from botocore.exceptions import ClientError

    from mlops.backends.local.accounts import STAGE_ACCOUNTS

    label, probability = invoke(summary["prod"]["name"], summary["example_row"])
    expected_label, expected_probability = golden_answer(summary)
    assert label == expected_label
    assert probability == pytest.approx(expected_probability, abs=1e-6)  # endpoint.test.tolerance
    with pytest.raises(ClientError) as raised:
        invoke(summary["staging"]["name"], summary["example_row"], stage="staging")
    assert raised.value.response["Error"]["Code"] == "ValidationError"
    assert raised.value.response["Error"]["Message"] == (
        f"Endpoint {summary['staging']['name']} of account {STAGE_ACCOUNTS['staging']} not found.")
