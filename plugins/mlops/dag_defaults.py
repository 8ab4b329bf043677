"""Defaults every DAG shares (owner, retries) — imported at parse time, so nothing heavy here."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

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
