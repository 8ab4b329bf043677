"""Approvals: the policy decides from thresholds, a person decides through HITL; both are
recorded in the registry with approver, reason and evidence.

Verified how: the operators run directly against a SQLite registry; the HITL request write is
captured at the Task SDK boundary (``upsert_hitl_detail``), as no API server runs in unit tests.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mlops.backends.base import APPROVED, PENDING, REJECTED
from mlops.operators.approval import ModelApprovalOperator, ProdApprovalOperator, evaluate_policy

SHA = "a" * 64


class FakeTI:
    map_index = -1

    def __init__(self):
        self.pushed = {}

    def xcom_push(self, key, value):
        self.pushed[key] = value


@pytest.fixture
def registry(mlops_home):
    from mlops.backends.local.registry import SQLiteRegistry
    from mlops.core.settings import get_settings

    registry = SQLiteRegistry(get_settings().registry_db)
    registry.ensure_group("churn-classifier")
    return registry


@pytest.fixture
def version(registry):
    return registry.register("churn-classifier", "file:///m/model.tar.gz", SHA, {"holdout_roc_auc": 0.9}, {})


def approval(version, mode="policy", auc=0.91, **kwargs):
    return ModelApprovalOperator(
        task_id="approve_model", subject="Approve?", model_package_arn=version.arn,
        evidence={"holdout_roc_auc": auc}, thresholds={"min_holdout_roc_auc": 0.8}, mode=mode,
        report_uri="file:///m/report.html", **kwargs,
    )


def test_policy_approves_when_every_threshold_holds():
    approved, reason = evaluate_policy({"min_auc": 0.8, "max_p95_ms": 100}, {"auc": 0.85, "p95_ms": 40})
    assert approved
    assert "auc=0.85 >= 0.8" in reason and "p95_ms=40 <= 100" in reason


def test_policy_rejects_naming_the_metric_that_missed():
    approved, reason = evaluate_policy({"min_auc": 0.8, "max_p95_ms": 100}, {"auc": 0.85, "p95_ms": 140})
    assert not approved
    assert "p95_ms=140 > 100" in reason


def test_policy_never_approves_blind():
    assert evaluate_policy({"min_auc": 0.8}, {}) == (False, "policy: auc missing from the evidence")
    assert evaluate_policy({}, {"auc": 1.0})[0] is False


def test_policy_threshold_names_must_say_min_or_max():
    with pytest.raises(ValueError, match="at_least_auc"):
        evaluate_policy({"at_least_auc": 0.8}, {"auc": 0.9})


def test_policy_mode_approves_and_records_the_policy_as_approver(registry, version):
    ti = FakeTI()
    approval(version).execute({"ti": ti, "task": None})

    decided = registry.get(version.arn)
    assert decided.status == APPROVED
    assert decided.approver == "policy"
    assert "holdout_roc_auc=0.91 >= 0.8" in decided.approval_reason
    history = registry.approval_history(version.arn)
    assert history[0]["evidence"]["holdout_roc_auc"] == 0.91
    assert history[0]["evidence"]["mode"] == "policy"
    assert ti.pushed["decision"]["approved"] is True


def test_policy_mode_rejects_below_threshold_and_records_why(registry, version):
    ti = FakeTI()
    approval(version, auc=0.7).execute({"ti": ti, "task": None})

    decided = registry.get(version.arn)
    assert decided.status == REJECTED
    assert "holdout_roc_auc=0.7 < 0.8" in decided.approval_reason
    assert ti.pushed["decision"]["approved"] is False


def test_manual_mode_asks_a_person_and_waits(monkeypatch, registry, version):
    from airflow.providers.standard.operators import hitl
    from airflow.sdk.exceptions import TaskAwaitingInput

    requests = []
    monkeypatch.setattr(hitl, "upsert_hitl_detail", lambda **kwargs: requests.append(kwargs))

    class TaskInstance(FakeTI):
        id = "0192f0c1-0000-7000-8000-000000000000"

    ti = TaskInstance()
    with pytest.raises(TaskAwaitingInput):
        approval(version, mode="manual", auc=0.7).execute({"ti": ti, "task_instance": ti})

    assert requests[0]["options"] == ["Approve", "Reject"]
    assert "holdout_roc_auc" in requests[0]["body"] and "report.html" in requests[0]["body"]
    assert "The policy recommends:** Reject (policy: holdout_roc_auc=0.7 < 0.8)" in requests[0]["body"]
    assert ti.pushed["recommendation"] == {"approved": False, "reason": "policy: holdout_roc_auc=0.7 < 0.8"}
    assert registry.get(version.arn).status == PENDING


def test_the_policy_account_answering_as_recommended_is_recorded_as_the_policy(registry, version):
    event = {"chosen_options": ["Approve"], "params_input": {}, "responded_at": datetime.now(UTC),
             "responded_by_user": {"id": "policy", "name": "policy"}}
    approval(version, mode="manual").execute_complete({"ti": FakeTI(), "task": None}, event)

    decided = registry.get(version.arn)
    assert decided.approver == "policy" and decided.approval_reason == "policy: holdout_roc_auc=0.91 >= 0.8"


def test_the_policy_account_answering_against_the_recommendation_says_so(registry, version):
    event = {"chosen_options": ["Approve"], "params_input": {}, "responded_at": datetime.now(UTC),
             "responded_by_user": {"id": "policy", "name": "policy"}}
    approval(version, mode="manual", auc=0.7).execute_complete({"ti": FakeTI(), "task": None}, event)

    assert "against the policy's recommendation" in registry.get(version.arn).approval_reason


def test_a_persons_answer_is_recorded_with_their_name(registry, version):
    event = {
        "chosen_options": ["Approve"], "params_input": {}, "responded_at": datetime.now(UTC),
        "responded_by_user": {"id": "7", "name": "dana"},
    }
    approval(version, mode="manual").execute_complete({"ti": FakeTI(), "task": None}, event)

    decided = registry.get(version.arn)
    assert decided.status == APPROVED
    assert decided.approver == "dana"


# ---------------------------------------------------------------- a reused version decided already
@pytest.fixture
def hitl_requests(monkeypatch) -> list[dict]:
    """Every HITL request the operators write (none may be written for a decided version)."""
    from airflow.providers.standard.operators import hitl

    requests: list[dict] = []
    monkeypatch.setattr(hitl, "upsert_hitl_detail", lambda **kwargs: requests.append(kwargs))
    return requests


LINEAGE = {"dataset_digest": "d" * 64, "code_version": "0123456789ab", "hyperparameters": {"C": 1.0}}


def reused_after(registry, decide):
    """The version a second train_model run on the same data gets back, after ``decide(arn)``
    settled the first run's registration."""
    first = registry.register("churn-classifier", "file:///run-1/model.tar.gz", SHA, {"holdout_roc_auc": 0.9},
                              {**LINEAGE, "run_id": "run-1"})
    decide(first.arn)
    again = registry.register("churn-classifier", "file:///run-2/model.tar.gz", "b" * 64,
                              {"holdout_roc_auc": 0.91}, {**LINEAGE, "run_id": "run-2"})
    assert (again.arn, again.reused) == (first.arn, True)
    return again


