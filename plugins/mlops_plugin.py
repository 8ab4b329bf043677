"""Registers the project's extra links with Airflow, so the UI can show them."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from mlops.links import ResourceLink


class MlopsPlugin(AirflowPlugin):
    name = "mlops"
    operator_extra_links = [ResourceLink()]
