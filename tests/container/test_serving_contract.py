"""``include/serving/inference.py`` answered by the SageMaker scikit-learn container's serving stack.

The churn model the container's training toolkit trained (``refit_job``) is served by the
container's own WSGI app (``sagemaker_sklearn_container.serving:main``: sagemaker-containers'
Transformer and Flask Worker) from the ``sourcedir.tar.gz`` the AWS backend uploads; see
``serve_requests.py``. Each answer is what a client of a real endpoint would get from the
container; the last test checks that the local runtime turns each into what SageMaker Runtime
sends such a client.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import tarfile
from pathlib import Path

import pandas as pd
import pytest
from botocore.exceptions import ClientError

from mlops.backends.aws.serving_container import SERVING_PROGRAM, serving_archive
from mlops.core.messages import name_list
from mlops.core.storage import pack_model

DRIVER = Path(__file__).with_name("serve_requests.py")
CSV, JSON = "text/csv", "application/json"
CSV_ANSWER = "text/csv; charset=utf-8"  # Flask adds the charset to a text/* answer


def serve(python: Path, root: Path, model_dir: Path, archive: bytes, requests: list[dict]) -> list[dict]:
    """The container's answers to ``requests``, with ``model_dir`` packed and extracted as SageMaker does."""
    opt_ml = root / "opt" / "ml"
    (opt_ml / "model").mkdir(parents=True)
    uri, _ = pack_model(model_dir, (root / "model.tar.gz").as_uri())
    with tarfile.open(uri.removeprefix("file://")) as packed:
        packed.extractall(opt_ml / "model", filter="data")
    (root / "sourcedir.tar.gz").write_bytes(archive)
    (root / "requests.json").write_text(json.dumps(requests))
    env = {"PATH": "/usr/bin:/bin", "HOME": str(root), "LANG": "C.UTF-8", "SAGEMAKER_BASE_DIR": str(opt_ml),
           "SAGEMAKER_PROGRAM": SERVING_PROGRAM, "SAGEMAKER_SUBMIT_DIRECTORY": str(root / "sourcedir.tar.gz")}
    done = subprocess.run([str(python), str(DRIVER), str(root / "requests.json"), str(root / "answers.json")],
                          env=env, cwd=root, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((root / "answers.json").read_text())


def post(body: str, content_type: str | None = CSV, accept: str | None = CSV) -> dict:
    headers = {name: value for name, value in (("Content-Type", content_type), ("Accept", accept)) if value}
    return {"method": "POST", "path": "/invocations", "body": body, "headers": headers}


def csv_text(rows) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue()


@pytest.fixture(scope="module")
def features(refit_job, churn_frame):
    assert refit_job.returncode == 0, refit_job.output[-3000:]
    columns = json.loads(refit_job.request["HyperParameters"]["feature_columns"])
    return columns, churn_frame[columns].head(4)


def many(rows, n: int = 300):
    """``n`` records from ``rows``: copies with their numbers scaled, enough for the columnar path
    and the floats pyarrow writes (256 or more)."""
    copies = []
    for i in range(-(-n // len(rows))):
        copy = rows.copy()
        numbers = copy.select_dtypes("number").columns
        copy[numbers] = copy[numbers] * (1 + i / 50)
        copies.append(copy)
    return pd.concat(copies).head(n)


CASES = {  # name -> request, built from the feature rows
    "ping": lambda cols, rows: {"method": "GET", "path": "/ping"},
    "csv": lambda cols, rows: post(csv_text(rows.values.tolist())),
    "json": lambda cols, rows: post(json.dumps({"instances": rows.to_dict(orient="records")}), JSON, JSON),
    "csv_many": lambda cols, rows: post(csv_text(many(rows).values.tolist())),
    "json_many": lambda cols, rows: post(json.dumps({"instances": many(rows).to_dict(orient="records")}), JSON, JSON),
    "fields": lambda cols, rows: post(csv_text([rows.values.tolist()[0][:-2]])),
    "not_a_number": lambda cols, rows: post(csv_text(rows.assign(**{"Day Mins": "lots"}).values.tolist())),
    "bad_json": lambda cols, rows: post('{"instances": [', JSON, JSON),
    "text_plain": lambda cols, rows: post(csv_text(rows.values.tolist()), "text/plain"),
    "accept_both_json_first": lambda cols, rows: post(csv_text(rows.values.tolist()), CSV, "application/json, text/csv"),
    "accept_quality": lambda cols, rows: post(csv_text(rows.values.tolist()), CSV, "text/csv;q=0.5, application/json"),
    "accept_html": lambda cols, rows: post(csv_text(rows.values.tolist()), CSV, "text/html"),
    "no_accept": lambda cols, rows: post(csv_text(rows.values.tolist()), CSV, None),
}


@pytest.fixture(scope="module")
def answers(container, refit_job, features, tmp_path_factory) -> dict[str, dict]:
    columns, rows = features
    requests = {name: make(columns, rows) for name, make in CASES.items()}
    answered = serve(container, tmp_path_factory.mktemp("serve"), refit_job.model_dir, serving_archive()[0],
                     list(requests.values()))
    return dict(zip(requests, answered))


def refusal(answer: dict) -> tuple[int, str, str]:
    body = json.loads(answer["body"])
    return answer["status"], body["error"], body["error-message"]


def test_ping_is_healthy(answers):
    assert answers["ping"]["status"] == 200


def test_valid_csv_gets_one_label_and_probability_per_record(answers, features):
    answer = answers["csv"]
    rows = list(csv.reader(io.StringIO(answer["body"])))

    assert (answer["status"], answer["content_type"]) == (200, CSV_ANSWER)
    assert len(rows) == len(features[1])
    assert {label for label, _ in rows} <= {"True.", "False."}
    assert all(0.0 <= float(probability) <= 1.0 for _, probability in rows)


def test_valid_json_gets_the_same_predictions_as_csv(answers):
    answer = answers["json"]
    predictions = json.loads(answer["body"])["predictions"]
    from_csv = list(csv.reader(io.StringIO(answers["csv"]["body"])))

    assert (answer["status"], answer["content_type"]) == (200, JSON)
    assert [[p["predicted_label"], p["probability"]] for p in predictions] == \
        [[label, float(probability)] for label, probability in from_csv]


def test_many_csv_records_are_written_column_by_column_with_the_floats_json_writes(answers):
    """300 records take the handlers' columnar path in the container's libraries (its pyarrow
    writes the probabilities): each one reads back as the JSON answer's float, written by repr."""
    from_csv = list(csv.reader(io.StringIO(answers["csv_many"]["body"])))
    predictions = json.loads(answers["json_many"]["body"])["predictions"]

    assert answers["csv_many"]["status"] == 200 and len(from_csv) == len(predictions) == 300
    assert from_csv == [[p["predicted_label"], repr(p["probability"])] for p in predictions]


def test_a_record_with_the_wrong_field_count_is_a_400_naming_it(answers, features):
    columns = features[0]

    assert refusal(answers["fields"]) == (
        400, "RequestError", f"text/csv record 1 has {len(columns) - 2} fields; expected {len(columns)} "
                             f"({name_list(columns)})")
    assert answers["fields"]["content_type"] == JSON


def test_a_field_that_is_not_a_number_is_a_400_naming_record_column_and_value(answers):
    assert refusal(answers["not_a_number"]) == (
        400, "RequestError", "text/csv record 1, column 'Day Mins': 'lots' is not a number")


def test_invalid_json_is_a_400(answers):
    status, error, message = refusal(answers["bad_json"])

    assert (status, error) == (400, "RequestError")
    assert message.startswith("application/json payload is not valid JSON")


def test_an_unsupported_content_type_is_a_415(answers):
    assert refusal(answers["text_plain"]) == (
        415, "UnsupportedContentType", "content type 'text/plain' is not text/csv or application/json")


def test_a_multi_valued_accept_header_answers_in_the_first_acceptable_type(answers):
    assert (answers["accept_both_json_first"]["status"], answers["accept_both_json_first"]["content_type"]) == \
        (200, JSON)
    assert (answers["accept_quality"]["status"], answers["accept_quality"]["content_type"]) == (200, JSON)
    assert refusal(answers["accept_html"]) == (
        406, "NotAcceptable", "accept type 'text/html' allows neither text/csv nor application/json")


def test_without_accept_the_container_answers_in_its_default_json(answers):
    assert (answers["no_accept"]["status"], answers["no_accept"]["content_type"]) == (200, JSON)


def test_an_exception_from_input_fn_is_a_500_in_this_container(container, refit_job, tmp_path):
    """Why the handlers never raise: the container answers any handler exception with HTTP 500."""
    source = tmp_path / "src"
    source.mkdir()
    (source / SERVING_PROGRAM).write_text(
        "def model_fn(model_dir):\n    return None\n\n"
        "def input_fn(body, content_type):\n    raise ValueError('record 1 has 2 fields')\n")
    _, archive = pack_model(source, (tmp_path / "sourcedir.tar.gz").as_uri()), (tmp_path / "sourcedir.tar.gz")

    [answer] = serve(container, tmp_path / "root", refit_job.model_dir, archive.read_bytes(), [post("a,b\n")])

    assert answer["status"] == 500
    assert "Internal Server Error" in answer["body"]


def test_the_local_runtime_answers_as_sagemaker_runtime_does_with_this_containers_answers(
        answers, features, refit_job, tmp_path_factory):
    """Each container answer, seen through SageMaker Runtime: 200 as it is; any other status a 424
    ``ModelError`` whose ``OriginalStatusCode`` and ``OriginalMessage`` are the container's."""
    from mlops.backends.base import EndpointSpec
    from testkit.runtime import running_runtime

    home = tmp_path_factory.mktemp("runtime-home")
    uri, sha = pack_model(refit_job.model_dir, (home / "data" / "model.tar.gz").as_uri())
    columns, rows = features
    with running_runtime(home) as hosting:
        hosting.deploy(EndpointSpec("contract", "contract-1", uri, sha))
        client = hosting.runtime_client()
        for name, make in CASES.items():
            request = make(columns, rows)
            if request["method"] != "POST":
                continue
            params = {"EndpointName": "contract", "Body": request["body"].encode()}
            params.update({key: request["headers"][header] for key, header in
                           (("ContentType", "Content-Type"), ("Accept", "Accept")) if header in request["headers"]})
            container = answers[name]
            try:
                response = client.invoke_endpoint(**params)
            except ClientError as err:
                seen = (err.response["Error"]["Code"], err.response["ResponseMetadata"]["HTTPStatusCode"],
                        err.response["OriginalStatusCode"], err.response["OriginalMessage"])
                assert seen == ("ModelError", 424, container["status"], container["body"]), name
                continue
            assert container["status"] == 200, name
            assert response["ContentType"] == container["content_type"], name
            assert response["Body"].read().decode() == container["body"], name
