"""The local model registry behaves like the SageMaker Model Registry, plus its histories."""

from __future__ import annotations

import hashlib
import multiprocessing
import pickle
from datetime import UTC, datetime, timedelta, timezone

import pytest

from mlops.backends.base import APPROVED, PENDING, REJECTED, Deployment, ModelVersion, Registry
from mlops.backends.local.registry import SQLiteRegistry
from mlops.deploy.flow import version_in_stage_at

GROUP = "churn-classifier"
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture
def registry(tmp_path) -> SQLiteRegistry:
    registry = SQLiteRegistry(tmp_path / "state" / "registry.sqlite")
    registry.ensure_group(GROUP, "telecom churn")
    return registry


def register(registry: SQLiteRegistry, group: str = GROUP, n: int = 0) -> ModelVersion:
    return registry.register(
        group, f"file:///models/{group}/{n}/model.tar.gz", digest(f"{group}-{n}"),
        metrics={"roc_auc": 0.8 + n / 100}, metadata={"hyperparameters": {"C": 1.0}, "run": f"run-{n}"},
    )


def deployment(arn: str, at: datetime, outcome: str = "succeeded", stage: str = "prod") -> Deployment:
    return Deployment(
        arn=arn, stage=stage, endpoint_name=f"churn-{stage}", endpoint_config=f"cfg-{at:%H%M}",
        outcome=outcome, deployed_at=at.isoformat(), detail={"by": "deploy_model"},
    )


def register_many(db_path: str, n: int) -> list[int]:
    registry = SQLiteRegistry(db_path)
    return [register(registry, n=i).version for i in range(n)]


# ---------------------------------------------------------------- registration
def test_is_a_registry_and_creates_its_folder_lazily(tmp_path):
    db_path = tmp_path / "nested" / "state" / "registry.sqlite"
    registry = SQLiteRegistry(db_path)
    assert isinstance(registry, Registry)
    assert not db_path.parent.exists()
    registry.ensure_group(GROUP)
    assert db_path.exists()


def test_register_starts_pending_with_every_field(registry):
    version = register(registry)
    assert version.status == PENDING
    assert version.group == GROUP and version.version == 1
    assert version.arn == f"arn:aws:sagemaker:local:000000000000:model-package/{GROUP}/1"
    assert version.model_uri == f"file:///models/{GROUP}/0/model.tar.gz"
    assert version.sha256 == digest(f"{GROUP}-0")
    assert version.metrics == {"roc_auc": 0.8}
    assert version.metadata == {"hyperparameters": {"C": 1.0}, "run": "run-0"}
    assert version.approver is None and version.approval_reason is None
    created = datetime.fromisoformat(version.created_at)
    assert created.utcoffset() == timedelta(0)
    assert len(version.created_at.split(".")[1].split("+")[0]) == 6  # microseconds
    assert registry.get(version.arn) == version


def test_versions_increment_per_group_independently(registry):
    registry.ensure_group("retail-segments")
    assert [register(registry).version for _ in range(3)] == [1, 2, 3]
    assert [register(registry, "retail-segments").version for _ in range(2)] == [1, 2]
    assert register(registry).version == 4


def test_register_without_a_group_names_the_group(registry):
    with pytest.raises(KeyError, match="no-such-group.*ensure_group"):
        register(registry, "no-such-group")


def test_ensure_group_is_idempotent(registry):
    register(registry)
    registry.ensure_group(GROUP, "again")
    assert register(registry).version == 2


def test_ensure_group_rejects_names_sagemaker_would_reject(registry):
    with pytest.raises(ValueError, match="churn_classifier"):
        registry.ensure_group("churn_classifier")


@pytest.mark.parametrize("sha256", ["abc", "g" * 64, digest("x") + "0", None])
def test_register_rejects_a_malformed_sha256(registry, sha256):
    with pytest.raises(ValueError, match="sha256"):
        registry.register(GROUP, "file:///m.tar.gz", sha256, {}, {})


def test_register_stores_sha256_in_lower_case(registry):
    version = registry.register(GROUP, "file:///m.tar.gz", digest("x").upper(), {}, {})
    assert version.sha256 == digest("x")


@pytest.mark.parametrize(
    ("field", "metrics", "metadata"),
    [
        ("metrics", {"roc_auc": object()}, {}),
        ("metrics", {"roc_auc": float("nan")}, {}),
        ("metadata", {}, {"seed": {1, 2}}),
        ("metadata", {}, ["not", "a", "dict"]),
    ],
)
def test_register_rejects_non_json_fields_naming_them(registry, field, metrics, metadata):
    with pytest.raises(ValueError, match=field):
        registry.register(GROUP, "file:///m.tar.gz", digest("x"), metrics, metadata)
    assert registry.list_versions(GROUP) == []


