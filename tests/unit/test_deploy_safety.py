"""Deploy safety: only Approved packages whose artifact is unchanged are served, a silent
rollback fails the deployment, and every attempt lands in the deployment history.

Verified how: the real SQLite registry and real artifacts on the local object store; the
hosting port is replaced by a small fake so a rollback can be staged.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from mlops.backends.base import Endpoint
from mlops.deploy.flow import version_in_stage_at
from mlops.deploy.rules import DeploymentRefused, resolve_deployable
from mlops.operators.sagemaker import DeployModelVersionOperator


@pytest.fixture
def registry(mlops_home):
    from mlops.backends.local.registry import SQLiteRegistry
    from mlops.core.settings import get_settings

    registry = SQLiteRegistry(get_settings().registry_db)
    registry.ensure_group("churn-classifier")
    return registry


def register(registry, tmp_path, name: str):
    from mlops.core.storage import pack_model

    folder = tmp_path / name
    folder.mkdir()
    (folder / "model.json").write_text(f'{{"name": "{name}"}}')
    uri, sha = pack_model(folder, (tmp_path / f"{name}.tar.gz").as_uri())
    return registry.register("churn-classifier", uri, sha, {}, {})


def test_a_pending_version_is_refused(registry, tmp_path):
    version = register(registry, tmp_path, "a")
    with pytest.raises(DeploymentRefused, match="PendingManualApproval"):
        resolve_deployable(registry, "churn-classifier", version.arn)


def test_a_rejected_version_is_refused(registry, tmp_path):
    version = register(registry, tmp_path, "a")
    registry.reject(version.arn, "dana", "worse than prod", {})
    with pytest.raises(DeploymentRefused, match="Rejected"):
        resolve_deployable(registry, "churn-classifier", version.arn)


def test_a_tampered_artifact_is_refused(registry, tmp_path):
    version = register(registry, tmp_path, "a")
    registry.approve(version.arn, "dana", "good", {})
    (tmp_path / "a.tar.gz").write_bytes(b"not the registered model")
    with pytest.raises(DeploymentRefused, match="sha256"):
        resolve_deployable(registry, "churn-classifier", version.arn)


def test_without_an_arn_the_newest_approved_version_is_chosen(registry, tmp_path):
    old, new, pending = (register(registry, tmp_path, n) for n in ("a", "b", "c"))
    registry.approve(new.arn, "dana", "good", {})
    registry.approve(old.arn, "dana", "approved later, but older", {})
    assert resolve_deployable(registry, "churn-classifier", None)["arn"] == new.arn


def test_a_group_without_approved_versions_is_refused(registry, tmp_path):
    register(registry, tmp_path, "a")
    with pytest.raises(DeploymentRefused, match="no Approved version"):
        resolve_deployable(registry, "churn-classifier", None)


class FakeTI:
    def __init__(self):
        self.pushed = {}

    def xcom_push(self, key, value):
        self.pushed[key] = value


def context():
    return {"dag": type("Dag", (), {"dag_id": "deploy_model"})(), "run_id": "manual__1", "ti": FakeTI()}


def fake_backend(registry, hosting):
    from mlops.backends import Backend

    return Backend(name="local", tuner=None, trainer=None, registry=registry, hosting=hosting, automl=None,
                   transform=None)


class StuckOnOldConfig:
    """Hosting whose update silently rolls back: InService, but on the previous config."""

    def named(self, spec):
        return spec

    def deploy(self, spec):
        return Endpoint(name=spec.endpoint_name, config_name="previous-config", status="InService",
                        url="http://127.0.0.1/x", runtime_endpoint_url="http://127.0.0.1", region="us-east-1")


def test_a_silent_rollback_fails_the_deployment_and_is_recorded(registry, tmp_path, monkeypatch):
    from mlops.operators import sagemaker

    version = register(registry, tmp_path, "a")
    registry.approve(version.arn, "dana", "good", {})
    backend = fake_backend(registry, StuckOnOldConfig())
    monkeypatch.setattr(sagemaker, "_backend", lambda: backend)
    operator = DeployModelVersionOperator(task_id="deploy_prod", stage="prod", package=version.to_dict(),
                                         endpoint_name="churn-prod", instance_type="ml.m5.large")

    from airflow.sdk.exceptions import AirflowFailException

    with pytest.raises(AirflowFailException, match="rolled back"):
        operator.execute(context())

    attempt = registry.deployments("prod")[0]
    assert attempt.outcome == "rolled_back"
    assert version_in_stage_at(registry, "prod", attempt.deployed_at) is None
    from mlops.notifications import read_notifications

    (sent,) = read_notifications()
    assert (sent["event"], sent["model_version"], sent["run_id"]) == ("silent_rollback", version.arn, "manual__1")
    assert "previous-config" in sent["message"]


def test_a_successful_deployment_answers_what_was_in_prod(registry, tmp_path, monkeypatch):
    from mlops.operators import sagemaker

    version = register(registry, tmp_path, "a")
    registry.approve(version.arn, "dana", "good", {})

    class Hosting(StuckOnOldConfig):
        def deploy(self, spec):
            return replace(StuckOnOldConfig().deploy(spec), config_name=spec.config_name)

    backend = fake_backend(registry, Hosting())
    monkeypatch.setattr(sagemaker, "_backend", lambda: backend)
    DeployModelVersionOperator(task_id="deploy_prod", stage="prod", package=version.to_dict(),
                              endpoint_name="churn-prod", instance_type="ml.m5.large").execute(
        context())

    attempt = registry.deployments("prod")[0]
    assert attempt.outcome == "succeeded"
    assert version_in_stage_at(registry, "prod", attempt.deployed_at).arn == version.arn
    from mlops.notifications import read_notifications

    (sent,) = read_notifications()
    assert (sent["event"], sent["model_version"]) == ("prod_deployed", version.arn)
    assert sent["links"]["console"] == "http://127.0.0.1/x"