def in_a_run(operator):
    """``operator`` followed by ``announce_approved`` (as in train_model) and its task context."""
    from airflow.providers.standard.operators.empty import EmptyOperator
    from airflow.sdk import DAG

    with DAG("train_model", schedule=None):
        operator >> EmptyOperator(task_id="announce_approved")

    class TaskInstance(FakeTI):
        id = "0192f0c1-0000-7000-8000-000000000001"

    ti = TaskInstance()
    return {"ti": ti, "task_instance": ti, "task": operator}


@pytest.mark.parametrize("mode", ["policy", "manual"])
def test_an_approved_reused_version_is_not_asked_again_and_the_run_goes_on(registry, hitl_requests, mode):
    version = reused_after(registry, lambda arn: registry.approve(arn, "alice", "beats prod by 0.02", {}))
    operator = approval(version, mode=mode, auc=0.5)  # the policy would reject: it is not asked
    context = in_a_run(operator)

    answer = operator.execute(context)  # returns: no TaskAwaitingInput, no skip of announce_approved

    assert answer["chosen_options"] == ["Approve"]
    assert hitl_requests == []
    assert context["ti"].pushed["decision"] == {
        "approved": True, "approver": "alice", "reason": "beats prod by 0.02", "arn": version.arn,
        "decided_before": True}
    assert [h["approver"] for h in registry.approval_history(version.arn)] == ["alice"]
    assert registry.get(version.arn).approval_reason == "beats prod by 0.02"


