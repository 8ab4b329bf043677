"""The ``s3://`` store under the shipped Airflow role, on a real S3 REST endpoint.

An S3 server on loopback (:class:`testkit.s3.S3Server`: moto's server mode) holds the bucket;
the project reaches it as a deployment does, through the Airflow connection in
``MLOPS_AWS_CONN_ID`` (``endpoint_url`` in its extra), signed with the access key of an IAM user
whose only policy is ``include/iam/airflow-execution-role.json`` rendered for this bucket and
prefix. IAM is enforced: moto checks the signature, the action and the resource; the server adds
the ``s3:prefix`` condition and S3's 403-for-a-missing-key rule, which moto lacks (see
:mod:`testkit.s3`). An action the code needs and the role lacks fails these tests.
"""

from __future__ import annotations

import json
import uuid

import numpy as np
import pandas as pd
import pytest

from mlops.core import partitions
from mlops.core.storage import (
    data_path,
    pack_model,
    read_json,
    relative_name,
    sha256_of,
    to_path,
    unpack_model,
    write_json,
)
from testkit import iam
from testkit.s3 import S3Server

BUCKET, PREFIX, ACCOUNT = "mlops-test-bucket", "mlops/data", "123456789012"
ROLE = "airflow-role"
CONN_ID = "s3_store"
DS = "2026-01-02"


@pytest.fixture(scope="module")
def server():
    with S3Server() as s3:
        s3.client().create_bucket(Bucket=BUCKET)
        yield s3


@pytest.fixture(scope="module")
def role(server):
    """The access key of an IAM user holding exactly the Airflow role's policy; IAM enforced from now on."""
    credentials = server.add_user(ROLE, iam.render_for_store("airflow-execution-role.json", BUCKET, PREFIX, ACCOUNT))
    server.enforce_iam()
    return credentials


@pytest.fixture
def store(server, role, mlops_home, monkeypatch):
    """``MLOPS_DATA_URI`` under the role's prefix, a folder of its own per test; yields its key prefix."""
    prefix = f"{PREFIX}/{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", server.connection_uri(role))
    monkeypatch.setenv("MLOPS_AWS_CONN_ID", CONN_ID)
    monkeypatch.setenv("MLOPS_DATA_URI", f"s3://{BUCKET}/{prefix}")
    data_path().fs.invalidate_cache()  # listings cached by an earlier test's filesystem
    first = len(server.requests)
    yield prefix
    refused = [r for r in server.requests[first:] if r.user == ROLE and r.status == 403]
    assert not refused, f"the role was refused: {refused}"


def role_requests(server, since: int = 0):
    return [r for r in server.requests[since:] if r.user == ROLE]


# --- the storage layer ----------------------------------------------------------------------------

def test_a_file_a_folder_and_a_missing_key_are_told_apart(server, store):
    uri = write_json(str(data_path("validation", "churn", "snapshot.json")), {"rows": 3})

    assert to_path(uri).exists() and to_path(uri).is_file()
    folder = data_path("validation", "churn")
    assert folder.exists() and folder.is_dir() and not folder.is_file()
    assert not data_path("validation", "churn", "missing.json").exists()
    assert not data_path("validation", "retail").exists()
    assert not data_path("validation", "chur").exists()  # a prefix of a folder's name is no folder


def test_existence_is_asked_by_listing_the_prefix_never_with_head(server, store):
    since = len(server.requests)
    data_path("raw", "churn", "ds=2026-01-02", "_manifest.json").exists()
    data_path("raw", "churn").exists()

    sent = role_requests(server, since)
    assert sent and all(r.is_listing for r in sent), sent
    assert {r.query["prefix"] for r in sent} >= {f"{store}/raw/churn/ds=2026-01-02/_manifest.json",
                                                 f"{store}/raw/churn"}


def test_mkdir_neither_probes_nor_creates_the_bucket(server, store):
    since = len(server.requests)

    data_path("training", "churn", "run-1", "output").mkdir(parents=True, exist_ok=True)

    assert role_requests(server, since) == []


def test_json_documents_and_model_packages_round_trip(server, store, tmp_path):
    uri = str(data_path("registry", "versions", "1.json"))
    write_json(uri, {"version": 1, "metrics": {"roc_auc": 0.9}})
    assert read_json(uri) == {"version": 1, "metrics": {"roc_auc": 0.9}}

    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "model.joblib").write_bytes(b"\x80model" * 1000)
    (model_dir / "code").mkdir()
    (model_dir / "code" / "inference.py").write_text("def predict(x):\n    return x\n")
    model_uri, digest = pack_model(model_dir, str(data_path("training", "churn", "run-1", "model.tar.gz")))

    assert sha256_of(model_uri) == digest
    unpacked = unpack_model(model_uri, tmp_path / "unpacked", digest)
    assert (unpacked / "code" / "inference.py").read_text() == "def predict(x):\n    return x\n"
    assert server.keys(BUCKET, store) == [f"{store}/registry/versions/1.json", f"{store}/training/churn/run-1/model.tar.gz"]


