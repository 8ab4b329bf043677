"""Safety properties of the local runtime and of model loading that test_runtime.py, test_storage.py,
test_transform.py and the deploy tests do not assert already:

* the runtime's only listening socket is on 127.0.0.1 (not 0.0.0.0, not another interface);
* a request body is bounded however it arrives: a declared Content-Length over the drain cap is
  refused before any of the body is read, a chunked body without a length is cut off at the limit;
* the train_model evaluation (``mlops.ml.evaluation.load_model``) and a restarted runtime whose
  extracted copy is gone verify the artifact's digest before anything is loaded.

Verified how: a real runtime process (``LocalHosting``) inspected with psutil and spoken to over
raw HTTP; real packed artifacts, changed by one byte.
"""

from __future__ import annotations

import http.client
import json
import shutil
import socket
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import psutil
import pytest
from sklearn.linear_model import LogisticRegression

from mlops.backends.base import EndpointSpec
from mlops.backends.local.hosting import LocalHosting
from mlops.backends.local.runtime import DRAIN_LIMIT_BYTES, HOST, MAX_PAYLOAD_BYTES, read_pid
from mlops.settings import Settings, get_settings
from mlops.storage import DigestMismatch, pack_model
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


# ---------------------------------------------------------------- bounded input
def test_a_declared_length_over_the_drain_cap_is_refused_before_the_body_is_sent(runtime):
    status, error = post_invocation(runtime, {"Content-Type": "text/csv",
                                              "Content-Length": str(DRAIN_LIMIT_BYTES + 1)})

    assert status == 413
    assert f"larger than {MAX_PAYLOAD_BYTES} bytes" in error["Message"]


def test_a_chunked_body_without_a_length_is_cut_off_at_the_limit(runtime):
    chunk = b"1,2.0\n" * (64 * 1024)
    chunks = [chunk] * (MAX_PAYLOAD_BYTES // len(chunk) + 2)
    assert sum(map(len, chunks)) > MAX_PAYLOAD_BYTES

    status, error = post_invocation(runtime, {"Content-Type": "text/csv"}, body=iter(chunks), chunked=True)

    assert status == 413
    assert f"larger than {MAX_PAYLOAD_BYTES} bytes" in error["Message"]


# ---------------------------------------------------------------- digest before load
@pytest.fixture
def packed(tmp_path) -> tuple[str, str]:
    return pack_model(fit_model(tmp_path / "model"), (tmp_path / "artifacts" / "model.tar.gz").as_uri())


@pytest.fixture
def model_fn_calls(monkeypatch) -> list[str]:
    """Directories the serving handlers' ``model_fn`` was asked to load."""
    import mlops.entrypoints
    from mlops.entrypoints import inference_module

    calls: list[str] = []
    real = inference_module()

    class Recording:
        @staticmethod
        def model_fn(model_dir: str):
            calls.append(model_dir)
            return real.model_fn(model_dir)

    monkeypatch.setattr(mlops.entrypoints, "inference_module", lambda: Recording)
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
        hosting.stop()
        shutil.rmtree(hosting.settings.runtime_dir / "models")  # the verified copy is gone: it must fetch again
        flip_a_byte(uri)

        endpoint = hosting.describe("guarded")
        with pytest.raises(ClientError) as raised:
            hosting.runtime_client().invoke_endpoint(EndpointName="guarded", ContentType="text/csv", Body="3,40.5")
    finally:
        hosting.stop()

    assert endpoint.status == "Failed"
    assert "DigestMismatch" in raised.value.response["Error"]["Message"]
