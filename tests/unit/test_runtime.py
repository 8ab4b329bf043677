"""The local twin of SageMaker hosting, through LocalHosting and the real boto3 client.

A tiny real model (one-hot encoded text column + logistic regression) is packed like a
training job's ``model.tar.gz``, deployed to the runtime process, and invoked with the
``sagemaker-runtime`` client exactly as on AWS.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import threading
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from botocore.exceptions import ClientError
from sklearn.compose import make_column_transformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder

from mlops.backends.base import EndpointSpec
from mlops.backends.local.hosting import EndpointNotFound, LocalHosting
from mlops.backends.local.runtime.endpoints import MAX_PAYLOAD_BYTES, SERVERLESS_MAX_PAYLOAD_BYTES
from mlops.backends.local.runtime.service import PLUGINS_DIR, read_pid
from mlops.core.settings import Settings, get_settings
from mlops.core.storage import DigestMismatch, pack_model
from testkit.runtime import flip_a_byte, running_runtime

FEATURES = ["plan", "tenure", "charges"]
CLASSES = ["no", "yes"]
RECORDS = pd.DataFrame(
    {"plan": ["basic", "pro", "plus", "pro", "basic"], "tenure": [3, 50, 12, 2, 40],
     "charges": [40.5, 99.0, 61.25, 20.0, 75.0]}
)


# ---------------------------------------------------------------- a real model artifact
@dataclass(frozen=True)
class Model:
    estimator: Pipeline
    model_dir: Path

    def probability(self, frame: pd.DataFrame = RECORDS) -> np.ndarray:
        return self.estimator.predict_proba(frame)[:, 1]

    def labels(self, frame: pd.DataFrame = RECORDS) -> list[str]:
        return list(self.estimator.predict(frame))


def fit_model(model_dir: Path, flip_labels: bool, categorical: list[str] | None = None) -> Model:
    """Fit a churn-like classifier and write it in the artifact contract of inference.py.

    ``categorical`` is written to ``model.json`` as train.py does (a schema); without it the
    handlers infer column types per request, as for a model from elsewhere.
    """
    rng = np.random.default_rng(7)
    frame = pd.DataFrame({
        "plan": rng.choice(["basic", "plus", "pro"], 300),
        "tenure": rng.integers(0, 60, 300),
        "charges": rng.normal(60, 15, 300).round(2),
    })
    churn = (frame["plan"] == "basic") & (frame["tenure"] < 24) | (frame["charges"] > 80)
    target = np.where(churn != flip_labels, "yes", "no")
    estimator = make_pipeline(
        make_column_transformer((OneHotEncoder(handle_unknown="ignore"), ["plan"]), remainder="passthrough"),
        LogisticRegression(max_iter=1000),
    ).fit(frame[FEATURES], target)
    model_dir.mkdir(parents=True)
    joblib.dump(estimator, model_dir / "model.joblib")
    schema = {} if categorical is None else {"categorical": categorical}
    (model_dir / "model.json").write_text(json.dumps({
        "feature_columns": FEATURES, "target": "churn", "problem_type": "binary",
        "classes": CLASSES, "framework": "sklearn", **schema,
    }))
    return Model(estimator, model_dir)


def package(model: Model, home: Path, name: str) -> tuple[str, str]:
    """``model.tar.gz`` under ``home``'s data folder: (file:// URI, sha256)."""
    return pack_model(model.model_dir, (home / "data" / "models" / name / "model.tar.gz").as_uri())


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Model]:
    root = tmp_path_factory.mktemp("models")
    return {"a": fit_model(root / "a", flip_labels=False), "b": fit_model(root / "b", flip_labels=True),
            "typed": fit_model(root / "typed", flip_labels=False, categorical=["plan"])}


# ---------------------------------------------------------------- one runtime for the module
@dataclass(frozen=True)
class Runtime:
    settings: Settings
    hosting: LocalHosting
    artifacts: dict[str, tuple[str, str]]

    def deploy(self, name: str, model: str, config: str | None = None, **environment: str):
        uri, sha = self.artifacts[model]
        spec = EndpointSpec(name, config or f"{name}-{model}", uri, sha, environment=environment)
        return self.hosting.deploy(spec)


@pytest.fixture(scope="module")
def runtime(tmp_path_factory, models):
    """A runtime shared by the tests that only deploy and invoke (starting one takes seconds)."""
    home = tmp_path_factory.mktemp("mlops")
    with running_runtime(home) as hosting:
        yield Runtime(hosting.settings, hosting, {k: package(m, home, k) for k, m in models.items()})


@pytest.fixture(scope="module")
def client(runtime):
    return runtime.hosting.runtime_client()


@pytest.fixture
def own_hosting(mlops_home):
    """A runtime of its own (in a fresh MLOPS_HOME) for tests that stop or restart it."""
    hosting = LocalHosting(get_settings())
    yield hosting
    hosting.stop_runtime()


# ---------------------------------------------------------------- helpers
def csv_body(frame: pd.DataFrame = RECORDS) -> str:
    out = io.StringIO()
    frame.to_csv(out, header=False, index=False, lineterminator="\n")
    return out.getvalue()


