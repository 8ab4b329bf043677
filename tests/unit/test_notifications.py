"""Notifications go out through Airflow's notifiers, carrying run, model version and links; the
model report opens from the UI.

Verified how: the local channel's file; the amazon provider's ``SnsNotifier`` against moto's SNS,
read back from an SQS queue subscribed to the topic; the http provider's ``HttpNotifier`` posting
to a real HTTP server on loopback; the task failure callback and the approval operator as Airflow
calls them; the reports app through FastAPI's test client.
"""

from __future__ import annotations

import json
import textwrap
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from types import SimpleNamespace

import pytest

from mlops.core.config import ConfigError, load_pipeline
from mlops.notifications import (
    EVENTS,
    MlopsNotifier,
    NotificationSettings,
    build,
    deliver,
    notification_settings,
    read_notifications,
    send,
)

ARN = "arn:aws:sagemaker:local:000000000000:model-package/churn-classifier/3"


class FakeTI:
    task_id = "approve_model"
    try_number = 1
    log_url = "http://127.0.0.1:8080/dags/train_model/runs/manual__1/tasks/approve_model?try_number=1"

    def __init__(self, xcoms=None):
        self.xcoms, self.pushed = xcoms or {}, {}

    def xcom_pull(self, task_ids=None, key="return_value"):
        return self.xcoms.get(task_ids)

    def xcom_push(self, key, value):
        self.pushed[key] = value


def context(**extra):
    return {"dag": SimpleNamespace(dag_id="train_model"), "run_id": "manual__1", "ti": FakeTI(), "params": {},
            **extra}


def pipelines_with(tmp_path, monkeypatch, notifications: str):
    """The churn config with ``notifications`` set, in a folder of its own."""
    import yaml

    raw = load_pipeline("churn").raw
    raw = {**raw, "notifications": yaml.safe_load(textwrap.dedent(notifications))}
    folder = tmp_path / "pipelines"
    folder.mkdir(exist_ok=True)
    (folder / "churn.yaml").write_text(yaml.safe_dump(raw))
    monkeypatch.setenv("MLOPS_PIPELINES_DIR", str(folder))
    return load_pipeline("churn")


# ---------------------------------------------------------------- settings
def test_without_a_notifications_section_only_the_local_file_is_written():
    assert notification_settings(load_pipeline("churn")) == NotificationSettings()


@pytest.mark.parametrize(("section", "message"), [
    ("sns_topic_arn: not-an-arn", "sns_topic_arn='not-an-arn' is not an SNS topic ARN"),
    ("webhook_conn_id: 'has space'", "webhook_conn_id='has space' is not an Airflow connection id"),
    ("webhook_endpoint: /hooks/x", "webhook_endpoint needs webhook_conn_id"),
    ("events: [deployed]", r"events=\['deployed'\] must be a non-empty list"),
    ("slack: x", r"unknown key\(s\) slack"),
])
def test_bad_notification_settings_are_named(tmp_path, monkeypatch, section, message):
    with pytest.raises(ConfigError, match=message):
        notification_settings(pipelines_with(tmp_path, monkeypatch, section))


# ---------------------------------------------------------------- what a notification carries
def test_a_notification_carries_run_model_version_and_links(mlops_home):
    report = (mlops_home / "data" / "training" / "churn" / "r" / "model_report.html")
    notification = build("approval_waiting", context(), "waiting", model_version=ARN, report_uri=report.as_uri(),
                         console_url="https://console/x")

    assert (notification.dag_id, notification.run_id, notification.task_id) == ("train_model", "manual__1",
                                                                                "approve_model")
    assert notification.model_version == ARN
    assert notification.links["ui"] == FakeTI.log_url
    assert notification.links["report"].endswith("/mlops/reports/training/churn/r/model_report.html")
    assert notification.links["console"] == "https://console/x"
    assert json.loads(notification.to_json())["event"] == "approval_waiting"


def test_an_unknown_event_is_refused():
    with pytest.raises(ValueError, match="'deployed' is not one of"):
        build("deployed", context(), "x")
    with pytest.raises(ValueError, match="'deployed' is not one of"):
        MlopsNotifier("deployed")


def test_the_local_channel_appends_one_json_line_per_notification(mlops_home):
    send("prod_deployed", context(), "prod serves v3", model_version=ARN)
    send("rollback", context(), "rolled back to v2", model_version=ARN)

    assert [(n["event"], n["message"]) for n in read_notifications()] == [
        ("prod_deployed", "prod serves v3"), ("rollback", "rolled back to v2")]