# ---------------------------------------------------------------- one version per identity
LINEAGE = {"dataset_digest": digest("partition 2024-05-01"), "code_version": "0123456789ab",
           "hyperparameters": {"C": 1.0, "penalty": "l2"}}


def register_run(registry: SQLiteRegistry, run: int, **lineage) -> ModelVersion:
    """A train_model run's registration: its own artifact, metrics and run id, ``lineage`` shared."""
    return registry.register(
        GROUP, f"file:///runs/{run}/model.tar.gz", digest(f"artifact of run {run}"),
        metrics={"roc_auc": 0.8 + run / 1000}, metadata={**LINEAGE, **lineage, "run_id": f"run-{run}"},
    )


def test_registering_the_same_identity_again_returns_the_existing_version(registry):
    first = register_run(registry, 1)
    again = register_run(registry, 2)

    assert (again.arn, again.version, again.reused) == (first.arn, 1, True)
    assert first.reused is False
    assert again.metadata["run_id"] == "run-1"  # the version as registered, not the second run's
    assert [v.version for v in registry.list_versions(GROUP)] == [1]


def test_hyperparameter_order_is_not_part_of_the_identity(registry):
    first = register_run(registry, 1, hyperparameters={"C": 1.0, "penalty": "l2"})
    assert register_run(registry, 2, hyperparameters={"penalty": "l2", "C": 1.0}).arn == first.arn


@pytest.mark.parametrize("change", [
    {"dataset_digest": digest("partition 2024-05-02")},
    {"code_version": "fedcba987654"},
    {"hyperparameters": {"C": 0.5, "penalty": "l2"}},
    {"hyperparameters": {"C": 1.0, "penalty": "l2", "max_iter": 200}},
])
def test_a_different_digest_code_version_or_hyperparameters_adds_a_version(registry, change):
    first = register_run(registry, 1)
    other = register_run(registry, 2, **change)

    assert (other.version, other.reused) == (2, False)
    assert register_run(registry, 3, **change).arn == other.arn != first.arn


@pytest.mark.parametrize("missing", [{"dataset_digest": None}, {"code_version": None}, {"code_version": ""},
                                     {"code_version": "unknown"}, {"code_version": "0123456789ab-dirty"}])
def test_without_a_dataset_digest_or_a_pinned_code_version_every_registration_adds_a_version(registry, missing):
    versions = [register_run(registry, run, **missing) for run in range(3)]
    assert [(v.version, v.reused) for v in versions] == [(1, False), (2, False), (3, False)]


def test_a_reused_version_keeps_its_decision(registry):
    first = register_run(registry, 1)
    registry.approve(first.arn, "alice", "good", {})

    again = register_run(registry, 2)

    assert (again.arn, again.status, again.approver, again.reused) == (first.arn, APPROVED, "alice", True)


# ---------------------------------------------------------------- reading
def test_get_unknown_arn_names_it(registry):
    arn = "arn:aws:sagemaker:local:000000000000:model-package/churn-classifier/99"
    with pytest.raises(KeyError, match="churn-classifier/99"):
        registry.get(arn)


def test_list_versions_is_newest_first(registry):
    for n in range(5):
        register(registry, n=n)
    assert [v.version for v in registry.list_versions(GROUP)] == [5, 4, 3, 2, 1]


def test_list_versions_filters_by_status(registry):
    first, second, third = (register(registry, n=n) for n in range(3))
    registry.approve(first.arn, "alice", "good", {})
    registry.reject(second.arn, "alice", "bad", {})
    assert [v.version for v in registry.list_versions(GROUP, status=APPROVED)] == [1]
    assert [v.version for v in registry.list_versions(GROUP, status=REJECTED)] == [2]
    assert [v.version for v in registry.list_versions(GROUP, status=PENDING)] == [3]


def test_list_versions_of_an_unknown_group_is_empty(registry):
    assert registry.list_versions("other") == []
    assert registry.latest_approved("other") is None


def test_latest_approved_is_the_newest_version_not_the_last_decision(registry):
    older, newer, _pending = (register(registry, n=n) for n in range(3))
    registry.approve(newer.arn, "alice", "better auc", {})
    registry.approve(older.arn, "bob", "also fine", {})
    assert registry.latest_approved(GROUP).arn == newer.arn


def test_latest_approved_is_none_without_approvals(registry):
    register(registry)
    assert registry.latest_approved(GROUP) is None


