"""Notifications: task failures, approvals, prod deploys and rollbacks, through Airflow's notifiers.

Every notification is one JSON document (:class:`Notification`): the event, the DAG run, the
task, the model version, a message and links (the task in Airflow's UI, the model report, the
resource's console page). It goes to every channel the pipeline config's ``notifications``
section names, each an Airflow notifier:

* ``sns_topic_arn``: the amazon provider's ``SnsNotifier`` (the project's AWS connection);
* ``webhook_conn_id``: the http provider's ``HttpNotifier`` POSTing the JSON to the connection's
  host (the URL and any token stay in the Airflow connection; ``webhook_endpoint`` is the path);
* on the local backend, :class:`LocalFileNotifier` always: one JSON line per notification in
  ``$MLOPS_HOME/state/notifications.jsonl``, where the demo's summary and the tests read them.

``events`` (default: all of :data:`EVENTS`) says which events go out. Task failures come through
Airflow's own mechanism, ``on_failure_callback=[MlopsNotifier("task_failed")]`` in every DAG's
default arguments, and go to the channels of every pipeline config (an ingest DAG serves several
use cases; the same channel is used once); the other events are sent by the tasks where they
happen, to their use case's channels (:func:`send`). A channel that fails is logged and never
fails the task that notified.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from airflow.providers.common.compat.notifier import BaseNotifier

log = logging.getLogger(__name__)

# The pipeline config's schema (mlops.core.config_schema, NOTIFICATION_EVENTS) lists the same
# events; it is not imported here: every DAG file imports this module when it is parsed.
EVENTS = ("task_failed", "approval_waiting", "approval_decision", "prod_deployed", "rollback", "silent_rollback",
          "drift_detected")
SUBJECTS = {
    "task_failed": "task failed", "approval_waiting": "approval waiting", "approval_decision": "approval decided",
    "prod_deployed": "deployed to prod", "rollback": "prod rolled back", "silent_rollback": "silent rollback detected",
    "drift_detected": "drift in prod traffic",
}


@dataclass(frozen=True)
class Notification:
    """What every channel receives (as JSON)."""

    event: str
    message: str
    dag_id: str = ""
    run_id: str = ""
    task_id: str = ""
    model_version: str = ""  # the model package ARN
    links: dict[str, str] = field(default_factory=dict)  # ui, report, console
    detail: dict[str, Any] = field(default_factory=dict)
    sent_at: str = ""

    @property
    def subject(self) -> str:
        """A short subject (SNS allows 100 characters)."""
        return f"[mlops] {self.dag_id}: {SUBJECTS.get(self.event, self.event)}"[:100]

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, default=str)


@dataclass(frozen=True)
class NotificationSettings:
    """The pipeline config's ``notifications`` section, checked."""

    sns_topic_arn: str | None = None
    webhook_conn_id: str | None = None
    webhook_endpoint: str | None = None
    events: tuple[str, ...] = EVENTS


def notification_settings(config) -> NotificationSettings:
    """``config``'s ``notifications`` section (absent: no channel but the local file), as
    :func:`~mlops.core.config.load_pipeline` checked it
    (:class:`~mlops.core.config_schema.Notifications`: a bad key raises
    :class:`~mlops.core.config.ConfigError` naming it when the file loads)."""
    section = config.spec.notifications if config.spec is not None else None
    if section is None:
        return NotificationSettings()
    return NotificationSettings(section.sns_topic_arn, section.webhook_conn_id, section.webhook_endpoint,
                                section.events)


# ---------------------------------------------------------------- channels
def notifications_file():
    """Where the local channel writes: ``$MLOPS_HOME/state/notifications.jsonl``."""
    from mlops.core.settings import get_settings

    return get_settings().state_dir / "notifications.jsonl"


def read_notifications() -> list[dict[str, Any]]:
    """Every notification the local channel wrote, oldest first."""
    path = notifications_file()
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