def test_events_the_config_leaves_out_are_not_sent(mlops_home, tmp_path, monkeypatch):
    pipelines_with(tmp_path, monkeypatch, "events: [task_failed]")
    send("prod_deployed", context(), "prod serves v3")
    send("task_failed", context(), "boom")

    assert [n["event"] for n in read_notifications()] == ["task_failed"]


def test_a_message_with_template_braces_is_sent_as_it_is(mlops_home):
    send("task_failed", context(), "KeyError: '{{ nope }}'")
    assert read_notifications()[0]["message"] == "KeyError: '{{ nope }}'"


# ---------------------------------------------------------------- Airflow's notifier mechanism
def test_a_task_failure_reaches_the_channels_through_on_failure_callback(mlops_home):
    from airflow.sdk import DAG

    from mlops.dag_defaults import DEFAULT_ARGS

    (notifier,) = DEFAULT_ARGS["on_failure_callback"]
    ti = FakeTI({"resolve_package": {"arn": ARN, "metadata": {"report_uri": "s3://b/report.html"}}})
    notifier({**context(ti=ti, dag=DAG("train_model", schedule=None)),
              "exception": RuntimeError("endpoint did not come InService")})

    (sent,) = read_notifications()
    assert sent["event"] == "task_failed"
    assert sent["message"] == "task approve_model of train_model failed: endpoint did not come InService"
    assert sent["model_version"] == ARN
    assert sent["links"]["report"] == "https://s3.console.aws.amazon.com/s3/object/b?prefix=report.html"


def test_a_task_failing_on_a_silent_rollback_notifies_it_as_such(mlops_home):
    from airflow.sdk import DAG

    from mlops.deploy.flow import SilentRollback

    MlopsNotifier("task_failed")({**context(dag=DAG("rollback_model", schedule=None)),
                                  "exception": SilentRollback("endpoint churn-classifier-prod is InService on config a")})

    (sent,) = read_notifications()
    assert sent["event"] == "silent_rollback" and "InService on config a" in sent["message"]


def test_every_dag_notifies_on_task_failure():
    from airflow.dag_processing.dagbag import DagBag

    from mlops.core.paths import PROJECT_ROOT

    bag = DagBag(str(PROJECT_ROOT / "dags"))
    assert bag.dags
    for dag in bag.dags.values():
        for task in dag.tasks:
            assert any(isinstance(c, MlopsNotifier) for c in (task.on_failure_callback or [])), task.task_id


def test_an_approval_waiting_and_its_decision_are_notified(mlops_home, monkeypatch):
    from airflow.providers.standard.operators import hitl
    from airflow.sdk.exceptions import TaskAwaitingInput

    from mlops.backends import get_backend
    from mlops.operators.approval import ModelApprovalOperator

    registry = get_backend().registry
    registry.ensure_group("churn-classifier")
    artifact = mlops_home / "m.tar.gz"
    artifact.write_bytes(b"model")
    import hashlib

    version = registry.register("churn-classifier", artifact.as_uri(), hashlib.sha256(b"model").hexdigest(), {}, {})
    operator = ModelApprovalOperator(task_id="approve_model", subject="Approve?", model_package_arn=version.arn,
                                     evidence={"holdout_roc_auc": 0.9}, thresholds={"min_holdout_roc_auc": 0.8},
                                     mode="manual", report_uri="")
    monkeypatch.setattr(hitl, "upsert_hitl_detail", lambda **kwargs: None)
    ti = FakeTI()
    ti.id = "0192f0c1-0000-7000-8000-000000000000"
    ctx = context(ti=ti, task_instance=ti)
    with pytest.raises(TaskAwaitingInput):
        operator.execute(ctx)
    (waiting,) = read_notifications()
    assert (waiting["event"], waiting["model_version"]) == ("approval_waiting", version.arn)
    assert "the policy recommends Approve" in waiting["message"]

    from datetime import UTC, datetime

    operator.execute_complete(ctx, {"chosen_options": ["Approve"], "params_input": {},
                                    "responded_at": datetime.now(UTC),
                                    "responded_by_user": {"id": "dana", "name": "dana"}})
    decision = read_notifications()[-1]
    assert decision["event"] == "approval_decision"
    assert decision["detail"]["approved"] is True and decision["detail"]["approver"] == "dana"


