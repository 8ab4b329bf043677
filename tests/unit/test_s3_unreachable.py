"""The S3 store unreachable for a while, in-process: during landing and during a batch
transform's output. The step fails naming the store's endpoint, nothing is published half,
nothing landed is lost, and the retry once the store is back publishes once.

The store is moto's S3 server on loopback (:class:`testkit.s3.S3Server`), stopped and started
again (its objects live in this process and survive), reached as the tasks reach it: through
the Airflow connection ``s3_store``. The transform's store goes down at an exact request
(:meth:`~testkit.s3.S3Server.go_down_on`): that request's connection is cut unanswered, every
later one is refused.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mlops.core import partitions
from mlops.core.entrypoints import generators_module
from mlops.core.storage import data_path, pack_model
from mlops.operators.s3 import LandingToRawOperator
from testkit.faults import transform_output_problems
from testkit.s3 import S3Server

BUCKET, PREFIX, CONN_ID, DS = "mlops-outage", "mlops/data", "s3_store", "2026-04-01"


@pytest.fixture
def s3_store(mlops_home, monkeypatch):
    with S3Server() as s3:
        s3.client().create_bucket(Bucket=BUCKET)
        monkeypatch.setenv("MLOPS_DATA_URI", f"s3://{BUCKET}/{PREFIX}")
        monkeypatch.setenv("MLOPS_AWS_CONN_ID", CONN_ID)
        monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", s3.connection_uri(s3.admin))
        monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")  # botocore gives up on a refused connection sooner
        yield s3


def test_landing_while_the_store_is_down_publishes_nothing_and_the_retry_publishes_once(s3_store):
    from unit.test_s3_ingest import run_context

    frames = [generators_module().churn(100, seed=seed) for seed in (1, 2)]
    files = []
    for index, frame in enumerate(frames):
        path = data_path("landing", "churn", f"part{index}.csv")
        with path.open("w") as handle:
            frame.to_csv(handle, index=False)
        files.append(str(path))
    operator = LandingToRawOperator(task_id="publish", use_case="churn", files=files, ds=DS)

    s3_store.stop()  # the outage
    try:
        with pytest.raises(Exception) as failed:  # noqa: PT011 - botocore's EndpointConnectionError, via s3fs
            operator.execute(run_context(1))
    finally:
        s3_store.start()  # the store is back

    assert f"Could not connect to the endpoint URL: \"{s3_store.url}/" in str(failed.value)
    keys = s3_store.keys(BUCKET, PREFIX)
    assert not any(k.endswith(f"ds={DS}/_manifest.json") for k in keys)  # nothing published
    assert sorted(k for k in keys if "/landing/" in k) == sorted(
        f"{PREFIX}/landing/churn/part{i}.csv" for i in range(2))  # nothing landed lost

    result = operator.execute(run_context(2))

    assert result["rows"] == 200
    assert len(partitions.read_partition(partitions.partition_path("churn", DS))) == 200
    assert [k for k in s3_store.keys(BUCKET, PREFIX) if "/landing/" in k] == []


# --- the batch transform's output ---------------------------------------------------------------

INPUTS = {"part-0.csv": 120, "nested/part-1.csv": 80}
OUTPUT_MOMENTS = {  # the request at which the store goes down
    "uploading an output": lambda r: r.method == "PUT" and r.key.endswith(".partial"),
    "moving an output into place": lambda r: r.method == "PUT" and r.key.endswith(".out"),
    "removing a temporary output": lambda r: r.method == "DELETE" and r.key.endswith(".partial"),
    "writing _SUCCESS": lambda r: r.method == "PUT" and r.key.endswith("/_SUCCESS"),
}


@pytest.fixture
def transform_job(s3_store, mlops_home, tmp_path):
    """A registered model, the input files on the store, and the transform to run."""
    import joblib
    from sklearn.linear_model import LogisticRegression

    from mlops.backends.local.automl import FlamlAutoML
    from mlops.backends.local.transform import LocalBatchTransform

    rng = np.random.default_rng(0)
    rows = sum(INPUTS.values())
    features = pd.DataFrame({"tenure": rng.integers(1, 72, rows), "charges": rng.normal(60, 20, rows).round(2)})
    labels = np.where(features["charges"] / 20 - features["tenure"] / 30 > 1, "True.", "False.")
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    joblib.dump(LogisticRegression(max_iter=200).fit(features, labels), model_dir / "model.joblib")
    (model_dir / "model.json").write_text(json.dumps({
        "feature_columns": ["tenure", "charges"], "target": "Churn?", "problem_type": "binary",
        "classes": ["False.", "True."], "framework": "sklearn"}))
    automl = FlamlAutoML(mlops_home / "state" / "automl")
    uri, digest = pack_model(model_dir, str(data_path("batch", "model.tar.gz")))
    automl.register_model("churn-lr", uri, digest, "binary", ["predicted_label", "probability"])
    start = 0
    for name, count in INPUTS.items():
        with data_path("batch", "input", *name.split("/")).open("w") as handle:
            features[start:start + count].to_csv(handle, header=False, index=False)
        start += count
    input_uri, output_uri = str(data_path("batch", "input")), str(data_path("batch", "output"))

    def run(job_name: str = "score-1"):
        return LocalBatchTransform(automl, chunk_rows=50, n_jobs=1).transform(job_name, "churn-lr", input_uri,
                                                                               output_uri)

    return run, input_uri, output_uri


@pytest.mark.parametrize("moment", list(OUTPUT_MOMENTS))
def test_a_transform_whose_store_goes_down_publishes_nothing_half_and_the_retry_publishes_once(
        s3_store, transform_job, moment):
    from mlops.backends.local.transform import TransformOutputError

    run, input_uri, output_uri = transform_job
    output_prefix = f"{PREFIX}/batch/output/"
    s3_store.go_down_on(OUTPUT_MOMENTS[moment])

    with pytest.raises(TransformOutputError) as failed:
        run()

    assert s3_store.cut is not None and OUTPUT_MOMENTS[moment](s3_store.cut)
    assert "transform score-1: could not write s3://" in str(failed.value)
    assert f"Could not connect to the endpoint URL: \"{s3_store.url}/" in str(failed.value)
    assert "Nothing is published (_SUCCESS is written last)" in str(failed.value)
    s3_store.start()  # the store is back; what a reader finds:
    assert f"{output_prefix}_SUCCESS" not in s3_store.keys(BUCKET, output_prefix)
    assert transform_output_problems(output_uri, input_uri) == []  # no torn output, nothing else

    result = run()  # the retry

    assert (result.input_rows, result.output_rows) == (200, 200)
    assert transform_output_problems(output_uri, input_uri) == []
    assert s3_store.keys(BUCKET, output_prefix) == sorted(
        [f"{output_prefix}_SUCCESS"] + [f"{output_prefix}{name}.out" for name in INPUTS])  # nothing temporary left


def test_a_temporary_output_left_by_a_try_the_store_failed_is_removed_by_the_next_job_on_that_output(
        s3_store, transform_job):
    from mlops.backends.local.transform import TransformOutputError

    run, input_uri, output_uri = transform_job
    output_prefix = f"{PREFIX}/batch/output/"
    s3_store.go_down_on(OUTPUT_MOMENTS["moving an output into place"])
    with pytest.raises(TransformOutputError):
        run("score-1")
    s3_store.start()
    left = [k for k in s3_store.keys(BUCKET, output_prefix) if k.endswith(".partial")]
    assert left, "the failed try could not remove its temporary output while the store was down"

    run("score-2")  # another job name: its own temporary names never overwrite the old one

    assert [k for k in s3_store.keys(BUCKET, output_prefix) if k.endswith(".partial")] == []
    assert transform_output_problems(output_uri, input_uri) == []