# ---------------------------------------------------------------- approvals
def test_approve_records_approver_reason_and_evidence(registry):
    version = register(registry)
    evidence = {"holdout": {"roc_auc": 0.84}, "report": "file:///reports/run-1.html"}
    approved = registry.approve(version.arn, "alice", "beats baseline by 0.04", evidence)
    assert approved.status == APPROVED
    assert (approved.approver, approved.approval_reason) == ("alice", "beats baseline by 0.04")
    assert registry.get(version.arn) == approved
    [entry] = registry.approval_history(version.arn)
    assert entry["arn"] == version.arn
    assert (entry["previous_status"], entry["status"]) == (PENDING, APPROVED)
    assert (entry["approver"], entry["reason"], entry["evidence"]) == (
        "alice", "beats baseline by 0.04", evidence
    )
    assert datetime.fromisoformat(entry["decided_at"]).utcoffset() == timedelta(0)


def test_reject_records_the_decision(registry):
    version = register(registry)
    rejected = registry.reject(version.arn, "policy:churn", "auc below threshold", {"roc_auc": 0.6})
    assert rejected.status == REJECTED
    [entry] = registry.approval_history(version.arn)
    assert entry["status"] == REJECTED and entry["approver"] == "policy:churn"
    assert entry["evidence"] == {"roc_auc": 0.6}


def test_approval_history_keeps_every_decision_newest_first(registry):
    version = register(registry)
    registry.approve(version.arn, "alice", "ok", {})
    registry.set_status(version.arn, PENDING, "bob", "reopened for review", {})
    registry.reject(version.arn, "carol", "drift found", {"psi": 0.4})
    history = registry.approval_history(version.arn)
    assert [(h["status"], h["approver"]) for h in history] == [
        (REJECTED, "carol"), (PENDING, "bob"), (APPROVED, "alice")
    ]
    assert [h["previous_status"] for h in history] == [PENDING, APPROVED, PENDING]
    assert registry.get(version.arn).status == REJECTED


def test_setting_the_status_a_version_has_records_no_second_decision(registry):
    version = register(registry)
    registry.approve(version.arn, "alice", "beats baseline", {"roc_auc": 0.9})

    again = registry.approve(version.arn, "bob", "also looked", {})

    assert (again.status, again.approver, again.approval_reason) == (APPROVED, "alice", "beats baseline")
    assert [h["approver"] for h in registry.approval_history(version.arn)] == ["alice"]


def test_set_status_rejects_an_unknown_status_listing_the_allowed_ones(registry):
    version = register(registry)
    with pytest.raises(ValueError, match="Deployed.*PendingManualApproval, Approved, Rejected"):
        registry.set_status(version.arn, "Deployed", "alice", "", {})
    assert registry.get(version.arn).status == PENDING
    assert registry.approval_history(version.arn) == []


def test_set_status_on_an_unknown_arn_names_it(registry):
    with pytest.raises(KeyError, match="churn-classifier/7"):
        registry.approve(f"arn:aws:sagemaker:local:000000000000:model-package/{GROUP}/7", "a", "", {})


def test_set_status_needs_json_evidence_and_changes_nothing_without_it(registry):
    version = register(registry)
    with pytest.raises(ValueError, match="evidence"):
        registry.approve(version.arn, "alice", "ok", {"model": object()})
    assert registry.get(version.arn).status == PENDING
    assert registry.approval_history(version.arn) == []


def test_list_versions_rejects_an_unknown_status(registry):
    with pytest.raises(ValueError, match="Approved"):
        registry.list_versions(GROUP, status="approved")


# ---------------------------------------------------------------- deployments
def test_deployments_are_newest_first_and_filter_by_stage(registry):
    version = register(registry)
    registry.record_deployment(deployment(version.arn, T0, stage="staging"))
    registry.record_deployment(deployment(version.arn, T0 + timedelta(hours=2), stage="prod"))
    registry.record_deployment(deployment(version.arn, T0 + timedelta(hours=1), stage="staging"))
    assert [(d.stage, d.deployed_at) for d in registry.deployments()] == [
        ("prod", (T0 + timedelta(hours=2)).isoformat()),
        ("staging", (T0 + timedelta(hours=1)).isoformat()),
        ("staging", T0.isoformat()),
    ]
    assert [d.deployed_at for d in registry.deployments("prod")] == [(T0 + timedelta(hours=2)).isoformat()]
    assert registry.deployments("prod")[0] == deployment(version.arn, T0 + timedelta(hours=2))


