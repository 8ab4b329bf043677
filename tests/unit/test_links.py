"""Extra links: what a person clicks on a task page."""

from __future__ import annotations

from mlops.backends import Backend
from mlops.core.naming import console_url
from mlops.ui.links import XCOM_KEY, ResourceLink, persist


class FakeTI:
    def __init__(self):
        self.pushed = {}

    def xcom_push(self, key, value):
        self.pushed[key] = value


def backend(name):
    return Backend(name=name, tuner=None, trainer=None, registry=None, hosting=None, automl=None,
                   transform=None, region="eu-west-1")


def test_aws_resources_link_to_their_sagemaker_console_page():
    url = backend("aws").resource_url("tuning", "train-model-tune-abc", "file:///ignored")
    assert url == ("https://eu-west-1.console.aws.amazon.com/sagemaker/home?region=eu-west-1"
                   "#/hyper-tuning-jobs/train-model-tune-abc")


def test_local_resources_link_to_their_artifact():
    assert backend("local").resource_url("endpoint", "churn-prod", "http://127.0.0.1:8765/x") == "http://127.0.0.1:8765/x"


def test_every_kind_of_resource_has_a_console_page():
    for kind in ("tuning", "training", "endpoint", "automl", "transform", "model-package"):
        assert console_url("us-east-1", kind, "n").startswith("https://us-east-1.console.aws.amazon.com/")


def test_a_link_is_stored_for_the_task_and_nothing_when_there_is_none():
    ti = FakeTI()
    persist({"ti": ti}, None)
    assert ti.pushed == {}
    persist({"ti": ti}, "file:///report.html")
    assert ti.pushed == {XCOM_KEY: "file:///report.html"}
    assert ResourceLink.name == "Resource"


def test_the_plugin_registers_the_link():
    import mlops_plugin

    assert any(isinstance(link, ResourceLink) for link in mlops_plugin.MlopsPlugin.operator_extra_links)
