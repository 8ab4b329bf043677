"""Defaults every DAG shares (owner, retries) — imported at parse time, so nothing heavy here."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

START_DATE = datetime(2026, 1, 1, tzinfo=UTC)
DEFAULT_ARGS = {
    "owner": "mlops",
    "retries": 1,
    "retry_delay": timedelta(minutes=1),
}
USE_CASES = ("churn", "retail")
