"""Object-store helpers: deterministic model packages, digest checks, JSON documents."""

from __future__ import annotations

import hashlib
import os
import tarfile
from pathlib import Path

import pytest

from mlops.core.storage import (
    DigestMismatch,
    pack_model,
    read_bytes_without_airflow,
    read_json,
    sha256_of,
    to_path,
    unpack_model,
    write_json,
)
from testkit.net import free_port

MODEL_FILES = {
    "model.joblib": b"\x80\x04fake-model-bytes" * 100,
    "metadata.json": b'{"estimator": "gradient_boosting"}',
    "code/inference.py": b"def predict(x):\n    return x\n",
}


def make_model_dir(root: Path, mtime: int = 1_700_000_000) -> Path:
    for name, data in MODEL_FILES.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        os.utime(path, (mtime, mtime))
    return root


def files_under(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def packed(mlops_home, tmp_path):
    model_dir = make_model_dir(tmp_path / "model")
    return pack_model(model_dir, (tmp_path / "artifacts" / "model.tar.gz").as_uri())


def test_pack_model_writes_the_archive_and_returns_its_sha256(packed):
    uri, digest = packed

    data = to_path(uri).read_bytes()

    assert hashlib.sha256(data).hexdigest() == digest


def test_pack_model_is_deterministic_for_the_same_files(mlops_home, tmp_path):
    first_dir = make_model_dir(tmp_path / "first", mtime=1_700_000_000)
    second_dir = make_model_dir(tmp_path / "second", mtime=1_800_000_000)

    _, first = pack_model(first_dir, (tmp_path / "a" / "model.tar.gz").as_uri())
    _, again = pack_model(first_dir, (tmp_path / "b" / "model.tar.gz").as_uri())
    _, second = pack_model(second_dir, (tmp_path / "c" / "model.tar.gz").as_uri())

    assert first == again == second


def test_pack_model_digest_changes_when_a_file_changes(mlops_home, tmp_path):
    model_dir = make_model_dir(tmp_path / "model")
    _, before = pack_model(model_dir, (tmp_path / "a" / "model.tar.gz").as_uri())

    (model_dir / "model.joblib").write_bytes(b"retrained")
    _, after = pack_model(model_dir, (tmp_path / "b" / "model.tar.gz").as_uri())

    assert before != after


def test_pack_model_archive_holds_relative_names_without_owner_or_mtime(packed):
    uri, _ = packed

    with tarfile.open(to_path(uri).path, "r:gz") as tar:
        members = tar.getmembers()

    assert sorted(m.name for m in members) == sorted(MODEL_FILES)
    assert all(m.mtime == 0 and m.uid == 0 and m.gid == 0 and m.uname == "" for m in members)


def test_unpack_model_with_the_right_digest_extracts_the_files(packed, tmp_path):
    uri, digest = packed

    dest = unpack_model(uri, tmp_path / "unpacked", digest)

    assert dest == tmp_path / "unpacked"
    assert files_under(dest) == MODEL_FILES


@pytest.mark.parametrize("digest", [None, "", "abc", "G" * 64])
def test_unpack_model_refuses_to_open_an_artifact_without_a_valid_digest(packed, tmp_path, digest):
    uri, _ = packed

    with pytest.raises(ValueError, match="expected_sha256 must be a 64-character hex sha256"):
        unpack_model(uri, tmp_path / "unpacked", digest)
    assert not (tmp_path / "unpacked").exists()


def test_unpack_model_with_a_wrong_digest_raises_and_extracts_nothing(packed, tmp_path):
    uri, digest = packed
    dest = tmp_path / "unpacked"

    with pytest.raises(DigestMismatch, match="does not match the recorded"):
        unpack_model(uri, dest, "0" * 64)

    assert not dest.exists() or not any(dest.iterdir())


def test_unpack_model_refuses_an_archive_changed_after_packing(packed, tmp_path):
    uri, digest = packed
    tampered = tmp_path / "tampered"
    make_model_dir(tampered)
    (tampered / "model.joblib").write_bytes(b"malicious")
    pack_model(tampered, uri)  # same place, different content

    with pytest.raises(DigestMismatch):
        unpack_model(uri, tmp_path / "unpacked", digest)

    assert not (tmp_path / "unpacked").exists()


# ---------------------------------------------------------------- reading without Airflow (the model runtime)
@pytest.fixture
def s3_bucket(monkeypatch):
    """A bucket on a moto S3 server reached like real S3: credentials and endpoint from AWS_* variables."""
    import boto3
    import s3fs
    from moto.server import ThreadedMotoServer

    from mlops.core.s3_filesystem import PrefixScopedS3FileSystem

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL_S3": f"http://127.0.0.1:{port}",
                        "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"}.items():
        monkeypatch.setenv(name, value)
    boto3.client("s3").create_bucket(Bucket="models-bucket")
    try:
        yield "models-bucket"
    finally:
        s3fs.S3FileSystem.clear_instance_cache()  # their clients point at this server
        PrefixScopedS3FileSystem.clear_instance_cache()
        server.stop()


