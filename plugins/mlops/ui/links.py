"""Extra links on task pages: the SageMaker console for AWS resources, the artifact or report
itself on the local backend. Operators store the URL with :func:`persist`; the link reads it.

Reports (model, validation, segmentation) open from the UI with :func:`report_url`: on S3, the
object's page in the S3 console; on a ``file://`` data root, the project's Airflow plugin serves
them from the API server (:mod:`mlops.ui.reports`, ``<api base_url>/mlops/reports/<path>``)
instead of a ``file://`` string a browser will not open from a web page."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow.providers.common.compat.sdk import BaseOperatorLink, XCom

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import TaskInstanceKey

XCOM_KEY = "mlops_resource_link"
REPORT_XCOM_KEY = "mlops_model_report"
REPORTS_PREFIX = "/mlops"  # where the plugin mounts mlops.ui.reports on the API server
REPORT_SUFFIXES = (".html", ".json", ".png", ".svg")


class ResourceLink(BaseOperatorLink):
    """"Resource" link: the SageMaker console page of what the task made, or its local artifact."""

    name = "Resource"

    def get_link(self, operator, *, ti_key: TaskInstanceKey) -> str:
        return XCom.get_value(key=XCOM_KEY, ti_key=ti_key) or ""


class ModelReportLink(BaseOperatorLink):
    """"Model report" link: the report of the model version the task registered or decides on."""

    name = "Model report"

    def get_link(self, operator, *, ti_key: TaskInstanceKey) -> str:
        return XCom.get_value(key=REPORT_XCOM_KEY, ti_key=ti_key) or ""


def report_url(uri: str) -> str:
    """Where a person opens the report at ``uri``: the S3 console for ``s3://``; for a file under
    the local data root, the API server's ``/mlops/reports/<path>``; anything else as it is."""
    from urllib.parse import quote

    if not uri:
        return ""
    if uri.startswith("s3://"):
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        return f"https://s3.console.aws.amazon.com/s3/object/{bucket}?prefix={quote(key)}"
    relative = _under_data_root(uri)
    if relative is None:
        return uri
    from airflow.configuration import conf

    base = conf.get("api", "base_url", fallback="http://localhost:8080/").rstrip("/")
    return f"{base}{REPORTS_PREFIX}/reports/{quote(relative)}"


def _under_data_root(uri: str) -> str | None:
    """``uri``'s path below the ``file://`` data root (``MLOPS_DATA_URI``), or None."""
    from pathlib import Path
    from urllib.parse import unquote, urlparse

    from mlops.core.settings import get_settings

    data_uri = get_settings().data_uri
    if not (uri.startswith("file://") and data_uri.startswith("file://")):
        return None
    root = Path(unquote(urlparse(data_uri).path)).resolve()
    path = Path(unquote(urlparse(uri).path)).resolve()
    if not path.is_relative_to(root) or path.suffix not in REPORT_SUFFIXES:
        return None
    return path.relative_to(root).as_posix()


def persist_report(context, report_uri: str | None) -> None:
    """Store the "Model report" link of ``report_uri`` for the task."""
    if report_uri:
        context["ti"].xcom_push(key=REPORT_XCOM_KEY, value=report_url(report_uri))


def persist(context, url: str | None) -> None:
    if url:
        context["ti"].xcom_push(key=XCOM_KEY, value=url)
