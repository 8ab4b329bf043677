"""Extra links on task pages: the SageMaker console for AWS resources, the artifact or report
itself on the local backend. Operators store the URL with :func:`persist`; the link reads it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow.providers.common.compat.sdk import BaseOperatorLink, XCom

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import TaskInstanceKey

XCOM_KEY = "mlops_resource_link"
CONSOLE = "https://{region}.console.aws.amazon.com/sagemaker/home?region={region}#/{path}/{name}"
CONSOLE_PATHS = {
    "tuning": "hyper-tuning-jobs",
    "training": "jobs",
    "endpoint": "endpoints",
    "automl": "automl-jobs",
    "transform": "transform-jobs",
    "model-package": "model-registry",
}


class ResourceLink(BaseOperatorLink):
    """"Resource" link: the SageMaker console page of what the task made, or its local artifact."""

    name = "Resource"

    def get_link(self, operator, *, ti_key: TaskInstanceKey) -> str:
        return XCom.get_value(key=XCOM_KEY, ti_key=ti_key) or ""


def console_url(region: str, kind: str, name: str) -> str:
    return CONSOLE.format(region=region, path=CONSOLE_PATHS[kind], name=name)


def persist(context, url: str | None) -> None:
    if url:
        context["ti"].xcom_push(key=XCOM_KEY, value=url)
