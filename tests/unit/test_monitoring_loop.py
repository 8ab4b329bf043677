"""The loop closes on the local backend: the prod endpoint captures its traffic, monitoring checks it
against the serving version's registration baseline, drift is announced and retraining starts.

A real runtime serves the prod endpoint with the prod config's DataCaptureConfig (its 20%
sampling); traffic is sent with boto3's ``sagemaker-runtime`` client, first from the training
distribution, then shifted on two features.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
import yaml

from mlops.backends import get_backend
from mlops.backends.base import APPROVED, EndpointSpec
from mlops.core.config import PIPELINES_DIR, load_pipeline, stage_target
from mlops.dag_defaults import PROD_ENDPOINT
from mlops.monitor.job import drift_event, retrain_decision, run_monitoring
from testkit.monitoring import churn_like_model, send_traffic, serve_prod

REQUESTS = 100
ROWS_PER_REQUEST = 20


@pytest.fixture
def prod(mlops_home):
    """The churn prod endpoint (in prod's account) serving a registered, Approved version with a baseline."""
    backend, hosting, version, capture = serve_prod(mlops_home)
    assert backend.registry.get(version.arn).status == APPROVED
    yield SimpleNamespace(backend=backend, hosting=hosting, version=version, capture=capture)
    hosting.stop_runtime()


def serve(prod, shift: bool, seed: int) -> tuple[datetime, datetime]:
    """Send the traffic; return the window that holds exactly it."""
    return send_traffic(prod.hosting, shift=shift, seed=seed, requests=REQUESTS, rows_per_request=ROWS_PER_REQUEST)


def drift_context(event: dict) -> dict:
    from mlops.core.assets import model_drift

    return {"triggering_asset_events": {model_drift("churn"): [SimpleNamespace(extra=event, timestamp=1)]}}


def test_training_traffic_is_no_drift_and_shifted_traffic_is_drift_that_starts_retraining(prod, tmp_path,
                                                                                          monkeypatch):
    assert prod.capture["InitialSamplingPercentage"] == 20  # the prod config's sampling

    since, until = serve(prod, shift=False, seed=5)
    calm = run_monitoring("churn", PROD_ENDPOINT, since, until, (tmp_path / "calm").as_uri(), prod.backend)
    # 20% of 100 requests, 20 rows each: about 400 rows, never the whole 2000
    assert 0 < calm["rows"] < REQUESTS * ROWS_PER_REQUEST and calm["rows"] % ROWS_PER_REQUEST == 0
    assert (calm["status"], calm["drift"], calm["violations"]) == ("ok", False, 0)
    assert calm["model_package_arn"] == prod.version.arn
    # the first run puts the endpoint's schedule on the serving version's baseline; this run is its execution
    assert calm["schedule"]["change"] == "created" and calm["execution"]["by"] == "monitor_model"

    since, until = serve(prod, shift=True, seed=6)
    shifted = run_monitoring("churn", PROD_ENDPOINT, since, until, (tmp_path / "shifted").as_uri(), prod.backend)
    assert shifted["drift"] and shifted["status"] == "violations"
    assert sorted(shifted["drifted_features"]) == ["charges", "plan"]
    assert shifted["schedule"] == {**calm["schedule"], "change": "unchanged"}  # the same baseline: nothing new
    assert (tmp_path / "shifted" / "report.html").is_file()
    assert (tmp_path / "shifted" / "constraint_violations.json").is_file()

    # The churn_drift event starts train_model (on_drift: retrain), naming the report and reason.
    event = drift_event(shifted)
    trigger = retrain_decision("churn", drift_context(event))
    assert trigger["kind"] == "drift" and trigger["report_uri"] == shifted["report_uri"]
    assert "charges" in trigger["reason"] and trigger["monitored_version"] == prod.version.arn

    # notify only: the same event starts no retraining.
    pipelines = tmp_path / "pipelines"
    shutil.copytree(PIPELINES_DIR, pipelines)
    raw = yaml.safe_load((pipelines / "churn.yaml").read_text())
    raw["monitoring"]["on_drift"] = "notify"
    (pipelines / "churn.yaml").write_text(yaml.safe_dump(raw))
    monkeypatch.setenv("MLOPS_PIPELINES_DIR", str(pipelines))
    assert retrain_decision("churn", drift_context(event)) is None


def test_a_run_without_a_drift_event_always_trains():
    assert retrain_decision("churn", {}) == {"kind": "manual"}


def test_nothing_in_prod_is_no_model_not_an_error(mlops_home, tmp_path):
    now = datetime.now(UTC)
    summary = run_monitoring("churn", PROD_ENDPOINT, now.replace(hour=0), now, tmp_path.as_uri())
    assert (summary["status"], summary["drift"]) == ("no_model", False)


# ---------------------------------------------------------------- shadow replay before prod approval
def test_shadow_replay_compares_a_staging_candidate_with_prod_on_captured_traffic(prod, mlops_home):
    from mlops.monitor.shadow_replay import replay_for_approval
    from mlops.operators.approval import evaluate_policy

    serve(prod, shift=False, seed=7)
    target = prod.backend.stages.resolve(stage_target(load_pipeline("churn"), "prod"))
    same = churn_like_model(mlops_home)
    flipped = churn_like_model(mlops_home, flip=True)
    prod.hosting.deploy(EndpointSpec("candidate-same", "candidate-same-1", same.uri, same.sha256))
    prod.hosting.deploy(EndpointSpec("candidate-flipped", "candidate-flipped-1", flipped.uri, flipped.sha256))
    now = datetime.now(UTC)

    agreeing = replay_for_approval("churn", PROD_ENDPOINT, "candidate-same", target, now, prod.backend)
    evidence = agreeing["evidence"]
    assert evidence["shadow_records"] == agreeing["result"]["rows"] > 0
    assert evidence["shadow_disagreement_rate"] == 0.0 and evidence["shadow_mean_abs_score_diff"] < 1e-6
    assert evidence["shadow_p95_latency_ms"] >= evidence["shadow_p50_latency_ms"] > 0
    assert evidence["shadow_scores_prod"] == evidence["shadow_scores_candidate"]

    disagreeing = replay_for_approval("churn", PROD_ENDPOINT, "candidate-flipped", target, now, prod.backend)
    assert disagreeing["evidence"]["shadow_disagreement_rate"] > 0.9
    policy = {"max_shadow_disagreement_rate": 0.05}
    assert evaluate_policy(policy, evidence)[0]
    approved, reason = evaluate_policy(policy, disagreeing["evidence"])
    assert not approved and "shadow_disagreement_rate" in reason


def test_without_captured_prod_traffic_the_evidence_says_so_and_a_policy_requiring_replay_rejects(mlops_home):
    from mlops.monitor.shadow_replay import replay_for_approval
    from mlops.operators.approval import evaluate_policy

    backend = get_backend()
    target = backend.stages.resolve(stage_target(load_pipeline("churn"), "staging"))
    replayed = replay_for_approval("churn", PROD_ENDPOINT, "candidate", target, datetime.now(UTC), backend)
    assert "no traffic to replay" in replayed["evidence"]["shadow_replay"]
    assert not evaluate_policy({"max_shadow_disagreement_rate": 0.05}, replayed["evidence"])[0]


def test_the_demo_summary_shows_a_monitoring_result_of_prod_traffic(prod):
    from tools.demo import demo_monitoring

    result = demo_monitoring({"prod": {"name": PROD_ENDPOINT}, "version": {"arn": prod.version.arn}})
    assert result["model_package_arn"] == prod.version.arn and result["rows"] > 0
    assert result["status"] == ("ok" if result["rows"] >= 100 else "insufficient_data"), result
    assert not result["drift"] and result["report_uri"].endswith("report.html")
    assert demo_monitoring({"prod": None})["status"] == "skipped"