@pytest.mark.parametrize("mode", ["policy", "manual"])
def test_a_rejected_reused_version_ends_the_run_like_a_rejection(registry, hitl_requests, mode):
    from airflow.sdk.exceptions import DownstreamTasksSkipped

    version = reused_after(registry, lambda arn: registry.reject(arn, "bob", "worse than prod", {}))
    operator = approval(version, mode=mode, auc=0.99)  # the policy would approve: it is not asked
    context = in_a_run(operator)

    with pytest.raises(DownstreamTasksSkipped) as skipped:
        operator.execute(context)

    assert skipped.value.tasks == ["announce_approved"]
    assert hitl_requests == []
    assert context["ti"].pushed["decision"] == {
        "approved": False, "approver": "bob", "reason": "worse than prod", "arn": version.arn,
        "decided_before": True}
    assert [h["approver"] for h in registry.approval_history(version.arn)] == ["bob"]


def test_a_reused_version_still_pending_is_asked_about_as_usual(registry, hitl_requests):
    from airflow.sdk.exceptions import TaskAwaitingInput

    version = reused_after(registry, lambda arn: None)
    operator = approval(version, mode="manual")

    with pytest.raises(TaskAwaitingInput):
        operator.execute(in_a_run(operator))

    assert len(hitl_requests) == 1 and version.arn in hitl_requests[0]["body"]
    assert registry.approval_history(version.arn) == []


def test_a_fresh_rejection_skips_the_same_tasks(registry, version):
    from airflow.sdk.exceptions import DownstreamTasksSkipped

    operator = approval(version, auc=0.5)
    context = in_a_run(operator)
    with pytest.raises(DownstreamTasksSkipped) as skipped:
        operator.execute(context)

    assert skipped.value.tasks == ["announce_approved"]
    assert context["ti"].pushed["decision"]["decided_before"] is False
    assert registry.get(version.arn).status == REJECTED


def test_an_answer_after_a_concurrent_identical_decision_records_no_second_one(registry, version):
    event = {"chosen_options": ["Approve"], "params_input": {}, "responded_at": datetime.now(UTC),
             "responded_by_user": {"id": "7", "name": "dana"}}
    registry.approve(version.arn, "policy", "policy: holdout_roc_auc=0.9 >= 0.8", {})  # another run, first

    approval(version, mode="manual").execute_complete({"ti": FakeTI(), "task": None}, event)

    assert [h["approver"] for h in registry.approval_history(version.arn)] == ["policy"]


def test_an_unknown_mode_is_refused(version):
    with pytest.raises(ValueError, match="approval mode 'auto'"):
        approval(version, mode="auto").execute({"ti": FakeTI()})


def test_a_rejected_prod_promotion_is_recorded_in_the_deployment_history(registry, version):
    operator = ProdApprovalOperator(
        task_id="approve_prod", subject="Promote?", model_package_arn=version.arn,
        evidence={"p95_latency_ms": 900.0}, thresholds={"max_p95_latency_ms": 250}, mode="policy",
        endpoint_name="churn-classifier-prod",
    )
    operator.execute({"ti": FakeTI(), "task": None})

    rejected = registry.deployments("prod")[0]
    assert rejected.outcome == "rejected"
    assert "p95_latency_ms=900 > 250" in rejected.detail["reason"]
