"""Registers the project's extra links with Airflow, so the UI can show them, and serves the local
data root's reports from the API server (``/mlops/reports/<path>``, :mod:`mlops.reports_app`)."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from mlops.links import ModelReportLink, ResourceLink
from mlops.reports_app import create_app


class MlopsPlugin(AirflowPlugin):
    name = "mlops"
    operator_extra_links = [ResourceLink(), ModelReportLink()]
    fastapi_apps = [{"app": create_app(), "url_prefix": "/mlops", "name": "MLOps reports"}]