def test_listing_and_names_below_a_folder(server, store):
    for name in ("a.csv", "nested/b.csv", "nested/deeper/c.csv"):
        path = data_path("batch", "incoming", *name.split("/"))
        path.write_text("1,2\n")
    root = data_path("batch", "incoming")

    assert sorted(relative_name(p, root) for p in root.rglob("*") if p.is_file()) == [
        "a.csv", "nested/b.csv", "nested/deeper/c.csv"]
    assert sorted(p.name for p in root.iterdir()) == ["a.csv", "nested"]


def test_a_file_is_moved_with_a_copy_and_a_delete_of_its_key(server, store):
    source = data_path("landing", "churn", "a.csv")
    source.write_text("x\n1\n")
    target = data_path("processed", "churn", "a.csv")

    source.rename(target)

    assert not source.exists() and target.read_text() == "x\n1\n"
    assert server.keys(BUCKET, store) == [f"{store}/processed/churn/a.csv"]


# --- s3_ingest: landing -> raw -> processed --------------------------------------------------------

def test_s3_ingest_publishes_the_landed_files_and_moves_them_to_processed(server, store):
    from types import SimpleNamespace

    from mlops.core.entrypoints import generators_module
    from mlops.operators.s3 import LandingFilesSensor, LandingToRawOperator

    frames = [generators_module().churn(80, seed=seed) for seed in (1, 2)]
    for name, frame in zip(("a.csv", "later/b.csv"), frames, strict=True):
        with data_path("landing", "churn", *name.split("/")).open("w") as handle:
            frame.to_csv(handle, index=False)
    context = {"ti": SimpleNamespace(try_number=1), "outlet_events": {},
               "dag_run": SimpleNamespace(run_type="scheduled", run_after=None)}

    files = LandingFilesSensor(task_id="wait", prefix="landing/churn", pattern="*.csv").execute(context)
    published = LandingToRawOperator(task_id="publish", use_case="churn", files=files, ds=DS).execute(context)

    assert published["rows"] == 160 and published["moved"] == 2
    raw = partitions.read_partition(partitions.partition_path("churn", DS))
    assert sorted(raw["Phone"]) == sorted(pd.concat(frames)["Phone"])
    keys = server.keys(BUCKET, store)
    assert [k for k in keys if "/landing/" in k] == []
    assert [k for k in keys if "/processed/" in k] == [f"{store}/processed/churn/ds={DS}/a.csv",
                                                         f"{store}/processed/churn/ds={DS}/later/b.csv"]
    assert f"{store}/raw/churn/ds={DS}/_manifest.json" in keys


# --- the local batch transform on s3:// -------------------------------------------------------------

def test_the_local_batch_transform_reads_and_writes_a_folder_on_s3(server, store, mlops_home, tmp_path):
    import joblib
    from sklearn.linear_model import LogisticRegression

    from mlops.backends.local.automl import FlamlAutoML
    from mlops.backends.local.transform import LocalBatchTransform

    rng = np.random.default_rng(0)
    features = pd.DataFrame({"tenure": rng.integers(1, 72, 200), "charges": rng.normal(60, 20, 200).round(2)})
    labels = np.where(features["charges"] / 20 - features["tenure"] / 30 > 1, "True.", "False.")
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    fitted = LogisticRegression(max_iter=200).fit(features, labels)
    joblib.dump(fitted, model_dir / "model.joblib")
    (model_dir / "model.json").write_text(json.dumps({
        "feature_columns": ["tenure", "charges"], "target": "Churn?", "problem_type": "binary",
        "classes": ["False.", "True."], "framework": "sklearn"}))
    automl = FlamlAutoML(mlops_home / "state" / "automl")
    uri, digest = pack_model(model_dir, str(data_path("autopilot", "model.tar.gz")))
    automl.register_model("churn-lr", uri, digest, "binary", ["predicted_label", "probability"])
    inputs = {"part-0.csv": features[:120], "nested/part-1.csv": features[120:]}
    for name, frame in inputs.items():
        with data_path("autopilot", "input", *name.split("/")).open("w") as handle:
            frame.to_csv(handle, header=False, index=False)
    data_path("autopilot", "input", "_manifest.json").write_text("{}")  # skipped, as SageMaker's job would not

    result = LocalBatchTransform(automl, chunk_rows=50, n_jobs=1).transform(
        "score-1", "churn-lr", str(data_path("autopilot", "input")), str(data_path("autopilot", "output")))

    assert (result.input_rows, result.output_rows) == (200, 200)
    for name, frame in inputs.items():
        lines = data_path("autopilot", "output", *f"{name}.out".split("/")).read_text().splitlines()
        answered = [line.split(",") for line in lines]
        assert [label for label, _ in answered] == list(fitted.predict(frame))  # row order kept
        assert [float(p) for _, p in answered] == pytest.approx(fitted.predict_proba(frame)[:, 1], abs=1e-6)
    assert json.loads(data_path("autopilot", "output", "_SUCCESS").read_text())["job_name"] == "score-1"


