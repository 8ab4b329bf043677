"""Registers the project's extra links with Airflow, so the UI can show them, and serves the local
data root's reports from the API server (``/mlops/reports/<path>``, :mod:`mlops.ui.reports`)."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from mlops.ui.links import ModelReportLink, ResourceLink
from mlops.ui.reports import create_app


class MlopsPlugin(AirflowPlugin):
    name = "mlops"
    operator_extra_links = [ResourceLink(), ModelReportLink()]
    fastapi_apps = [{"app": create_app(), "url_prefix": "/mlops", "name": "MLOps reports"}]