def test_version_in_stage_at_answers_which_version_was_in_prod(registry):
    v1, v2, v3 = (register(registry, n=n) for n in range(3))
    for hours, version in ((0, v1), (24, v2), (48, v3)):
        registry.record_deployment(deployment(version.arn, T0 + timedelta(hours=hours)))
    assert version_in_stage_at(registry, "prod", T0 - timedelta(seconds=1)) is None
    assert version_in_stage_at(registry, "prod", T0).arn == v1.arn
    assert version_in_stage_at(registry, "prod", T0 + timedelta(hours=12)).arn == v1.arn
    assert version_in_stage_at(registry, "prod", T0 + timedelta(hours=36)).arn == v2.arn
    assert version_in_stage_at(registry, "prod", (T0 + timedelta(days=30)).isoformat()).arn == v3.arn
    assert version_in_stage_at(registry, "staging", T0 + timedelta(days=30)) is None


def test_a_failed_or_rolled_back_deployment_is_not_in_prod(registry):
    v1, v2, v3 = (register(registry, n=n) for n in range(3))
    registry.record_deployment(deployment(v1.arn, T0))
    registry.record_deployment(deployment(v2.arn, T0 + timedelta(hours=1), outcome="failed"))
    registry.record_deployment(deployment(v3.arn, T0 + timedelta(hours=2), outcome="rolled_back"))
    assert version_in_stage_at(registry, "prod", T0 + timedelta(hours=3)).arn == v1.arn


def test_version_in_stage_at_compares_instants_across_time_zones(registry):
    v1, v2 = register(registry, n=1), register(registry, n=2)
    registry.record_deployment(deployment(v1.arn, T0))
    plus_two = timezone(timedelta(hours=2))
    # 13:30 at +02:00 is 11:30 UTC: before v1 went live, although it sorts after as text.
    registry.record_deployment(deployment(v2.arn, datetime(2024, 5, 1, 13, 30, tzinfo=plus_two)))
    assert version_in_stage_at(registry, "prod", "2024-05-01T12:30:00Z").arn == v1.arn
    assert version_in_stage_at(registry, "prod", "2024-05-01T11:45:00+00:00").arn == v2.arn


def test_record_deployment_rejects_unknown_packages_and_outcomes(registry):
    version = register(registry)
    with pytest.raises(KeyError, match="model-package/churn-classifier/9"):
        registry.record_deployment(deployment(version.arn.replace("/1", "/9"), T0))
    with pytest.raises(ValueError, match="outcome 'ok'.*succeeded, failed, rolled_back"):
        registry.record_deployment(deployment(version.arn, T0, outcome="ok"))
    with pytest.raises(ValueError, match="deployed_at"):
        registry.record_deployment(
            Deployment(version.arn, "prod", "e", "c", "succeeded", deployed_at="yesterday")
        )
    assert registry.deployments() == []


# ---------------------------------------------------------------- processes and persistence
def test_concurrent_processes_never_share_a_version_number(registry):
    context = multiprocessing.get_context("spawn")
    with context.Pool(4) as pool:
        results = pool.starmap(register_many, [(str(registry.db_path), 10)] * 4)
    assert sorted(v for result in results for v in result) == list(range(1, 41))
    assert [v.version for v in registry.list_versions(GROUP)] == list(range(40, 0, -1))


ROUNDS = 5  # identities registered (and versions approved) one after another, each by every process


def register_identities_together(db_path: str, barrier, run: int) -> list[tuple[str, bool]]:
    """One train_model run per process: each round, all processes register the same identity."""
    registry = SQLiteRegistry(db_path)
    results = []
    for round_ in range(ROUNDS):
        barrier.wait()
        version = register_run(registry, run, hyperparameters={"C": 1.0, "round": round_})
        results.append((version.arn, version.reused))
    return results


def approve_together(db_path: str, barrier, arns: list[str], approver: str) -> None:
    registry = SQLiteRegistry(db_path)
    for arn in arns:
        barrier.wait()
        registry.approve(arn, approver, f"approved by {approver}", {})


def test_processes_registering_one_identity_at_once_end_with_one_version(registry):
    processes = 4
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager, context.Pool(processes) as pool:
        barrier = manager.Barrier(processes)
        results = pool.starmap(register_identities_together,
                               [(str(registry.db_path), barrier, run) for run in range(processes)])

    assert [v.version for v in registry.list_versions(GROUP)] == list(range(ROUNDS, 0, -1))
    for round_ in range(ROUNDS):
        arns, reused = zip(*(result[round_] for result in results), strict=True)
        assert len(set(arns)) == 1, f"round {round_}: {arns}"
        assert sorted(reused) == [False] + [True] * (processes - 1)  # one registered, the others reused