def invoke_csv(client, name: str, body: str | bytes | None = None) -> list[list[str]]:
    body = csv_body() if body is None else body
    response = client.invoke_endpoint(EndpointName=name, ContentType="text/csv", Accept="text/csv", Body=body)
    assert response["ContentType"] == "text/csv; charset=utf-8"  # as the container answers
    return list(csv.reader(io.StringIO(response["Body"].read().decode())))


def answers_of(model: Model) -> list[list[str]]:
    """What ``invoke_csv`` returns when ``model`` serves RECORDS."""
    return [[label, repr(float(p))] for label, p in zip(model.labels(), model.probability(), strict=True)]


def status_of(error: ClientError) -> int:
    return error.response["ResponseMetadata"]["HTTPStatusCode"]


# ---------------------------------------------------------------- invocations
def test_ping_answers_with_the_runtime_pid(runtime):
    with urllib.request.urlopen(f"{runtime.settings.runtime_url}/ping", timeout=5) as response:
        assert response.status == 200
        assert json.loads(response.read())["pid"] == read_pid(runtime.settings.runtime_dir)


def test_deploy_returns_an_in_service_endpoint_reachable_with_boto3(runtime):
    endpoint = runtime.deploy("deployed", "a", config="deployed-config-1")

    assert endpoint.status == "InService"
    assert endpoint.config_name == "deployed-config-1"
    assert endpoint.runtime_endpoint_url == runtime.settings.runtime_url
    assert endpoint.url == f"{runtime.settings.runtime_url}/endpoints/deployed/invocations"
    assert endpoint.region == "us-east-1"
    assert runtime.hosting.describe("deployed") == endpoint


def test_csv_invocation_answers_each_record_like_predict_proba(runtime, client, models):
    runtime.deploy("csv", "a")

    rows = invoke_csv(client, "csv")

    assert len(rows) == len(RECORDS)
    assert [row[0] for row in rows] == models["a"].labels()
    assert [float(row[1]) for row in rows] == pytest.approx(models["a"].probability(), abs=1e-12)


def test_json_invocation_answers_each_record_like_predict_proba(runtime, client, models):
    runtime.deploy("json", "a")
    body = json.dumps({"instances": RECORDS.to_dict(orient="records")})

    response = client.invoke_endpoint(
        EndpointName="json", ContentType="application/json", Accept="application/json", Body=body
    )

    assert response["ContentType"] == "application/json"
    predictions = json.loads(response["Body"].read())["predictions"]
    assert len(predictions) == len(RECORDS)
    assert [p["predicted_label"] for p in predictions] == models["a"].labels()
    assert [p["probability"] for p in predictions] == pytest.approx(models["a"].probability(), abs=1e-12)


def test_inference_output_environment_selects_the_response_keys(runtime, client, models):
    runtime.deploy("keys", "a", SAGEMAKER_INFERENCE_OUTPUT="predicted_label,probabilities,labels")
    runtime.deploy("default-keys", "a")
    body = json.dumps({"instances": RECORDS.values.tolist()})

    def predictions(name):
        response = client.invoke_endpoint(
            EndpointName=name, ContentType="application/json", Accept="application/json", Body=body
        )
        return json.loads(response["Body"].read())["predictions"]

    chosen = predictions("keys")
    assert [list(p) for p in chosen] == [["predicted_label", "probabilities", "labels"]] * len(RECORDS)
    assert chosen[0]["labels"] == CLASSES
    assert np.array([p["probabilities"] for p in chosen]) == pytest.approx(
        models["a"].estimator.predict_proba(RECORDS), abs=1e-12
    )
    default = predictions("default-keys")
    assert [list(p) for p in default] == [["predicted_label", "probability"]] * len(RECORDS)


def test_submit_is_a_finished_deploy(runtime):
    uri, sha = runtime.artifacts["a"]

    handle = runtime.hosting.submit(EndpointSpec("submitted", "submitted-1", uri, sha))

    assert (handle.kind, handle.name, handle.done) == ("endpoint", "submitted", True)
    assert runtime.hosting.collect(handle) == runtime.hosting.describe("submitted").to_dict()


def test_unknown_inference_output_key_fails_the_deploy(runtime):
    with pytest.raises(RuntimeError, match="unknown inference response keys"):
        runtime.deploy("bad-keys", "a", SAGEMAKER_INFERENCE_OUTPUT="predicted_label,score")

    with pytest.raises(EndpointNotFound):
        runtime.hosting.describe("bad-keys")


def raises_from_invoke(client, name: str, **params) -> ClientError:
    """The ClientError botocore raises for an invocation, parsed with sagemaker-runtime's error shapes."""
    params = {"ContentType": "text/csv", "Accept": "text/csv", "Body": csv_body(), **params}
    with pytest.raises(ClientError) as raised:
        client.invoke_endpoint(EndpointName=name, **params)
    return raised.value