# ---------------------------------------------------------------- SNS and the webhook
def test_sns_goes_through_the_amazon_providers_notifier(mlops_home, monkeypatch):
    import boto3
    from moto import mock_aws

    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                        ("AWS_DEFAULT_REGION", "us-east-1")):
        monkeypatch.setenv(name, value)
    with mock_aws():
        sns, sqs = boto3.client("sns", region_name="us-east-1"), boto3.client("sqs", region_name="us-east-1")
        topic = sns.create_topic(Name="mlops")["TopicArn"]
        queue = sqs.create_queue(QueueName="inbox")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)

        notification = build("prod_deployed", context(), "prod serves v3", model_version=ARN)
        failed = deliver(notification, [NotificationSettings(sns_topic_arn=topic)])

        (message,) = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    envelope = json.loads(message["Body"])
    assert failed == []
    assert envelope["Subject"] == "[mlops] train_model: deployed to prod"
    assert json.loads(envelope["Message"])["model_version"] == ARN
    assert envelope["MessageAttributes"]["event"]["Value"] == "prod_deployed"


@pytest.fixture
def webhook():
    """A real HTTP server on loopback recording what it is sent."""
    received: list[tuple[str, dict]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.path, json.loads(body)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", received
    server.shutdown()


def test_the_webhook_gets_the_json_through_the_http_providers_notifier(mlops_home, monkeypatch, webhook):
    url, received = webhook
    monkeypatch.setenv("AIRFLOW_CONN_MLOPS_WEBHOOK", json.dumps({"conn_type": "http", "host": url}))
    notification = build("silent_rollback", context(), "prod is back on config a", model_version=ARN)

    failed = deliver(notification, [NotificationSettings(webhook_conn_id="mlops_webhook",
                                                         webhook_endpoint="hooks/mlops")])

    assert failed == []
    (path, body), = received
    assert path == "/hooks/mlops"
    assert (body["event"], body["model_version"], body["run_id"]) == ("silent_rollback", ARN, "manual__1")


def test_a_failing_channel_is_logged_and_does_not_fail_the_task(mlops_home, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_MLOPS_WEBHOOK", json.dumps({"conn_type": "http", "host": "http://127.0.0.1:9"}))
    notification = build("rollback", context(), "x")

    failed = deliver(notification, [NotificationSettings(webhook_conn_id="mlops_webhook")])

    assert failed == ["HttpNotifier"]
    assert [n["event"] for n in read_notifications()] == ["rollback"]  # the other channels still got it


def test_every_event_has_a_subject():
    assert all(build(event, context(), "x").subject.startswith("[mlops] train_model: ") for event in EVENTS)


# ---------------------------------------------------------------- the model report opens from the UI
def test_reports_under_the_data_root_are_served_and_nothing_else(tmp_path):
    from fastapi.testclient import TestClient

    from mlops.ui.reports import create_app

    root = tmp_path / "data"
    (root / "training" / "churn").mkdir(parents=True)
    (root / "training" / "churn" / "model_report.html").write_text("<html>the report</html>")
    (root / "training" / "churn" / "model.tar.gz").write_bytes(b"not a report")
    (tmp_path / "secret.html").write_text("outside")
    client = TestClient(create_app(root))

    answer = client.get("/reports/training/churn/model_report.html")
    assert answer.status_code == 200 and answer.text == "<html>the report</html>"
    assert answer.headers["content-type"].startswith("text/html")
    assert client.get("/reports/training/churn/model.tar.gz").status_code == 404
    assert client.get("/reports/../secret.html").status_code == 404
    assert client.get("/reports/%2E%2E/secret.html").status_code == 404
    assert client.get("/reports/training/churn/missing.html").status_code == 404


def test_the_plugin_serves_the_reports_and_registers_the_report_link():
    import mlops_plugin

    from mlops.ui.links import ModelReportLink

    assert [app["url_prefix"] for app in mlops_plugin.MlopsPlugin.fastapi_apps] == ["/mlops"]
    assert any(isinstance(link, ModelReportLink) for link in mlops_plugin.MlopsPlugin.operator_extra_links)


def test_a_report_outside_the_data_root_keeps_its_uri_and_s3_opens_in_the_console(mlops_home):
    from mlops.ui.links import report_url

    assert report_url("file:///elsewhere/report.html") == "file:///elsewhere/report.html"
    assert report_url("s3://b/k/report.html") == "https://s3.console.aws.amazon.com/s3/object/b?prefix=k/report.html"
    assert report_url("") == ""


def test_the_sns_policy_lets_the_airflow_role_publish_to_the_topic_only():
    import botocore.session

    from testkit import iam

    topic = "arn:aws:sns:us-east-1:123456789012:mlops"
    policy = iam.render("airflow-notifications-sns.json", {"NotificationTopicArn": topic})
    assert iam.allowed(policy, "sns:Publish", topic)
    assert not iam.allowed(policy, "sns:Publish", topic.replace(":mlops", ":other"))
    assert not iam.allowed(policy, "sns:Subscribe", topic)
    assert "Publish" in botocore.session.get_session().get_service_model("sns").operation_names
    assert "${NotificationTopicArn}" in (iam.IAM_DIR / "README.md").read_text()