def test_processes_approving_one_version_at_once_record_one_decision(registry):
    processes = 4
    arns = [register(registry, n=n).arn for n in range(ROUNDS)]
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager, context.Pool(processes) as pool:
        barrier = manager.Barrier(processes)
        pool.starmap(approve_together,
                     [(str(registry.db_path), barrier, arns, f"approver-{n}") for n in range(processes)])

    for arn in arns:
        [decision] = registry.approval_history(arn)
        version = registry.get(arn)
        assert (version.status, version.approver) == (APPROVED, decision["approver"])


def test_concurrent_first_use_creates_the_schema_once(tmp_path):
    db_path = tmp_path / "fresh" / "registry.sqlite"
    context = multiprocessing.get_context("spawn")
    with context.Pool(4) as pool:
        pool.starmap(ensure_group_and_register, [(str(db_path),)] * 4)
    assert sorted(v.version for v in SQLiteRegistry(db_path).list_versions(GROUP)) == [1, 2, 3, 4]


def ensure_group_and_register(db_path: str) -> None:
    registry = SQLiteRegistry(db_path)
    registry.ensure_group(GROUP)
    register(registry)


def test_registry_pickles(registry):
    version = register(registry)
    clone = pickle.loads(pickle.dumps(registry))  # noqa: S301 - our own bytes, made one line up
    assert clone.get(version.arn) == version


def test_data_survives_reopening(registry):
    version = register(registry)
    registry.approve(version.arn, "alice", "ok", {"roc_auc": 0.9})
    registry.record_deployment(deployment(version.arn, T0))
    reopened = SQLiteRegistry(registry.db_path)
    assert reopened.get(version.arn) == registry.get(version.arn)
    assert reopened.approval_history(version.arn)[0]["evidence"] == {"roc_auc": 0.9}
    assert version_in_stage_at(reopened, "prod", T0).arn == version.arn
    assert register(reopened).version == 2


def test_database_is_in_wal_mode(registry):
    import sqlite3

    register(registry)
    with sqlite3.connect(registry.db_path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


# ---------------------------------------------------------------- decisions made elsewhere
def test_an_external_decision_is_added_to_the_history_without_touching_the_package(registry):
    version = register(registry)
    registry.approve(version.arn, "alice", "ok", {})

    registry.record_external_decision(version.arn, REJECTED, "studio-user", "rejected in Studio", {"via": "x"})

    assert registry.get(version.arn).status == APPROVED  # the package row is not changed
    entry = registry.approval_history(version.arn)[0]
    assert (entry["previous_status"], entry["status"], entry["approver"]) == (APPROVED, REJECTED, "studio-user")
    assert entry["evidence"] == {"via": "x", "external": True}


# ---------------------------------------------------------------- the approval sensor, on this registry
@pytest.fixture
def home_registry(mlops_home) -> SQLiteRegistry:
    """The registry the backend uses (MLOPS_HOME's), as the sensor finds it."""
    from mlops.core.settings import get_settings

    registry = SQLiteRegistry(get_settings().registry_db)
    registry.ensure_group(GROUP)
    return registry


def sensor(version: ModelVersion, **kwargs):
    from mlops.sensors.sagemaker import ModelPackageApprovalSensor

    return ModelPackageApprovalSensor(task_id="wait_for_approval", model_package_arn=version.arn, **kwargs)


def test_the_sensor_waits_while_the_version_is_pending(home_registry):
    version = register(home_registry)
    assert sensor(version).poke({}).is_done is False


def test_the_sensor_is_done_once_approved_and_returns_the_decision(home_registry):
    version = register(home_registry)
    home_registry.approve(version.arn, "alice", "beats baseline", {"roc_auc": 0.9})

    done = sensor(version).poke({})

    assert done.is_done
    assert done.xcom_value == {"arn": version.arn, "status": APPROVED, "approver": "alice",
                               "reason": "beats baseline"}
    assert len(home_registry.approval_history(version.arn)) == 1  # already recorded: not added again


def test_a_rejection_skips_the_rest_of_the_run_or_fails_when_asked(home_registry):
    from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

    version = register(home_registry)
    home_registry.reject(version.arn, "bob", "worse than prod", {})

    with pytest.raises(AirflowSkipException, match="rejected by bob: worse than prod"):
        sensor(version).poke({})
    with pytest.raises(AirflowFailException, match="rejected by bob"):
        sensor(version, fail_on_rejection=True).poke({})


def test_the_sensor_reschedules_between_pokes_and_the_local_registry_offers_no_trigger(home_registry):
    version = register(home_registry)
    assert sensor(version).mode == "reschedule"
    assert getattr(home_registry, "approval_trigger", lambda *_: None)(version.arn) is None