def model_error_of(error: ClientError) -> dict:
    """What a client of SageMaker sees in a ModelError: code, status and the modeled fields."""
    response = error.response
    return {"code": response["Error"]["Code"], "http_status": status_of(error),
            "original_status": response["OriginalStatusCode"],
            "original_message": json.loads(response["OriginalMessage"])}


def test_unknown_endpoint_is_a_400_validation_error_naming_it(client):
    error = raises_from_invoke(client, "no-such-endpoint")

    assert isinstance(error, client.exceptions.ValidationError)
    assert status_of(error) == 400
    assert error.response["Error"]["Message"] == "Endpoint no-such-endpoint of account 000000000000 not found."


def test_an_endpoint_name_sagemaker_refuses_is_a_400_validation_error(client):
    too_long = "e" * 64  # botocore checks no maximum or pattern: SageMaker does

    error = raises_from_invoke(client, too_long)

    assert isinstance(error, client.exceptions.ValidationError)
    assert status_of(error) == 400
    assert f"Value '{too_long}' at 'endpointName' failed to satisfy constraint" in error.response["Error"]["Message"]


def test_malformed_csv_is_a_424_model_error_with_the_containers_400_and_the_endpoint_keeps_serving(
        runtime, client, models):
    runtime.deploy("malformed", "a")

    error = raises_from_invoke(client, "malformed", Body="basic,3\n")

    assert isinstance(error, client.exceptions.ModelError)
    assert model_error_of(error) == {
        "code": "ModelError", "http_status": 424, "original_status": 400,
        "original_message": {"error": "RequestError",
                             "error-message": "text/csv record 1 has 2 fields; expected 3 (['plan', 'tenure', 'charges'])"}}
    assert error.response["Error"]["Message"].startswith('Received client error (400) from primary with message "{')
    assert error.response["LogStreamArn"] == "arn:aws:logs:us-east-1:000000000000:log-group:/aws/sagemaker/Endpoints/malformed"
    assert invoke_csv(client, "malformed") == answers_of(models["a"])


def test_a_value_that_is_not_a_number_is_the_containers_400_naming_record_column_and_value(runtime, client):
    runtime.deploy("not-a-number", "typed")

    error = raises_from_invoke(client, "not-a-number", Body="pro,12,61\nbasic,soon,20\n")

    assert model_error_of(error)["original_status"] == 400
    assert model_error_of(error)["original_message"]["error-message"] == \
        "text/csv record 2, column 'tenure': 'soon' is not a number"


@pytest.mark.parametrize(("params", "status", "error"), [
    ({"ContentType": "text/plain"}, 415, "UnsupportedContentType"),
    ({"Accept": "text/html"}, 406, "NotAcceptable"),
])
def test_an_unsupported_content_type_or_accept_is_the_containers_415_or_406(runtime, client, params, status, error):
    runtime.deploy("content-type", "a")

    refused = model_error_of(raises_from_invoke(client, "content-type", **params))

    assert (refused["http_status"], refused["original_status"], refused["original_message"]["error"]) == \
        (424, status, error)


def test_a_failure_inside_the_model_is_the_containers_500(runtime, client):
    runtime.deploy("model-fails", "a")  # no schema: "x" reaches the model, which cannot use it

    error = raises_from_invoke(client, "model-fails", Body="basic,x,40.5\n")

    assert isinstance(error, client.exceptions.ModelError)
    assert (status_of(error), error.response["OriginalStatusCode"]) == (424, 500)
    assert error.response["Error"]["Message"].startswith("Received server error (500) from primary")


def test_a_missing_accept_answers_in_the_containers_default_type(runtime, client, models):
    runtime.deploy("json-default", "a")
    runtime.deploy("csv-default", "a", SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT="text/csv")

    def answer(name: str, **accept: str):
        response = client.invoke_endpoint(EndpointName=name, ContentType="text/csv", Body=csv_body(), **accept)
        return response["ContentType"], response["Body"].read().decode()

    kind, body = answer("json-default")
    assert kind == "application/json"
    assert [p["predicted_label"] for p in json.loads(body)["predictions"]] == models["a"].labels()
    assert answer("json-default", Accept="*/*")[0] == "application/json"
    assert answer("csv-default")[0] == "text/csv; charset=utf-8"
    assert answer("json-default", Accept="application/json;q=0.5, text/csv")[0] == "text/csv; charset=utf-8"