def test_reading_without_airflow_gives_a_file_uris_bytes(packed):
    uri, _ = packed

    assert read_bytes_without_airflow(uri) == to_path(uri).read_bytes()


@pytest.mark.parametrize("prefix", ["", "aws_default@"], ids=["plain", "with-airflow-conn-id"])
def test_reading_without_airflow_reads_s3_with_the_processs_own_credentials(s3_bucket, prefix):
    import boto3

    boto3.client("s3").put_object(Bucket=s3_bucket, Key="models/model.tar.gz", Body=b"artifact bytes")

    assert read_bytes_without_airflow(f"s3://{prefix}{s3_bucket}/models/model.tar.gz") == b"artifact bytes"


def test_reading_without_airflow_refuses_other_schemes():
    with pytest.raises(ValueError, match="only file:// and s3://"):
        read_bytes_without_airflow("https://example.com/model.tar.gz")


def test_unpack_model_checks_the_digest_of_what_its_reader_read(packed, tmp_path):
    uri, digest = packed

    assert files_under(unpack_model(uri, tmp_path / "ok", digest, read=read_bytes_without_airflow)) == MODEL_FILES
    with pytest.raises(DigestMismatch):
        unpack_model(uri, tmp_path / "changed", digest, read=lambda _: b"other bytes")
    assert not (tmp_path / "changed").exists()


def test_sha256_of_equals_hashlib_on_the_bytes(mlops_home, tmp_path):
    data = os.urandom(3 * (1 << 20) + 17)  # more than one read chunk
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    expected = hashlib.sha256(data).hexdigest()

    assert sha256_of(path.as_uri()) == expected
    assert sha256_of(path) == expected
    assert sha256_of(to_path(path.as_uri())) == expected


def test_sha256_of_an_empty_file(mlops_home, tmp_path):
    path = tmp_path / "empty"
    path.write_bytes(b"")

    assert sha256_of(path) == hashlib.sha256(b"").hexdigest()


def test_write_json_then_read_json_round_trips(mlops_home, tmp_path):
    payload = {"metrics": {"roc_auc": 0.91, "folds": [0.9, 0.92]}, "name": "churn", "approved": True,
               "note": None}
    uri = (tmp_path / "nested" / "dir" / "metrics.json").as_uri()

    assert write_json(uri, payload) == uri
    assert read_json(uri) == payload


def test_write_json_replaces_an_existing_document(mlops_home, tmp_path):
    uri = (tmp_path / "doc.json").as_uri()
    write_json(uri, {"version": 1})
    write_json(uri, {"version": 2})

    assert read_json(uri) == {"version": 2}


def test_write_json_stores_non_json_values_as_text(mlops_home, tmp_path):
    uri = (tmp_path / "doc.json").as_uri()

    write_json(uri, {"path": tmp_path})

    assert read_json(uri) == {"path": str(tmp_path)}
