"""Defaults every DAG shares (owner, retries, queues, pools) — imported at parse time, so nothing heavy here."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated

from pydantic import AfterValidator

from mlops.core.schema import env_value
from mlops.notifications import MlopsNotifier

START_DATE = datetime(2026, 1, 1, tzinfo=UTC)
DEFAULT_ARGS = {
    "owner": "mlops",
    "retries": 1,
    "retry_delay": timedelta(minutes=1),
    "on_failure_callback": [MlopsNotifier("task_failed")],  # the pipeline configs' notification channels
}
USE_CASES = ("churn", "retail")
# The churn model's registry group (``registry.group`` in include/pipelines/churn.yaml; a DAG
# integrity test keeps them equal) and the endpoints deploy_model and rollback_model manage.
CHURN_MODEL_GROUP = "churn-classifier"
STAGING_ENDPOINT = f"{CHURN_MODEL_GROUP}-staging"
PROD_ENDPOINT = f"{CHURN_MODEL_GROUP}-prod"

HEAVY_QUEUE_VARIABLE = "MLOPS_HEAVY_QUEUE"


def _queue(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name):
        raise ValueError("is not a queue name (1-64 letters, digits, '_', '.' or '-')")
    return name


QueueName = Annotated[str, AfterValidator(_queue)]


def queue_name(variable: str, default: str) -> str:
    """A Celery queue name from ``variable`` (``default`` when unset), checked."""
    return env_value(variable, QueueName, default)


def heavy_queue() -> str:
    """The queue of the local twins' heavy work (tuning, the refit, the AutoML twin, batch
    transform), ``$MLOPS_HEAVY_QUEUE`` or ``heavy``: CeleryExecutor workers of its own serve it
    (README: Scaling out). Every other task runs on Airflow's default queue
    (``[operators] default_queue``). The LocalExecutor ignores queues.

    :raises ValueError: not a queue name (only the DAG files with heavy tasks fail to import).
    """
    return queue_name(HEAVY_QUEUE_VARIABLE, "heavy")


@dataclass(frozen=True)
class PoolSpec:
    """An Airflow pool the project's tasks use; created when Airflow starts (``python -m tools.airflow_env pools``)."""

    name: str
    slots: int
    description: str
    include_deferred: bool = True  # a deploy waiting for SageMaker in the triggerer keeps its slot


def endpoint_pool(endpoint_name: str) -> str:
    """The pool of the tasks that change ``endpoint_name``: one at a time, whichever DAG runs them."""
    return f"endpoint-{endpoint_name}"


POOLS = tuple(
    PoolSpec(endpoint_pool(name), 1, f"one task at a time changes the endpoint {name}")
    for name in (STAGING_ENDPOINT, PROD_ENDPOINT)
)
