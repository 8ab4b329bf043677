"""Answer HTTP requests with the SageMaker scikit-learn container's serving stack.

Run by the container environment's interpreter (``testkit.container``), never the project's:
``python serve_requests.py REQUESTS.json ANSWERS.json``. The environment names what the
container is given: ``SAGEMAKER_BASE_DIR`` (the test's ``/opt/ml``, whose ``model/`` holds the
extracted ``model.tar.gz``), ``SAGEMAKER_PROGRAM`` and ``SAGEMAKER_SUBMIT_DIRECTORY`` (the
``sourcedir.tar.gz`` the AWS backend uploads).

In the container, ``serve`` (sagemaker-containers' ``server.start``) extracts the submit
directory into ``/opt/ml/code`` with the library's ``download_and_extract``, pip-installs it and
starts gunicorn on ``sagemaker_sklearn_container.serving:main`` with ``/opt/ml/code`` on its
path. This extracts it with the same function, puts the folder on ``sys.path`` and calls the
same WSGI app, ``serving.main`` (the container's Transformer and Flask Worker), through
werkzeug's test client: no gunicorn, nginx or pip install of a one-file package.

REQUESTS.json: ``[{"method", "path", "body", "headers"}]``; ANSWERS.json: ``[{"status",
"content_type", "body"}]`` in the same order.
"""

import json
import os
import sys

from sagemaker_containers import _env, _files
from werkzeug.test import Client


def main(requests_file: str, answers_file: str) -> None:
    _files.download_and_extract(os.environ["SAGEMAKER_SUBMIT_DIRECTORY"], _env.code_dir)
    sys.path.insert(0, _env.code_dir)
    from sagemaker_sklearn_container import serving

    client = Client(serving.main)
    with open(requests_file, encoding="utf-8") as handle:
        requests = json.load(handle)
    answers = []
    for request in requests:
        response = client.open(request["path"], method=request["method"],
                               data=request.get("body", "").encode("utf-8"), headers=request.get("headers", {}))
        answers.append({"status": response.status_code, "content_type": response.headers.get("Content-Type"),
                        "body": response.get_data(as_text=True)})
    with open(answers_file, "w", encoding="utf-8") as handle:
        json.dump(answers, handle)


if __name__ == "__main__":
    main(*sys.argv[1:])
