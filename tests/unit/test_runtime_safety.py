"""Safety properties of the local runtime and of model loading that test_runtime.py, test_storage.py,
test_transform.py and the deploy tests do not assert already:

* the runtime's only listening socket is on 127.0.0.1 (not 0.0.0.0, not another interface);
* the runtime is a service of its own: started from an Airflow task's environment (database
  blocked, parsing context set) it gets only an allowlist of variables, no Airflow one, and it
  deploys and serves a model without ever importing Airflow;
* a request body is bounded however it arrives: a declared Content-Length over the drain cap is
  refused before any of the body is read, a chunked body without a length is cut off at the limit;
* the train_model evaluation (``mlops.ml.evaluation.load_model``) and a restarted runtime whose
  extracted copy is gone verify the artifact's digest before anything is loaded.

Verified how: a real runtime process (``LocalHosting``) inspected with psutil and spoken to over
raw HTTP; real packed artifacts, changed by one byte; an ``airflow`` package on the runtime's
PYTHONPATH that fails (and leaves a mark) when imported.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import psutil
import pytest
from sklearn.linear_model import LogisticRegression

from mlops.backends.base import EndpointSpec
from mlops.backends.local.hosting import LocalHosting
from mlops.backends.local.runtime.app import DRAIN_LIMIT_BYTES
from mlops.backends.local.runtime.endpoints import MAX_PAYLOAD_BYTES
from mlops.backends.local.runtime.service import HOST, PLUGINS_DIR, read_pid, runtime_environment
from mlops.core.settings import Settings, get_settings
from mlops.core.storage import DigestMismatch, pack_model
from testkit.airflow_task import TASK_ENVIRONMENT as AIRFLOW_TASK_ENVIRONMENT
from testkit.runtime import flip_a_byte, running_runtime

FEATURES = ["tenure", "charges"]


def fit_model(model_dir: Path) -> Path:
    """A tiny classifier in the artifact contract of include/serving/inference.py."""
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"tenure": rng.integers(0, 60, 120), "charges": rng.normal(60, 15, 120)})
    target = np.where(frame["charges"] > 60, "yes", "no")
    model_dir.mkdir(parents=True)
    joblib.dump(LogisticRegression().fit(frame, target), model_dir / "model.joblib")
    (model_dir / "model.json").write_text(json.dumps({
        "feature_columns": FEATURES, "target": "churn", "problem_type": "binary", "classes": ["no", "yes"],
        "framework": "sklearn",
    }))
    return model_dir


@pytest.fixture(scope="module")
def runtime(tmp_path_factory):
    """A running runtime (its settings) shared by the tests that only talk to it."""
    with running_runtime(tmp_path_factory.mktemp("mlops")) as hosting:
        yield hosting.settings


def post_invocation(settings: Settings, headers: dict[str, str], body=None, chunked: bool = False):
    connection = http.client.HTTPConnection(HOST, settings.runtime_port, timeout=30)
    try:
        connection.request("POST", "/endpoints/nowhere/invocations", body=body, headers=headers,
                           encode_chunked=chunked)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


# ---------------------------------------------------------------- loopback only
def test_the_runtime_listens_on_loopback_only(runtime):
    process = psutil.Process(read_pid(runtime.runtime_dir))

    listening = {(c.laddr.ip, c.laddr.port) for c in process.net_connections(kind="inet")
                 if c.status == psutil.CONN_LISTEN}

    assert listening == {("127.0.0.1", runtime.runtime_port)}


def test_the_runtime_cannot_be_reached_on_another_interface(runtime):
    others = [a.address for addresses in psutil.net_if_addrs().values() for a in addresses
              if a.family == socket.AF_INET and not a.address.startswith("127.")]
    if not others:
        pytest.skip("this machine has no IPv4 address besides loopback")
    for address in others:
        with pytest.raises(OSError), socket.create_connection((address, runtime.runtime_port), timeout=5):
            pass


# ---------------------------------------------------------------- a service of its own, never an Airflow task's child
# What an Airflow 3 task process carries: its database blocked, the parsing context, connections.
TASK_ENVIRONMENT = {**AIRFLOW_TASK_ENVIRONMENT, "AIRFLOW_CONN_AWS_DEFAULT": "aws://"}


def test_the_runtime_environment_is_an_allowlist_plus_the_settings(tmp_path):
    settings = Settings(backend="local", home=tmp_path, data_uri=(tmp_path / "data").as_uri(),
                        aws_conn_id="aws_default", runtime_port=9123)
    kept = {"PATH": "/usr/bin", "HOME": "/home/a", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "TZ": "UTC",
            "TMPDIR": "/tmp/x", "NO_PROXY": "localhost", "https_proxy": "http://proxy:3128",
            "AWS_ACCESS_KEY_ID": "AKIA", "AWS_SECRET_ACCESS_KEY": "secret", "AWS_DEFAULT_REGION": "eu-west-1",
            "AWS_ENDPOINT_URL_S3": "http://minio:9000", "MLOPS_RUNTIME_WORKERS": "2"}
    dropped = {**TASK_ENVIRONMENT, "AIRFLOW_HOME": "/opt/airflow", "LD_PRELOAD": "/x.so", "SOME_TOKEN": "t"}

    env = runtime_environment(settings, {**kept, **dropped, "PYTHONPATH": "/extra"})

    assert env == {
        **kept, "PYTHONPATH": os.pathsep.join([str(PLUGINS_DIR), "/extra"]), "MLOPS_BACKEND": "local",
        "MLOPS_HOME": str(tmp_path), "MLOPS_DATA_URI": settings.data_uri, "MLOPS_AWS_CONN_ID": "aws_default",
        "MLOPS_RUNTIME_PORT": "9123", "MLOPS_RUNTIME_HOST": "127.0.0.1",
    }


@dataclass(frozen=True)
class StartedFromATask:
    hosting: LocalHosting
    poisoned_path: Path  # an `airflow` package that fails when imported
    airflow_imported: Path  # the mark it leaves first


@pytest.fixture(scope="module")
def started_from_a_task(tmp_path_factory):
    """A runtime started by LocalHosting from an Airflow task's environment, a model deployed on it.

    Its PYTHONPATH (kept by the allowlist) leads with an ``airflow`` package that leaves a mark
    and raises when imported, so a runtime that imported Airflow could not deploy or answer.
    """
    root = tmp_path_factory.mktemp("task-environment")
    poisoned, mark = root / "poisoned", root / "airflow-was-imported"
    (poisoned / "airflow").mkdir(parents=True)
    (poisoned / "airflow" / "__init__.py").write_text(
        f"open({str(mark)!r}, 'w').close()\nraise ImportError('the model runtime imported airflow')\n")
    uri, sha256 = pack_model(fit_model(root / "model"), (root / "mlops" / "data" / "model.tar.gz").as_uri())
    with contextlib.ExitStack() as stack:
        with pytest.MonkeyPatch.context() as patch:  # the task's environment while the runtime starts
            for name, value in {**TASK_ENVIRONMENT, "PYTHONPATH": str(poisoned)}.items():
                patch.setenv(name, value)
            hosting = stack.enter_context(running_runtime(root / "mlops"))
        hosting.deploy(EndpointSpec("from-a-task", "from-a-task-config", uri, sha256))
        yield StartedFromATask(hosting, poisoned, mark)


def test_a_runtime_started_from_a_task_deploys_and_answers_over_http(started_from_a_task):
    client = started_from_a_task.hosting.runtime_client()

    response = client.invoke_endpoint(EndpointName="from-a-task", ContentType="text/csv", Accept="text/csv", Body="3,40.5\n50,99.0")

    assert len(response["Body"].read().decode().splitlines()) == 2


def test_a_runtime_started_from_a_task_has_no_airflow_variable(started_from_a_task):
    settings = started_from_a_task.hosting.settings
    environment = psutil.Process(read_pid(settings.runtime_dir)).environ()

    assert [name for name in environment if "AIRFLOW" in name] == []
    assert environment["MLOPS_HOME"] == str(settings.home)


def test_a_runtime_started_from_a_task_never_imports_airflow(started_from_a_task):
    settings = started_from_a_task.hosting.settings
    environment = psutil.Process(read_pid(settings.runtime_dir)).environ()
    started_from_a_task.hosting.runtime_client().invoke_endpoint(
        EndpointName="from-a-task", ContentType="text/csv", Body="3,40.5")

    assert str(started_from_a_task.poisoned_path) in environment["PYTHONPATH"].split(os.pathsep)
    assert not started_from_a_task.airflow_imported.exists()


# ---------------------------------------------------------------- bounded input
def test_a_declared_length_over_the_drain_cap_is_refused_before_the_body_is_sent(runtime):
    status, error = post_invocation(runtime, {"Content-Type": "text/csv",
                                              "Content-Length": str(DRAIN_LIMIT_BYTES + 1)})

    assert status == 413
    assert error == {"message": f"HTTP content length exceeded {MAX_PAYLOAD_BYTES} bytes."}


def test_a_chunked_body_without_a_length_is_cut_off_at_the_limit(runtime):
    chunk = b"1,2.0\n" * (64 * 1024)
    chunks = [chunk] * (MAX_PAYLOAD_BYTES // len(chunk) + 2)
    assert sum(map(len, chunks)) > MAX_PAYLOAD_BYTES

    status, error = post_invocation(runtime, {"Content-Type": "text/csv"}, body=iter(chunks), chunked=True)

    assert status == 413
    assert error == {"message": f"HTTP content length exceeded {MAX_PAYLOAD_BYTES} bytes."}


# ---------------------------------------------------------------- digest before load
@pytest.fixture
def packed(tmp_path) -> tuple[str, str]:
    return pack_model(fit_model(tmp_path / "model"), (tmp_path / "artifacts" / "model.tar.gz").as_uri())


@pytest.fixture
def model_fn_calls(monkeypatch) -> list[str]:
    """Directories the serving handlers' ``model_fn`` was asked to load."""
    import mlops.core.entrypoints
    from mlops.core.entrypoints import inference_module

    calls: list[str] = []
    real = inference_module()

    class Recording:
        @staticmethod
        def model_fn(model_dir: str):
            calls.append(model_dir)
            return real.model_fn(model_dir)

    monkeypatch.setattr(mlops.core.entrypoints, "inference_module", lambda: Recording)
    return calls


