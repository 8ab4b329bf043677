"""The reports of a ``file://`` data root, served by Airflow's API server (the project's plugin
mounts :func:`create_app` at ``/mlops``), so a report opens from the UI's extra links and the
approval pages instead of as a ``file://`` string a browser will not follow from a web page.

``GET /mlops/reports/<path>`` answers the file at ``<data root>/<path>`` when it is below the data
root (after resolving ``..`` and links) and is a report (``.html``, ``.json``, ``.png``, ``.svg``);
anything else is 404. Reports on S3 open in the S3 console instead (:func:`mlops.ui.links.report_url`).
The routes carry no Airflow login: they serve the local data root's reports only, on the API
server this project binds to loopback.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse


def local_data_root() -> Path | None:
    """The ``file://`` data root (``MLOPS_DATA_URI``), or None for ``s3://``."""
    from mlops.core.settings import get_settings

    data_uri = get_settings().data_uri
    return Path(unquote(urlparse(data_uri).path)).resolve() if data_uri.startswith("file://") else None


def create_app(data_root: Path | None = None):
    """The FastAPI app; ``data_root`` (default: :func:`local_data_root` at each request)."""
    from fastapi import FastAPI, HTTPException
    from fastapi.responses import FileResponse

    from mlops.ui.links import REPORT_SUFFIXES

    app = FastAPI(title="MLOps reports", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/reports/{path:path}")
    def report(path: str):
        root = data_root.resolve() if data_root is not None else local_data_root()
        if root is None:
            raise HTTPException(404, "reports are served from a file:// data root; on S3 they open in the S3 console")
        target = (root / path).resolve()
        if not target.is_relative_to(root) or target.suffix not in REPORT_SUFFIXES or not target.is_file():
            raise HTTPException(404, f"no report {path!r} under the data root")
        return FileResponse(target)

    return app