class LocalFileNotifier(BaseNotifier):
    """Appends a notification as one JSON line to :func:`notifications_file` (the local channel).

    :param message: the notification's JSON (one line).
    """

    def __init__(self, *, message: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.message = message

    def notify(self, context) -> None:
        import os

        path = notifications_file()
        path.parent.mkdir(parents=True, exist_ok=True)
        line = (self.message.replace("\n", " ") + "\n").encode("utf-8")
        descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(descriptor, line)  # one write of one line: concurrent tasks never interleave
        finally:
            os.close(descriptor)


def channels(settings: NotificationSettings, notification: Notification) -> list[tuple[tuple, BaseNotifier]]:
    """``[(channel key, notifier), ...]`` ``notification`` goes to (none when its event is not in
    ``settings.events``); the key tells one channel from another."""
    from mlops.core.settings import get_settings

    if notification.event not in settings.events:
        return []
    found: list[tuple[tuple, BaseNotifier]] = []
    if settings.sns_topic_arn:
        from airflow.providers.amazon.aws.notifications.sns import SnsNotifier

        project = get_settings()
        found.append((("sns", settings.sns_topic_arn), SnsNotifier(
            aws_conn_id=project.aws_conn_id, region_name=settings.sns_topic_arn.split(":")[3],
            target_arn=settings.sns_topic_arn, subject=notification.subject, message=notification.to_json(),
            message_attributes={"event": notification.event})))
    if settings.webhook_conn_id:
        from airflow.providers.http.notifications.http import HttpNotifier

        found.append((("webhook", settings.webhook_conn_id, settings.webhook_endpoint), HttpNotifier(
            http_conn_id=settings.webhook_conn_id, endpoint=settings.webhook_endpoint, method="POST",
            json=json.loads(notification.to_json()), headers={"Content-Type": "application/json"})))
    if get_settings().backend == "local":
        found.append((("local",), LocalFileNotifier(message=notification.to_json())))
    return found


def deliver(notification: Notification, settings: list[NotificationSettings], context=None) -> list[str]:
    """Send ``notification`` on every channel of ``settings`` (a channel named twice once);
    returns the notifiers that failed (each logged).

    ``notify`` is called directly, without rendering: a message may contain ``{{`` (an exception's
    text), which must not be read as a template."""
    failed, sent = [], set()
    for each in settings:
        for key, notifier in channels(each, notification):
            if key in sent:
                continue
            sent.add(key)
            try:
                notifier.notify(context or {})
            except Exception:
                log.exception("notification %s through %s failed", notification.event, type(notifier).__name__)
                failed.append(type(notifier).__name__)
    return failed


# ---------------------------------------------------------------- building notifications
def _ui_link(context) -> str:
    ti = context.get("ti")
    url = getattr(ti, "log_url", None)
    if url:
        return url
    from urllib.parse import quote

    from airflow.configuration import conf

    base = conf.get("api", "base_url", fallback="http://localhost:8080/").rstrip("/")
    dag_id = getattr(context.get("dag"), "dag_id", "")
    return f"{base}/dags/{dag_id}/runs/{quote(str(context.get('run_id', '')))}"


def build(event: str, context, message: str, model_version: str = "", report_uri: str = "",
          console_url: str = "", detail: dict[str, Any] | None = None) -> Notification:
    """A :class:`Notification` of ``event`` from a task's ``context``."""
    from mlops.ui.links import report_url

    if event not in EVENTS:
        raise ValueError(f"notification event {event!r} is not one of {', '.join(EVENTS)}")
    ti = context.get("ti")
    links = {"ui": _ui_link(context)}
    if report_uri:
        links["report"] = report_url(report_uri)
    if console_url:
        links["console"] = console_url
    return Notification(event=event, message=message, dag_id=getattr(context.get("dag"), "dag_id", ""),
                        run_id=str(context.get("run_id") or ""), task_id=getattr(ti, "task_id", "") or "",
                        model_version=model_version, links=links, detail=dict(detail or {}),
                        sent_at=datetime.now(UTC).isoformat())


def send(event: str, context, message: str, use_case: str | None = "churn", **fields: Any) -> Notification:
    """Build and deliver a notification of ``event`` (see :func:`build`) to ``use_case``'s
    channels (None: every pipeline config's); never raises for a channel that fails. Returns the
    notification."""
    from mlops.core.config import available_pipelines, load_pipeline

    notification = build(event, context, message, **fields)
    names = [use_case] if use_case else available_pipelines()
    deliver(notification, [notification_settings(load_pipeline(name)) for name in names], context)
    return notification


def model_version_of(context) -> tuple[str, str]:
    """``(model package ARN, report URI)`` a failed task's run was about: its Param, else what
    ``resolve_package`` (deploy_model) or ``register`` (train_model) returned."""
    params = context.get("params") or {}
    arn = params.get("model_package_arn") or ""
    ti = context.get("ti")
    for task_id in ("resolve_package", "register"):
        try:
            version = ti.xcom_pull(task_ids=task_id) if ti is not None else None
        except Exception:  # noqa: BLE001 - a failure callback must not fail on a missing XCom
            version = None
        if isinstance(version, dict) and version.get("arn"):
            return arn or version["arn"], (version.get("metadata") or {}).get("report_uri", "")
    return arn, ""


class MlopsNotifier(BaseNotifier):
    """An Airflow notifier for task callbacks: ``on_failure_callback=[MlopsNotifier("task_failed")]``.

    It reads the pipeline config's channels at run time (nothing at DAG parse time).

    :param event: one of :data:`EVENTS`.
    :param use_case: the pipeline config whose ``notifications`` section names the channels
        (None: every pipeline config's).
    """

    def __init__(self, event: str = "task_failed", use_case: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if event not in EVENTS:
            raise ValueError(f"notification event {event!r} is not one of {', '.join(EVENTS)}")
        self.event = event
        self.use_case = use_case

    def notify(self, context) -> None:
        from mlops.deploy.flow import SilentRollback

        ti = context.get("ti")
        error = context.get("exception")
        arn, report_uri = model_version_of(context)
        what = f"task {getattr(ti, 'task_id', '?')} of {getattr(context.get('dag'), 'dag_id', '?')} failed"
        event = "silent_rollback" if isinstance(error, SilentRollback) else self.event  # e.g. rollback_model's
        try:
            send(event, context, f"{what}: {error}" if error else what, use_case=self.use_case,
                 model_version=arn, report_uri=report_uri,
                 detail={"try_number": getattr(ti, "try_number", None), "error": str(error) if error else ""})
        except Exception:  # a failure callback must never hide the failure it reports
            log.exception("the %s notification of %s could not be sent", event, what)