def test_evaluation_loads_a_model_whose_digest_matches(packed, model_fn_calls):
    from mlops.ml.evaluation import load_model

    uri, sha256 = packed

    assert load_model(uri, sha256) is not None
    assert len(model_fn_calls) == 1


def test_evaluation_refuses_a_changed_artifact_before_loading_it(packed, model_fn_calls):
    from mlops.ml.evaluation import load_model

    uri, sha256 = packed
    flip_a_byte(uri)

    with pytest.raises(DigestMismatch, match="refusing to load a changed artifact"):
        load_model(uri, sha256)
    assert model_fn_calls == []


def test_a_restarted_runtime_refuses_an_artifact_changed_while_it_was_down(mlops_home, packed):
    from botocore.exceptions import ClientError

    uri, sha256 = packed
    hosting = LocalHosting(get_settings())
    try:
        hosting.deploy(EndpointSpec("guarded", "guarded-config", uri, sha256))
        hosting.stop_runtime()
        shutil.rmtree(hosting.settings.runtime_dir / "models")  # the verified copy is gone: it must fetch again
        flip_a_byte(uri)

        endpoint = hosting.describe("guarded")
        with pytest.raises(ClientError) as raised:
            hosting.runtime_client().invoke_endpoint(EndpointName="guarded", ContentType="text/csv", Body="3,40.5")
    finally:
        hosting.stop_runtime()

    assert endpoint.status == "Failed"
    assert "DigestMismatch" in raised.value.response["Error"]["Message"]