def test_payload_over_6_mb_is_a_413_and_6_mb_is_accepted(runtime, client):
    runtime.deploy("large", "a")
    at_limit = b"basic,1,2.0\n" * (MAX_PAYLOAD_BYTES // 12)
    assert len(at_limit) == MAX_PAYLOAD_BYTES == 6 * 1024 * 1024

    over = raises_from_invoke(client, "large", Body=at_limit + b"\n")
    at = raises_from_invoke(client, "large", Body=at_limit)  # not too large, but more records than one request may hold

    assert (over.response["Error"]["Code"], status_of(over)) == ("413", 413)
    assert over.response["Error"]["Message"] == f"HTTP content length exceeded {MAX_PAYLOAD_BYTES} bytes."
    assert (status_of(at), at.response["OriginalStatusCode"]) == (424, 400)
    assert "records in one request" in at.response["OriginalMessage"]


def test_a_serverless_endpoint_takes_at_most_4_mb(runtime, client):
    uri, sha = runtime.artifacts["a"]
    runtime.hosting.deploy(EndpointSpec("small-serverless", "small-serverless-a", uri, sha,
                                        serverless={"MemorySizeInMB": 2048, "MaxConcurrency": 2}))
    runtime.deploy("small-instances", "a")
    over = b"basic,1,2.0\n" * (SERVERLESS_MAX_PAYLOAD_BYTES // 12 + 1)
    assert SERVERLESS_MAX_PAYLOAD_BYTES < len(over) < MAX_PAYLOAD_BYTES

    refused = raises_from_invoke(client, "small-serverless", Body=over)
    served = raises_from_invoke(client, "small-instances", Body=over)  # within the real-time limit

    assert (refused.response["Error"]["Code"], status_of(refused)) == ("413", 413)
    assert refused.response["Error"]["Message"] == f"HTTP content length exceeded {SERVERLESS_MAX_PAYLOAD_BYTES} bytes."
    assert status_of(served) == 424  # the model refuses that many records: the body got through


def test_a_failure_of_the_runtime_itself_is_a_500_internal_failure(tmp_path):
    """Parsed by botocore's own parser for InvokeEndpoint, from the app's raw answer."""
    import botocore.session
    from botocore.parsers import create_parser
    from fastapi.testclient import TestClient

    from mlops.backends.local.runtime.app import create_app
    from mlops.backends.local.runtime.endpoints import EndpointTable
    from mlops.core.entrypoints import inference_module

    class BrokenTable(EndpointTable):
        def get(self, name, account=None):
            raise OSError("disk gone")

    app = create_app(BrokenTable(tmp_path, inference_module()), tmp_path)
    answer = TestClient(app, raise_server_exceptions=False).post("/endpoints/any/invocations", content=b"1")
    model = botocore.session.get_session().get_service_model("sagemaker-runtime")
    operation = model.operation_model("InvokeEndpoint")
    parsed = create_parser(model.metadata["protocol"]).parse(
        {"status_code": answer.status_code, "headers": dict(answer.headers), "body": answer.content}, operation.output_shape)

    assert parsed["Error"]["Code"] == "InternalFailure"
    assert parsed["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert "disk gone" in parsed["Error"]["Message"]
    assert "InternalFailure" in [shape.name for shape in operation.error_shapes]


# ---------------------------------------------------------------- deploys
def test_tampered_artifact_is_refused_and_the_old_model_keeps_serving(runtime, client, models):
    runtime.deploy("tamper", "a")
    uri, sha = package(models["b"], runtime.settings.home, "tampered")
    flip_a_byte(uri)

    with pytest.raises(DigestMismatch):
        runtime.hosting.deploy(EndpointSpec("tamper", "tamper-b", uri, sha))

    assert runtime.hosting.describe("tamper").config_name == "tamper-a"
    assert invoke_csv(client, "tamper") == answers_of(models["a"])


def test_redeploy_swaps_the_model(runtime, client, models):
    runtime.deploy("swap", "a")
    assert invoke_csv(client, "swap") == answers_of(models["a"])

    endpoint = runtime.deploy("swap", "b", config="swap-config-2")

    assert endpoint.config_name == "swap-config-2"
    assert invoke_csv(client, "swap") == answers_of(models["b"])
    assert answers_of(models["b"]) != answers_of(models["a"])


def test_requests_during_a_redeploy_are_answered_by_the_old_or_the_new_model(runtime, models):
    runtime.deploy("hot", "a")
    expected = {"a": answers_of(models["a"]), "b": answers_of(models["b"])}
    answered, failures, done = [], [], threading.Event()

    def keep_invoking():
        client = runtime.hosting.runtime_client()
        while not done.is_set():
            try:
                answered.append(invoke_csv(client, "hot"))
            except Exception as err:  # noqa: BLE001 - every failure is a finding here
                failures.append(err)

    workers = [threading.Thread(target=keep_invoking) for _ in range(4)]
    for worker in workers:
        worker.start()
    try:
        runtime.deploy("hot", "b")
        last = invoke_csv(runtime.hosting.runtime_client(), "hot")
    finally:
        done.set()
        for worker in workers:
            worker.join()

    assert failures == []
    assert answered and all(answer in expected.values() for answer in answered)
    assert last == expected["b"]


def test_delete_removes_the_endpoint_and_deleting_again_is_fine(runtime, client):
    runtime.deploy("doomed", "a")

    runtime.hosting.delete("doomed")
    runtime.hosting.delete("doomed")

    with pytest.raises(EndpointNotFound):
        runtime.hosting.describe("doomed")
    error = raises_from_invoke(client, "doomed")
    assert isinstance(error, client.exceptions.ValidationError) and status_of(error) == 400


# ---------------------------------------------------------------- the runtime process
def test_restarted_runtime_restores_its_endpoints(own_hosting, mlops_home, models):
    uri, sha = package(models["b"], mlops_home, "b")
    own_hosting.deploy(EndpointSpec("restored", "restored-config", uri, sha))
    first_pid = read_pid(own_hosting.settings.runtime_dir)
    own_hosting.stop_runtime()

    restarted = LocalHosting(get_settings())
    endpoint = restarted.describe("restored")

    assert read_pid(own_hosting.settings.runtime_dir) not in (None, first_pid)
    assert (endpoint.status, endpoint.config_name) == ("InService", "restored-config")
    assert invoke_csv(restarted.runtime_client(), "restored") == answers_of(models["b"])


def test_a_restarted_runtime_checks_the_artifacts_digest_again_and_serves_no_changed_model(own_hosting, mlops_home,
                                                                                          models):
    uri, sha = package(models["b"], mlops_home, "b-tampered")
    own_hosting.deploy(EndpointSpec("rechecked", "rechecked-config", uri, sha))
    own_hosting.stop_runtime()
    flip_a_byte(uri)  # the artifact changed while the runtime was down; its extracted copy did not

    endpoint = LocalHosting(get_settings()).describe("rechecked")

    assert endpoint.status == "Failed"
    error = raises_from_invoke(own_hosting.runtime_client(), "rechecked")
    assert status_of(error) == 400 and "DigestMismatch" in str(error)


def test_a_runtime_running_other_code_is_restarted_with_its_endpoints(own_hosting, mlops_home, models,
                                                                      monkeypatch):
    """A runtime left running while the checkout changed would serve new models with its old
    handlers: the next start stops it and starts this checkout's, which restores the endpoints."""
    from mlops.backends.local.runtime import service
    from mlops.core.code_version import content_digest

    uri, sha = package(models["b"], mlops_home, "b-code")
    own_hosting.deploy(EndpointSpec("kept", "kept-config", uri, sha))
    old_pid = read_pid(own_hosting.settings.runtime_dir)
    assert service.ping(own_hosting.settings)["code"] == content_digest()
    assert service.start_runtime(own_hosting.settings) == old_pid  # the same code: left alone

    monkeypatch.setattr(service, "_this_code", lambda: "the checkout after a change")
    new_pid = service.start_runtime(own_hosting.settings)

    assert new_pid != old_pid
    with pytest.raises(ProcessLookupError):
        os.kill(old_pid, 0)
    assert read_pid(own_hosting.settings.runtime_dir) == new_pid
    assert invoke_csv(own_hosting.runtime_client(), "kept") == answers_of(models["b"])


def test_stop_leaves_no_process_and_stopping_again_is_fine(own_hosting):
    own_hosting.ensure_running()
    runtime_dir = own_hosting.settings.runtime_dir
    pid = read_pid(runtime_dir)
    assert pid is not None

    own_hosting.stop_runtime()
    own_hosting.stop_runtime()

    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not (runtime_dir / "runtime.pid").exists()
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{own_hosting.settings.runtime_url}/ping", timeout=2)


def run_runtime_command(command: str) -> subprocess.CompletedProcess:
    """``python -m mlops.backends.local.runtime <command>`` for this test's MLOPS_HOME, as a launcher runs it."""
    env = {**os.environ, "PYTHONPATH": str(PLUGINS_DIR)}
    return subprocess.run([sys.executable, "-m", "mlops.backends.local.runtime", command], env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def test_start_command_starts_a_detached_runtime_and_prints_its_url_and_pid(own_hosting):
    settings = own_hosting.settings

    started = run_runtime_command("start")

    pid = read_pid(settings.runtime_dir)
    assert started.returncode == 0, started.stderr
    assert started.stdout.startswith(f"runtime {pid} serving {settings.runtime_url}")
    assert os.getsid(pid) == pid  # a session of its own: the launcher's end does not end it
    with urllib.request.urlopen(f"{settings.runtime_url}/ping", timeout=5) as response:
        assert json.loads(response.read())["pid"] == pid


def test_start_command_is_idempotent_when_the_runtime_runs(own_hosting):
    own_hosting.ensure_running()
    pid = read_pid(own_hosting.settings.runtime_dir)

    again = run_runtime_command("start")

    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith(f"runtime {pid} serving ")
    assert read_pid(own_hosting.settings.runtime_dir) == pid


def test_a_runtime_service_elsewhere_is_waited_for_and_never_started_here(mlops_home):
    from dataclasses import replace

    from mlops.backends.local.runtime.service import start_runtime

    elsewhere = replace(get_settings(), runtime_service_url="http://model-runtime.invalid:8765")

    with pytest.raises(RuntimeError, match="did not answer .* it is a service of its own"):
        start_runtime(elsewhere, timeout=0.5)
    assert read_pid(elsewhere.runtime_dir) is None


def test_requests_are_logged_with_status_and_milliseconds(runtime, client):
    runtime.deploy("logged", "a")
    invoke_csv(client, "logged")

    log = (runtime.settings.runtime_dir / "runtime.log").read_text()

    assert any(
        "POST /endpoints/logged/invocations 200" in line and line.endswith("ms") for line in log.splitlines()
    )


# ---------------------------------------------------------------- answering concurrent requests together
def served(model: Model):
    from mlops.backends.local.runtime.endpoints import ServedEndpoint
    from mlops.core.entrypoints import inference_module

    inference = inference_module()
    loaded = inference.model_fn(str(model.model_dir))
    return inference, ServedEndpoint(
        name="batch", config_name="batch-1", model_uri="file:///m.tar.gz", sha256="0" * 64, environment={},
        created_at="t", last_modified_at="t", model=loaded, response_keys=tuple(inference.response_keys(loaded)),
    )


def answer_together(batcher, endpoint, bodies: list[tuple[str, str]]) -> list:
    """Hand ``bodies`` ((body, content type)) to the batcher as one queued group; results or errors."""
    import asyncio

    from mlops.backends.local.runtime.batcher import _Invocation

    async def scenario():
        loop = asyncio.get_running_loop()
        jobs = [_Invocation(endpoint, body.encode(), content_type, content_type, loop, loop.create_future())
                for body, content_type in bodies]
        await loop.run_in_executor(None, batcher._answer, jobs)
        return await asyncio.gather(*(job.future for job in jobs), return_exceptions=True)

    return asyncio.run(scenario())


def test_queued_requests_are_predicted_together_and_answered_as_alone(models):
    from mlops.backends.local.runtime.batcher import PredictionBatcher

    inference, endpoint = served(models["a"])
    batcher = PredictionBatcher(inference)
    bodies = [(csv_body(RECORDS.iloc[[i]]), "text/csv") for i in range(len(RECORDS))]
    bodies.append((json.dumps({"instances": RECORDS.to_dict(orient="records")}), "application/json"))
    alone = [endpoint.invoke(inference, body.encode(), kind, kind) for body, kind in bodies]

    together = answer_together(batcher, endpoint, bodies)

    assert together == alone
    # CSV and JSON requests parse to the same column types here: one predict_fn call answers all
    assert (batcher.invocations, batcher.predict_calls) == (len(bodies), 1)


def test_a_bad_request_in_a_group_fails_alone(models):
    from mlops.backends.local.runtime.batcher import PredictionBatcher

    inference, endpoint = served(models["a"])
    batcher = PredictionBatcher(inference)
    good = csv_body(RECORDS.iloc[[0]])

    answers = answer_together(batcher, endpoint, [(good, "text/csv"), ("basic,3\n", "text/csv"),
                                                  ("unknown,x,1.0\n", "text/csv"), (good, "text/csv")])

    expected = endpoint.invoke(inference, good.encode(), "text/csv", "text/csv")
    assert answers[0] == answers[3] == expected
    assert isinstance(answers[1], ValueError) and "has 2 fields" in str(answers[1])
    assert isinstance(answers[2], ValueError)  # "x" is no number: the pipeline refuses that row alone


def test_requests_with_different_column_types_are_not_combined(models):
    from mlops.backends.local.runtime.batcher import PredictionBatcher

    inference, endpoint = served(models["a"])
    batcher = PredictionBatcher(inference)
    integral, decimal = "pro,12,61\n", "pro,12,61.5\n"  # charges parse as int64 in one, float64 in the other

    answers = answer_together(batcher, endpoint, [(integral, "text/csv"), (decimal, "text/csv")])

    assert answers == [endpoint.invoke(inference, b.encode(), "text/csv", "text/csv") for b in (integral, decimal)]
    assert batcher.predict_calls == 2


# ---------------------------------------------------------------- a model with a schema: typed and parsed together
def test_a_schema_types_columns_from_the_model_not_from_the_request(models):
    inference, endpoint = served(models["typed"])

    frame = inference.parse_request(b"pro,12,61\n", "text/csv", endpoint.model)

    assert list(frame.columns) == FEATURES
    assert pd.api.types.is_string_dtype(frame["plan"])
    assert frame["tenure"].dtype == frame["charges"].dtype == np.float64  # "61" and "61.5" read alike
    assert frame["charges"].tolist() == [61.0]
    assert inference.parse_request(b"pro,12,\n", "text/csv", endpoint.model)["charges"].isna().all()  # empty: missing


@pytest.mark.parametrize(("body", "kind", "message"), [
    (b"pro,12,61\nbasic,x1,20\n", "text/csv", "text/csv record 2, column 'tenure': 'x1' is not a number"),
    (b'{"instances": [{"plan": "pro", "tenure": 3, "charges": "lots"}]}', "application/json",
     "JSON instance 1, column 'charges': 'lots' is not a number"),
])
def test_a_schema_names_the_record_column_and_value_that_is_not_a_number(models, body, kind, message):
    inference, endpoint = served(models["typed"])

    with pytest.raises(ValueError) as err:
        inference.parse_request(body, kind, endpoint.model)

    assert str(err.value) == message


def test_batch_input_fn_gives_each_requests_rows_as_parse_request_does(models):
    inference, endpoint = served(models["typed"])
    bodies = [b"pro,12,61\n", b"basic,3,20.5\r\n\nplus,40,99\n", b'"pro",7,"55.25"']

    frame, sizes = inference.batch_input_fn(bodies, "text/csv", endpoint.model)

    alone = [inference.parse_request(body, "text/csv", endpoint.model) for body in bodies]
    assert sizes == [1, 2, 1]
    pd.testing.assert_frame_equal(frame, pd.concat(alone, ignore_index=True))
    # requests it cannot type from a schema are left to parse_request, one by one
    assert inference.batch_input_fn([b"{}"], "application/json", endpoint.model) is None
    assert inference.batch_input_fn(bodies, "text/csv", served(models["a"])[1].model) is None


def test_queued_csv_requests_to_a_typed_model_are_parsed_and_predicted_in_one_call(models):
    from mlops.backends.local.runtime.batcher import PredictionBatcher

    inference, endpoint = served(models["typed"])
    batcher = PredictionBatcher(inference)
    bodies = [(csv_body(RECORDS.iloc[[i]]), "text/csv") for i in range(len(RECORDS))]
    bodies += [("pro,12,61\n", "text/csv"), ("pro,12,61.5\n", "text/csv")]  # int and float alike here
    alone = [endpoint.invoke(inference, body.encode(), kind, kind) for body, kind in bodies]

    together = answer_together(batcher, endpoint, bodies)

    assert together == alone
    assert (batcher.invocations, batcher.predict_calls) == (len(bodies), 1)
    assert [row.split(",")[0] for row in "".join(answer[0] for answer in together).splitlines()] == \
        models["typed"].labels(pd.concat([RECORDS, pd.DataFrame(
            {"plan": ["pro", "pro"], "tenure": [12, 12], "charges": [61.0, 61.5]})], ignore_index=True))


def test_a_bad_request_among_typed_ones_fails_alone_and_the_rest_are_answered(models):
    from mlops.backends.local.runtime.batcher import PredictionBatcher

    inference, endpoint = served(models["typed"])
    batcher = PredictionBatcher(inference)
    good = csv_body(RECORDS.iloc[[0]])

    answers = answer_together(batcher, endpoint, [(good, "text/csv"), ("pro,soon,1\n", "text/csv"),
                                                  ("pro,1\n", "text/csv"), (good, "text/csv")])

    expected = endpoint.invoke(inference, good.encode(), "text/csv", "text/csv")
    assert answers[0] == answers[3] == expected
    assert str(answers[1]) == "text/csv record 1, column 'tenure': 'soon' is not a number"
    assert isinstance(answers[2], ValueError) and "has 2 fields" in str(answers[2])


# ---------------------------------------------------------------- waiting for the clients the last batch answered
def queued_jobs(endpoint, count: int, queued_at: float) -> list:
    import asyncio

    from mlops.backends.local.runtime.batcher import _Invocation

    loop = asyncio.new_event_loop()
    return [_Invocation(endpoint, b"", "text/csv", "text/csv", loop, loop.create_future(), queued_at=queued_at)
            for _ in range(count)]


def wait_for_company(batcher, first: list, later: list, answered: int, answered_at: float) -> list:
    """``_wait_for_company`` with ``first`` taken and ``later`` queued by another thread meanwhile."""
    batcher._answered, batcher._answered_at = answered, answered_at

    def send_later():
        for job in later:
            threading.Event().wait(0.2)
            batcher._queue.put(job)

    sender = threading.Thread(target=send_later)
    sender.start()
    jobs = list(first)
    batcher._wait_for_company(jobs)
    sender.join()
    return jobs


def test_a_batch_waits_for_the_clients_the_last_batch_answered_and_no_longer(models):
    import time

    from mlops.backends.local.runtime.batcher import PredictionBatcher

    _, endpoint = served(models["typed"])
    batcher = PredictionBatcher(served(models["typed"])[0], batch_wait=60.0)
    answered_at = time.monotonic()
    returning = queued_jobs(endpoint, 4, answered_at + 1)

    jobs = wait_for_company(batcher, returning[:1], returning[1:], answered=3, answered_at=answered_at)

    assert jobs == returning[:3]  # the three clients answered last came back: no more waiting
    assert batcher._queue.get_nowait() is returning[3]  # the fourth is left for the next batch
    # requests that queued while the last batch was predicted count on top of the ones it answered
    earlier = queued_jobs(endpoint, 1, answered_at - 1)
    jobs = wait_for_company(batcher, earlier, returning[:2], answered=2, answered_at=answered_at)
    assert jobs == earlier + returning[:2]


def test_a_lone_client_never_waits_and_a_zero_wait_turns_waiting_off(models):
    import time

    from mlops.backends.local.runtime.batcher import PredictionBatcher

    inference, endpoint = served(models["typed"])
    answered_at = time.monotonic()
    first, second = queued_jobs(endpoint, 2, answered_at + 1)

    lone = PredictionBatcher(inference, batch_wait=60.0)
    assert wait_for_company(lone, [first], [second], answered=1, answered_at=answered_at) == [first]
    assert lone._queue.get_nowait() is second  # left for the next batch

    off = PredictionBatcher(inference, batch_wait=0.0)
    assert wait_for_company(off, [first], [second], answered=8, answered_at=answered_at) == [first]
    with pytest.raises(ValueError, match="batch_wait"):
        PredictionBatcher(inference, batch_wait=-1)


@pytest.mark.parametrize(("raw", "expected"), [("", 3.0), ("0", 0.0), ("1.5", 1.5),
                                             ("x", "valid number"), ("nan", "finite number"),
                                             ("inf", "finite number"), ("-1", "greater than or equal to 0")])
def test_runtime_settings_from_the_environment_are_numbers_or_a_clear_error(monkeypatch, raw, expected):
    """The runtime reads MLOPS_RUNTIME_BATCH_WAIT_MS as serve() does; a bad value names itself."""
    from mlops.backends.local.runtime.batcher import BATCH_WAIT_S
    from mlops.core.schema import NonNegativeFloat, env_value

    monkeypatch.setenv("MLOPS_RUNTIME_BATCH_WAIT_MS", raw)
    read = lambda: env_value("MLOPS_RUNTIME_BATCH_WAIT_MS", NonNegativeFloat, BATCH_WAIT_S * 1000)  # noqa: E731
    if isinstance(expected, float):
        assert read() == expected
    else:
        with pytest.raises(ValueError, match=f"MLOPS_RUNTIME_BATCH_WAIT_MS='{raw}': input should be .*{expected}"):
            read()


def test_freeze_heap_takes_the_objects_alive_now_out_of_collections():
    import gc

    from mlops.backends.local.runtime.endpoints import freeze_heap

    gc.unfreeze()
    try:
        freeze_heap()
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


def test_concurrent_clients_get_the_answers_of_one_at_a_time(runtime, models):
    from concurrent.futures import ThreadPoolExecutor

    runtime.deploy("concurrent", "a")
    rows = [csv_body(RECORDS.iloc[[i % len(RECORDS)]]) for i in range(40)]
    expected = {body: invoke_csv(runtime.hosting.runtime_client(), "concurrent", body) for body in set(rows)}
    clients = [runtime.hosting.runtime_client() for _ in range(8)]

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda i: invoke_csv(clients[i % 8], "concurrent", rows[i]), range(len(rows))))

    assert answers == [expected[body] for body in rows]
    with urllib.request.urlopen(f"{runtime.settings.runtime_url}/ping", timeout=5) as response:
        stats = json.loads(response.read())
    assert stats["invocations"] >= len(rows) and stats["predict_calls"] <= stats["invocations"]


# ---------------------------------------------------------------- the endpoint tests, against this runtime
def test_endpoint_tests_pass_on_a_correct_endpoint_and_catch_a_wrong_model(runtime, client, models, tmp_path):
    from mlops.deploy.endpoint_checks import run_endpoint_tests

    golden = RECORDS.assign(probability=models["a"].probability())
    golden.to_parquet(tmp_path / "golden.parquet", index=False)
    runtime.deploy("tested-a", "a")
    runtime.deploy("tested-b", "b")

    good = run_endpoint_tests(client, "tested-a", (tmp_path / "golden.parquet").as_uri(), requests=10)
    wrong = run_endpoint_tests(client, "tested-b", (tmp_path / "golden.parquet").as_uri(), requests=10)

    checks = {c["name"]: c for c in good["checks"]}
    assert good["passed"], [c for c in good["checks"] if not c["passed"]]
    assert set(checks) == {"csv_contract", "json_contract", "golden_rows", "csv_json_parity", "batch_online_parity",
                           "malformed_payload_4xx", "serves_after_error", "latency_measured"}
    assert checks["malformed_payload_4xx"]["detail"] == {"status": 400, "http_status": 424, "error": "ModelError"}
    assert set(good["latency_ms"]) == {"requests", "p50", "p95", "p99"}
    assert [c["name"] for c in wrong["checks"] if not c["passed"]] == ["golden_rows"]


def test_a_model_error_counts_with_the_containers_status_not_sagemakers_424():
    from botocore.exceptions import ClientError

    from mlops.deploy.endpoint_checks import model_status

    def model_error(original: int) -> ClientError:
        return ClientError({"Error": {"Code": "ModelError", "Message": "..."}, "OriginalStatusCode": original,
                            "ResponseMetadata": {"HTTPStatusCode": 424}}, "InvokeEndpoint")

    assert model_status(model_error(400)) == 400
    assert model_status(model_error(500)) == 500  # a crash in the container is not a client error
    # SageMaker's own refusals are not the model refusing the record
    assert model_status(ClientError({"Error": {"Code": "ValidationError"},
                                     "ResponseMetadata": {"HTTPStatusCode": 400}}, "InvokeEndpoint")) is None
    assert model_status(ClientError({"Error": {"Code": "413"},
                                     "ResponseMetadata": {"HTTPStatusCode": 413}}, "InvokeEndpoint")) is None