def test_the_runtimes_capture_is_written_under_the_sagemaker_role_with_one_put_a_file(server, store,
                                                                                      monkeypatch):
    """The model runtime writes data capture with the SageMaker role's own credentials (``AWS_*``
    variables), never Airflow's: one PUT per file, no bucket probe or creation, which that role
    is refused as the Airflow role is."""
    from mlops.backends.local.runtime.capture import CaptureSettings, CaptureWriter
    from mlops.core.s3_filesystem import PrefixScopedS3FileSystem

    runtime = server.add_user("sagemaker-capture", iam.render_for_store("sagemaker-execution-role.json",
                                                                         BUCKET, PREFIX, ACCOUNT))
    for key, value in server.environment(runtime).items():
        monkeypatch.setenv(key, value)
    PrefixScopedS3FileSystem.clear_instance_cache()  # an earlier filesystem holds other credentials
    destination = f"s3://{BUCKET}/{store}/capture"
    settings = CaptureSettings.from_config({"EnableCapture": True, "InitialSamplingPercentage": 100,
                                            "DestinationS3Uri": destination,
                                            "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}]})
    since = len(server.requests)
    writer = CaptureWriter(flush_interval=60)
    for n in range(3):
        writer.record(settings, "churn-prod", "AllTraffic", f"{n},2".encode(), "text/csv", b"0.1", "text/csv")
    writer.stop()

    sent = [r for r in server.requests[since:] if r.user == "sagemaker-capture"]
    assert [(r.method, r.status) for r in sent] == [("PUT", 200)], sent
    (key,) = server.keys(BUCKET, f"{store}/capture/churn-prod/AllTraffic/")
    lines = server.client().get_object(Bucket=BUCKET, Key=key)["Body"].read().decode().splitlines()
    assert [json.loads(line)["captureData"]["endpointInput"]["data"] for line in lines] == ["0,2", "1,2", "2,2"]
    PrefixScopedS3FileSystem.clear_instance_cache()


# --- the enforcement is real -----------------------------------------------------------------------

def test_the_role_is_refused_outside_its_prefix(server, role, store):
    client = server.client(credentials=role)
    with pytest.raises(client.exceptions.ClientError, match="AccessDenied"):
        client.put_object(Bucket=BUCKET, Key="elsewhere/x.json", Body=b"{}")
    with pytest.raises(client.exceptions.ClientError, match="AccessDenied"):
        client.list_objects_v2(Bucket=BUCKET, Prefix="elsewhere/")
    with pytest.raises(client.exceptions.ClientError, match="AccessDenied"):
        client.list_objects_v2(Bucket=BUCKET)  # no prefix at all
    server.requests.clear()  # these refusals are the point of this test, not a failure of the code


def test_plain_s3fs_cannot_check_a_missing_key_or_make_a_folder_under_the_role(server, role, store):
    """What the project's filesystem exists for: S3 answers a HEAD of a missing key 403 to a role
    that may list the bucket only under a prefix, and s3fs's mkdir probes and creates buckets."""
    from s3fs import S3FileSystem

    plain = S3FileSystem(key=role.access_key, secret=role.secret_key, endpoint_url=server.url,
                         skip_instance_cache=True)
    with pytest.raises(PermissionError):
        plain.exists(f"{BUCKET}/{store}/missing.json")
    with pytest.raises(PermissionError):
        plain.mkdir(f"{BUCKET}/{store}/folder", create_parents=True)
    server.requests.clear()


def test_a_connection_with_a_custom_signer_is_refused_naming_it(monkeypatch, mlops_home):
    extra = {"endpoint_url": "http://127.0.0.1:9", "service_config": {"s3": {
        "signer": "S3V4RestSigner", "signer_uri": "http://127.0.0.1:9/sign", "signer_token": "t"}}}
    monkeypatch.setenv("AIRFLOW_CONN_SIGNED_STORE", json.dumps({"conn_type": "aws", "extra": extra}))

    with pytest.raises(ValueError, match="connection 'signed_store' configures a custom S3 signer"):
        to_path(f"s3://{BUCKET}/{PREFIX}/x.json", "signed_store")
