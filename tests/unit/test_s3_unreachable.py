"""The S3 store unreachable for a while during landing: the publish fails naming the store,
nothing is published half, nothing landed is lost, and the retry once the store is back
publishes the partition once.

The store is moto's S3 server on loopback (:class:`testkit.s3.S3Server`), stopped and started
again (its objects live in this process and survive), reached as the tasks reach it: through
the Airflow connection ``s3_store``.
"""

from __future__ import annotations

import pytest

from mlops.core import partitions
from mlops.core.entrypoints import generators_module
from mlops.core.storage import data_path
from mlops.operators.s3 import LandingToRawOperator
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

    s3_store._moto.stop()  # noqa: SLF001 - the outage
    try:
        with pytest.raises(Exception) as failed:  # noqa: PT011 - botocore's EndpointConnectionError, via s3fs
            operator.execute(run_context(1))
    finally:
        s3_store._moto.start()  # noqa: SLF001 - the store is back

    assert f"Could not connect to the endpoint URL: \"{s3_store.url}/" in str(failed.value)
    keys = s3_store.keys(BUCKET, PREFIX)
    assert not any(k.endswith(f"ds={DS}/_manifest.json") for k in keys)  # nothing published
    assert sorted(k for k in keys if "/landing/" in k) == sorted(
        f"{PREFIX}/landing/churn/part{i}.csv" for i in range(2))  # nothing landed lost

    result = operator.execute(run_context(2))

    assert result["rows"] == 200
    assert len(partitions.read_partition(partitions.partition_path("churn", DS))) == 200
    assert [k for k in s3_store.keys(BUCKET, PREFIX) if "/landing/" in k] == []
