"""The local batch transform: one output line per input line, in order, through the serving handlers."""

from __future__ import annotations

import csv
import io
import json
import re

import numpy as np
import pandas as pd
import pytest

from mlops.backends.local.automl import FlamlAutoML
from mlops.backends.local.transform import FieldFilter, LocalBatchTransform
from mlops.backends.local.workers import WorkerDied
from mlops.core.storage import DigestMismatch, pack_model
from testkit.airflow_task import result_of, run_like_an_airflow_task
from testkit.workers import DyingClassifier

FEATURES = ["tenure", "charges", "calls"]


def scoring_frame(n: int, first_id: int = 0, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "id": np.arange(first_id, first_id + n),
        "tenure": rng.integers(1, 72, n),
        "charges": rng.normal(60, 20, n).round(2),
        "calls": rng.poisson(2, n),
    })


def write_input(path, frame: pd.DataFrame) -> None:
    """Headerless CSV, id first, as a transform job reads it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, header=False, index=False)


def read_lines(path) -> list[list[str]]:
    return list(csv.reader(path.read_text().splitlines()))


@pytest.fixture
def automl(mlops_home) -> FlamlAutoML:
    return FlamlAutoML(mlops_home / "state" / "automl")


@pytest.fixture
def estimator(mlops_home, automl):
    """A small scikit-learn classifier packed in the artifact contract and registered twice:
    ``churn-lr`` answers predicted_label,probability; ``churn-lr-label`` predicted_label."""
    import joblib
    from sklearn.linear_model import LogisticRegression

    train = scoring_frame(400, seed=1)
    score = train["charges"] / 20 - train["tenure"] / 30 + train["calls"] / 2
    labels = np.where(score > 2, "True.", "False.")
    model = LogisticRegression(max_iter=500).fit(train[FEATURES], labels)
    model_dir = mlops_home / "model"
    model_dir.mkdir(parents=True)
    joblib.dump(model, model_dir / "model.joblib")
    (model_dir / "model.json").write_text(json.dumps({
        "feature_columns": FEATURES, "target": "Churn?", "problem_type": "binary",
        "classes": ["False.", "True."], "framework": "sklearn",
    }))
    uri, sha256 = pack_model(model_dir, (mlops_home / "artifacts" / "model.tar.gz").as_uri())
    automl.register_model("churn-lr", uri, sha256, "binary", ["predicted_label", "probability"])
    automl.register_model("churn-lr-label", uri, sha256, "binary", ["predicted_label"])
    return model


def test_every_input_line_gets_one_output_line(mlops_home, automl, estimator):
    write_input(mlops_home / "in" / "records.csv", scoring_frame(1234)[FEATURES])
    transform = LocalBatchTransform(automl, chunk_rows=100, n_jobs=1)

    result = transform.transform("score-1", "churn-lr", (mlops_home / "in" / "records.csv").as_uri(),
                                 (mlops_home / "out").as_uri())

    assert (result.input_rows, result.output_rows) == (1234, 1234)
    assert len(read_lines(mlops_home / "out" / "records.csv.out")) == 1234


def test_predictions_equal_the_models_offline_predictions_in_input_order(mlops_home, automl, estimator):
    frame = scoring_frame(777, seed=3)
    write_input(mlops_home / "in" / "records.csv", frame[FEATURES])
    transform = LocalBatchTransform(automl, chunk_rows=64, n_jobs=1)

    transform.transform("score-1", "churn-lr", (mlops_home / "in").as_uri(), (mlops_home / "out").as_uri())

    lines = read_lines(mlops_home / "out" / "records.csv.out")
    assert [row[0] for row in lines] == list(estimator.predict(frame[FEATURES]))
    np.testing.assert_allclose([float(row[1]) for row in lines],
                               estimator.predict_proba(frame[FEATURES])[:, 1], rtol=1e-12)


def test_filters_and_join_source_give_id_and_predicted_label(mlops_home, automl, estimator):
    frame = scoring_frame(250, first_id=1000)
    write_input(mlops_home / "in" / "records.csv", frame)
    transform = LocalBatchTransform(automl, chunk_rows=40, n_jobs=1)

    transform.transform("score-1", "churn-lr-label", (mlops_home / "in").as_uri(),
                        (mlops_home / "out").as_uri(), input_filter="$[1:]", join_source=True,
                        output_filter="$[0,-1]")

    lines = read_lines(mlops_home / "out" / "records.csv.out")
    assert lines == [[str(i), label] for i, label in zip(frame["id"], estimator.predict(frame[FEATURES]))]


def test_a_folder_of_files_is_predicted_in_parallel_file_by_file(mlops_home, automl, estimator):
    sizes = {"part-0.csv": 333, "part-1.csv": 7, "nested/part-2.csv": 120}
    first_id = 0
    for name, size in sizes.items():
        write_input(mlops_home / "in" / name, scoring_frame(size, first_id=first_id, seed=size))
        first_id += size
    transform = LocalBatchTransform(automl, chunk_rows=50, n_jobs=2)

    result = transform.transform("score-1", "churn-lr", (mlops_home / "in").as_uri(),
                                 (mlops_home / "out").as_uri(), input_filter="$[1:]", join_source=True,
                                 output_filter="$[0,-2,-1]")

    assert (result.input_rows, result.output_rows) == (460, 460)
    first_id = 0
    for name, size in sizes.items():
        lines = read_lines(mlops_home / "out" / f"{name}.out")
        assert [int(row[0]) for row in lines] == list(range(first_id, first_id + size))
        assert all(len(row) == 3 for row in lines)
        first_id += size


@pytest.mark.parametrize("expression, fields", [
    ("$", ["a", "b", "c", "d"]),
    ("$[1:]", ["b", "c", "d"]),
    ("$[:-1]", ["a", "b", "c"]),
    ("$[2]", ["c"]),
    ("$[0,-1]", ["a", "d"]),
    ("$[0,-2,-1]", ["a", "c", "d"]),
])
def test_supported_filters_select_fields_like_sagemaker(expression, fields):
    assert FieldFilter.parse(expression).apply(["a", "b", "c", "d"]) == fields


@pytest.mark.parametrize("expression", ["$.features", "$[1:3:2]", "$[a]", "$..*", "[0]", "$[*]"])
def test_an_unsupported_filter_is_rejected_naming_it(mlops_home, automl, expression):
    write_input(mlops_home / "in" / "records.csv", scoring_frame(5))
    transform = LocalBatchTransform(automl, n_jobs=1)

    with pytest.raises(ValueError, match=re.escape(expression)):
        transform.transform("score-1", "churn-lr", (mlops_home / "in").as_uri(),
                            (mlops_home / "out").as_uri(), output_filter=expression)
    assert not (mlops_home / "out").exists()


def test_a_finished_job_is_not_run_again(mlops_home, automl, estimator):
    write_input(mlops_home / "in" / "records.csv", scoring_frame(300)[FEATURES])
    transform = LocalBatchTransform(automl, chunk_rows=100, n_jobs=1)
    args = ("score-1", "churn-lr", (mlops_home / "in").as_uri(), (mlops_home / "out").as_uri())
    first = transform.transform(*args)
    output = mlops_home / "out" / "records.csv.out"
    written = output.stat().st_mtime_ns

    again = transform.transform(*args)

    assert again == first
    assert output.stat().st_mtime_ns == written
    assert json.loads((mlops_home / "out" / "_SUCCESS").read_text())["job_name"] == "score-1"


def test_a_failing_job_leaves_no_partial_output(mlops_home, automl, estimator):
    path = mlops_home / "in" / "records.csv"
    write_input(path, scoring_frame(150)[FEATURES])
    with path.open("a") as handle:
        handle.write("1,2\n")  # a record with too few fields, in the second chunk
    transform = LocalBatchTransform(automl, chunk_rows=100, n_jobs=1)

    with pytest.raises(ValueError, match="fields"):
        transform.transform("score-1", "churn-lr", (mlops_home / "in").as_uri(),
                            (mlops_home / "out").as_uri())
    assert sorted(p.name for p in (mlops_home / "out").iterdir()) == []


def test_a_changed_artifact_is_refused(mlops_home, automl, estimator):
    write_input(mlops_home / "in" / "records.csv", scoring_frame(10)[FEATURES])
    artifact = mlops_home / "artifacts" / "model.tar.gz"
    artifact.write_bytes(artifact.read_bytes() + b"\0")
    transform = LocalBatchTransform(automl, n_jobs=1)

    with pytest.raises(DigestMismatch):
        transform.transform("score-1", "churn-lr", (mlops_home / "in").as_uri(),
                            (mlops_home / "out").as_uri())


def test_an_unknown_model_is_a_key_error_naming_it(mlops_home, automl):
    write_input(mlops_home / "in" / "records.csv", scoring_frame(10)[FEATURES])

    with pytest.raises(KeyError, match="no-such-model"):
        LocalBatchTransform(automl, n_jobs=1).transform(
            "score-1", "no-such-model", (mlops_home / "in").as_uri(), (mlops_home / "out").as_uri())


# ---------------------------------------------------------------- worker processes
def test_a_transform_in_an_airflow_task_process_runs_its_workers_cleanly(mlops_home, automl, estimator):
    write_input(mlops_home / "in" / "records.csv", scoring_frame(500)[FEATURES])

    ran = run_like_an_airflow_task("transform", state_dir=str(mlops_home / "state" / "automl"), model_name="churn-lr",
                                   input_uri=(mlops_home / "in").as_uri(), output_uri=(mlops_home / "out").as_uri(),
                                   n_jobs=2)

    outcome = result_of(ran)
    assert (outcome["result"]["input_rows"], outcome["result"]["output_rows"]) == (500, 500)
    assert outcome["airflow_imported_by_a_child"] is False


def test_a_worker_that_dies_fails_the_job_naming_its_signal_and_its_last_stderr_lines(mlops_home, automl):
    import joblib

    model_dir = mlops_home / "dying-model"
    model_dir.mkdir(parents=True)
    joblib.dump(DyingClassifier(), model_dir / "model.joblib")
    (model_dir / "model.json").write_text(json.dumps({
        "feature_columns": FEATURES, "target": "Churn?", "problem_type": "binary",
        "classes": DyingClassifier.classes_, "framework": "sklearn",
    }))
    uri, sha256 = pack_model(model_dir, (mlops_home / "artifacts" / "dying.tar.gz").as_uri())
    automl.register_model("dying", uri, sha256, "binary", ["predicted_label"])
    write_input(mlops_home / "in" / "records.csv", scoring_frame(120)[FEATURES])

    with pytest.raises(WorkerDied) as died:
        LocalBatchTransform(automl, chunk_rows=50, n_jobs=2).transform(
            "score-dies", "dying", (mlops_home / "in").as_uri(), (mlops_home / "out").as_uri())

    message = str(died.value)
    assert message.startswith("transform score-dies: worker process ")
    assert "was killed by SIGKILL (signal 9); the last lines it wrote to stderr:\nDyingClassifier: asked for" \
        in message
    assert "memory" not in message
    assert not (mlops_home / "out" / "_SUCCESS").exists()


# ---------------------------------------------------------------- response keys through the transform
ALL_KEYS = ["predicted_label", "probability", "labels", "probabilities"]


def register(mlops_home, automl, name: str, model, classes: list[str], problem_type: str, keys: list[str]) -> None:
    import joblib

    model_dir = mlops_home / "models" / name
    model_dir.mkdir(parents=True)
    joblib.dump(model, model_dir / "model.joblib")
    (model_dir / "model.json").write_text(json.dumps({
        "feature_columns": FEATURES, "target": "y", "problem_type": problem_type, "classes": classes,
        "framework": "sklearn"}))
    uri, sha256 = pack_model(model_dir, (mlops_home / "artifacts" / name / "model.tar.gz").as_uri())
    automl.register_model(name, uri, sha256, problem_type, keys)


def test_binary_all_response_keys_come_back_after_the_id_one_line_per_record(mlops_home, automl, estimator):
    register(mlops_home, automl, "churn-all", estimator, ["False.", "True."], "binary", ALL_KEYS)
    frame = scoring_frame(301, first_id=5000, seed=8)
    write_input(mlops_home / "in" / "records.csv", frame)

    LocalBatchTransform(automl, chunk_rows=64, n_jobs=1).transform(
        "score-1", "churn-all", (mlops_home / "in").as_uri(), (mlops_home / "out").as_uri(),
        input_filter="$[1:]", join_source=True, output_filter="$[0,-4,-3,-2,-1]")

    lines = read_lines(mlops_home / "out" / "records.csv.out")
    assert [int(row[0]) for row in lines] == frame["id"].tolist()
    expected = estimator.predict_proba(frame[FEATURES])
    for (_, label, probability, labels, probabilities), proba in zip(lines, expected):
        labels, probabilities = json.loads(labels), json.loads(probabilities)
        assert labels == ["False.", "True."] and len(probabilities) == 2
        assert float(probability) == pytest.approx(proba[1]) and probabilities == pytest.approx(list(proba))
        assert label == labels[int(np.argmax(probabilities))]


def test_multiclass_all_response_keys_come_back_after_the_id(mlops_home, automl):
    from sklearn.linear_model import LogisticRegression

    train = scoring_frame(500, seed=2)
    tiers = np.select([train["charges"] < 50, train["charges"] < 70], ["bronze", "silver"], "gold")
    model = LogisticRegression(max_iter=1000).fit(train[FEATURES], tiers)
    register(mlops_home, automl, "tier-all", model, list(model.classes_), "multiclass", ALL_KEYS)
    frame = scoring_frame(120, first_id=1, seed=9)
    write_input(mlops_home / "in" / "records.csv", frame)

    LocalBatchTransform(automl, chunk_rows=50, n_jobs=1).transform(
        "score-1", "tier-all", (mlops_home / "in").as_uri(), (mlops_home / "out").as_uri(),
        input_filter="$[1:]", join_source=True, output_filter="$[0,-4,-3,-2,-1]")

    lines = read_lines(mlops_home / "out" / "records.csv.out")
    assert len(lines) == 120 and all(len(row) == 5 for row in lines)
    for _, label, probability, labels, probabilities in lines:
        labels, probabilities = json.loads(labels), json.loads(probabilities)
        assert labels == ["bronze", "gold", "silver"] and sum(probabilities) == pytest.approx(1)
        assert float(probability) == pytest.approx(max(probabilities))  # the winning class's
        assert label == labels[int(np.argmax(probabilities))]


# ---------------------------------------------------------------- mini-batches
def test_mini_batches_respect_the_payload_limit_and_keep_input_order(mlops_home, automl, estimator):
    frame = scoring_frame(400, first_id=0, seed=5)
    write_input(mlops_home / "in" / "records.csv", frame)
    transform = LocalBatchTransform(automl, chunk_rows=1000, n_jobs=2, max_payload_mb=1 / 1024)  # 1 KiB

    chunks = list(transform._chunks(mlops_home / "in" / "records.csv"))
    result = transform.transform("score-1", "churn-lr-label", (mlops_home / "in").as_uri(),
                                 (mlops_home / "out").as_uri(), input_filter="$[1:]", join_source=True,
                                 output_filter="$[0,-1]")

    assert len(chunks) > 1 and all(len(c) <= 1024 for c in chunks)
    assert b"".join(chunks) == (mlops_home / "in" / "records.csv").read_bytes()
    assert result.output_rows == 400
    assert [int(row[0]) for row in read_lines(mlops_home / "out" / "records.csv.out")] == list(range(400))


def test_a_record_over_the_payload_limit_fails_the_job(mlops_home, automl, estimator):
    path = mlops_home / "in" / "records.csv"
    write_input(path, scoring_frame(5)[FEATURES])
    with path.open("a") as handle:
        handle.write("1," + "9" * 2000 + ",3\n")
    transform = LocalBatchTransform(automl, n_jobs=1, max_payload_mb=1 / 1024)

    with pytest.raises(ValueError, match="exceeds the mini-batch payload limit of 1024 bytes"):
        transform.transform("score-1", "churn-lr", (mlops_home / "in").as_uri(), (mlops_home / "out").as_uri())
    assert not (mlops_home / "out" / "records.csv.out").exists()


def test_blank_lines_are_not_records_and_crlf_endings_are_accepted(mlops_home, automl, estimator):
    frame = scoring_frame(30, seed=6)[FEATURES]
    text = frame.to_csv(header=False, index=False, lineterminator="\r\n")
    lines = text.split("\r\n")
    (mlops_home / "in").mkdir(parents=True)
    (mlops_home / "in" / "records.csv").write_text("\r\n".join(lines[:10] + [""] + lines[10:]) + "\n")

    result = LocalBatchTransform(automl, chunk_rows=7, n_jobs=1).transform(
        "score-1", "churn-lr-label", (mlops_home / "in").as_uri(), (mlops_home / "out").as_uri())

    assert (result.input_rows, result.output_rows) == (30, 30)
    assert [row[0] for row in read_lines(mlops_home / "out" / "records.csv.out")] == list(estimator.predict(frame))


def test_submit_runs_the_job_and_returns_a_done_handle(mlops_home, automl, estimator):
    write_input(mlops_home / "in" / "records.csv", scoring_frame(20)[FEATURES])
    transform = LocalBatchTransform(automl, n_jobs=1)

    handle = transform.submit("score-1", "churn-lr", (mlops_home / "in").as_uri(), (mlops_home / "out").as_uri())

    assert handle.done and handle.kind == "transform"
    assert transform.collect(handle) == {"job_name": "score-1", "output_uri": (mlops_home / "out").as_uri(),
                                         "input_rows": 20, "output_rows": 20}


def test_an_in_process_job_gives_the_caller_its_native_thread_pools_back(mlops_home, automl, estimator):
    from threadpoolctl import threadpool_info

    write_input(mlops_home / "in" / "records.csv", scoring_frame(50)[FEATURES])
    before = [(i["internal_api"], i["num_threads"]) for i in threadpool_info()]

    LocalBatchTransform(automl, n_jobs=1, threads_per_worker=1).transform(
        "score-1", "churn-lr", (mlops_home / "in").as_uri(), (mlops_home / "out").as_uri())

    assert [(i["internal_api"], i["num_threads"]) for i in threadpool_info()][:len(before)] == before


# ---------------------------------------------------------------- column by column = row by row
# A plain mini-batch is read, predicted and written column by column (predict_columns); anything
# else goes row by row (predict_lines, the path every mini-batch took before). Both must give the
# same bytes, or the same refusal, for every input.
SCHEMA_FEATURES = ["tenure", "charges", "plan", "region"]


@pytest.fixture(scope="module")
def schema_model_dir(tmp_path_factory):
    """A fitted pipeline of the training entry point whose model.json lists its categorical columns."""
    from mlops.core.entrypoints import training_module

    train = training_module()
    rng = np.random.default_rng(4)
    frame = pd.DataFrame({"tenure": rng.integers(1, 72, 300).astype(float), "charges": rng.normal(60, 20, 300),
                          "plan": rng.choice(["basic", "pro", "Zürich, \"gold\""], 300),
                          "region": rng.choice(["n", "s"], 300)})
    labels = np.where(frame["charges"] + 10 * (frame["plan"] == "pro") > 62, "True.", "False.")
    pipeline = train.build_pipeline("gradient_boosting", {"max_iter": 15}, SCHEMA_FEATURES, ["plan", "region"],
                                    "binary", seed=0).fit(frame, labels)
    return train.save_model(pipeline, {"feature_columns": SCHEMA_FEATURES, "categorical": ["plan", "region"],
                                       "target": "Churn?", "problem_type": "binary", "classes": ["False.", "True."],
                                       "framework": "sklearn"}, tmp_path_factory.mktemp("schema-model"))


@pytest.fixture
def worker():
    """This process as a transform worker: ``load(model_dir, input_filter, join_source, output_filter, keys)``."""
    from mlops.backends.local import transform

    def load(model_dir, input_filter=None, join_source=False, output_filter=None, keys=ALL_KEYS):
        transform._WORKER.clear()
        transform.load_worker(str(model_dir), {"SAGEMAKER_INFERENCE_OUTPUT": ",".join(keys)}, input_filter,
                              join_source, output_filter)
        return transform

    yield load
    transform._WORKER.clear()


def row_by_row(transform, payload: bytes) -> tuple[int, bytes]:
    lines = transform.split_records(payload)
    return len(lines), transform.predict_lines(lines).encode()


PLAIN = ["1,12,50.5,basic,n", "2,3,20,pro,s", "3,,71.25,basic,s", "4,40,,Zürich,n", "5,7,66,pro,n"]
LAYOUTS = [(None, False, None), ("$[1:]", True, "$[0,-4,-3,-2,-1]"), ("$[1:]", True, None),
           ("$[1:]", False, "$[-1]"), ("$[1:]", True, "$[0,-1]"), ("$[1:]", True, "$[0,1,2,3,4]")]


PLAIN_PAYLOADS = {
    "lf": "\n".join(PLAIN) + "\n",
    "crlf": "\r\n".join(PLAIN) + "\r\n",
    "no final newline": "\n".join(PLAIN),
    "empty lines": "\n\n" + "\n\n".join(PLAIN) + "\r\n\r\n\n",
}


@pytest.mark.parametrize("input_filter, join_source, output_filter", LAYOUTS)
def test_a_plain_mini_batch_is_written_column_by_column_byte_for_byte_as_row_by_row(
        schema_model_dir, worker, input_filter, join_source, output_filter):
    transform = worker(schema_model_dir, input_filter, join_source, output_filter)
    for name, payload in PLAIN_PAYLOADS.items():
        if input_filter is None:  # the records are the features only
            payload = "\n".join(line.split(",", 1)[1] if "," in line else line for line in payload.split("\n"))
        data = payload.encode()

        columnar = transform.predict_columns(data)

        assert columnar is not None and columnar == row_by_row(transform, data), name
        assert columnar[0] == 5 and transform.predict_chunk(data) == columnar, name


@pytest.mark.parametrize("payload", [
    '1,12,50.5,"basic",n\n"2,b",3,20,pro,s\n',  # quoted fields; an id holding the delimiter
    '1,12,50.5,"Zürich, ""gold""",n\n2,3,20,pro,s\n',  # a quoted category with quotes and a comma
    "1,12,50.5,basic,n\n   \n2,3,20,pro,s\n",  # a line of spaces is no record
    "1,12,nan,basic,n\n2, 3,20,pro,s\n3,1_0,20,pro,s\n",  # numbers pyarrow reads otherwise than Python
    "1,12,50.5,basic,n\r2,3,20,pro,s\n",  # a bare CR
    "\r\n\r1,12,50.5,basic,n\n",  # a bare CR after a blank line
])
def test_a_mini_batch_that_is_not_plain_goes_row_by_row_and_gives_the_same_bytes(schema_model_dir, worker, payload):
    transform = worker(schema_model_dir, "$[1:]", True, "$[0,-4,-3,-2,-1]")
    data = payload.encode()

    assert transform.predict_columns(data) is None
    if "\r2" not in payload and "\n\r1" not in payload:
        assert transform.predict_chunk(data) == row_by_row(transform, data)


@pytest.mark.parametrize("payload, message", [
    ("1,12,50.5,basic,n\n2,3,20,pro\n", "text/csv record 2 has 3 fields; expected 4"),
    ("1,12,50.5,basic,n\n2,3,twenty,pro,s\n", "text/csv record 2, column 'charges': 'twenty' is not a number"),
])
def test_a_bad_record_is_refused_with_the_row_by_row_message(schema_model_dir, worker, payload, message):
    from mlops.core.entrypoints import inference_module

    transform = worker(schema_model_dir, "$[1:]", True, "$[0,-4,-3,-2,-1]")

    with pytest.raises(inference_module().RequestError, match=re.escape(message)):
        transform.predict_chunk(payload.encode())
    with pytest.raises(inference_module().RequestError, match=re.escape(message)):
        row_by_row(transform, payload.encode())


def test_a_model_without_a_schema_is_written_column_by_column_as_row_by_row(mlops_home, worker, estimator):
    model_dir = mlops_home / "model"
    frame = scoring_frame(200, seed=11)
    data = frame.to_csv(header=False, index=False).encode()
    transform = worker(model_dir, "$[1:]", True, "$[0,-2,-1]", keys=["predicted_label", "probability"])

    columnar = transform.predict_columns(data)

    assert columnar is not None and columnar == row_by_row(transform, data)


def test_a_job_over_an_edge_case_file_writes_what_row_by_row_writes(mlops_home, automl, schema_model_dir, worker):
    lines = [f"{i},{i % 70},{40 + i % 50}.5,{['basic', 'pro'][i % 2]},{'ns'[i % 3 == 0]}" for i in range(300)]
    lines[17] = '"17,x",5,50,"Zürich, ""gold""",n'  # quoted: its mini-batch goes row by row
    text = "\r\n".join(lines[:100]) + "\n\n" + "\n".join(lines[100:])  # CRLF, an empty line, no final newline
    (mlops_home / "in").mkdir(parents=True)
    (mlops_home / "in" / "records.csv").write_text(text)
    uri, sha256 = pack_model(schema_model_dir, (mlops_home / "artifacts" / "schema.tar.gz").as_uri())
    automl.register_model("schema-all", uri, sha256, "binary", ALL_KEYS)

    result = LocalBatchTransform(automl, chunk_rows=64, n_jobs=2).transform(
        "score-1", "schema-all", (mlops_home / "in").as_uri(), (mlops_home / "out").as_uri(),
        input_filter="$[1:]", join_source=True, output_filter="$[0,-4,-3,-2,-1]")

    transform = worker(schema_model_dir, "$[1:]", True, "$[0,-4,-3,-2,-1]")
    expected = b"".join(row_by_row(transform, (line + "\n").encode())[1] for line in lines)
    assert (result.input_rows, result.output_rows) == (300, 300)
    assert (mlops_home / "out" / "records.csv.out").read_bytes() == expected


# ---------------------------------------------------------------- the serving handlers share it
def csv_writer_response(inference, prediction, keys) -> str:
    """What write_response wrote before it wrote column by column: csv.writer over prediction_rows."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for row in inference.prediction_rows(prediction, keys):
        writer.writerow([json.dumps(v) if isinstance(v, list) else v for v in row])
    return out.getvalue()


@pytest.mark.parametrize("classes", [["False.", "True."], ["a,b", 'say "hi"', "c"], [0, 1], ["only"]],
                         ids=["binary", "quoted-labels", "int-labels", "one-class"])
@pytest.mark.parametrize("keys", [ALL_KEYS, ["predicted_label"], ["probabilities", "predicted_label"]])
def test_a_csv_response_is_written_column_by_column_as_the_csv_module_writes_it(classes, keys):
    from mlops.core.entrypoints import inference_module

    inference = inference_module()
    rng = np.random.default_rng(len(classes))
    proba = rng.dirichlet(np.ones(len(classes)), 50)
    proba[0] = [1.0] + [0.0] * (len(classes) - 1)  # 1.0 and 0.0, then 1e-05-style reprs
    proba[1, 0] = 1e-05 if len(classes) > 1 else proba[1, 0]
    winner = proba.argmax(axis=1)
    prediction = {"predicted_label": np.asarray(classes, dtype=object)[winner],
                  "probability": proba[:, 1] if len(classes) == 2 else proba[np.arange(50), winner],
                  "labels": classes, "probabilities": proba}

    body, kind = inference.write_response(prediction, "text/csv", keys)

    assert kind == "text/csv" and body == csv_writer_response(inference, prediction, keys)


def test_a_regression_response_and_a_missing_probability_are_written_as_the_csv_module_writes_them():
    from mlops.core.entrypoints import inference_module

    inference = inference_module()
    numbers = {"predicted_label": np.array([1.5, -2.0, 1e20, 3e-7])}
    with_nan = {"predicted_label": np.array(["a", "b"], dtype=object), "probability": np.array([np.nan, 0.5]),
                "labels": ["a", "b"], "probabilities": np.array([[np.nan, np.nan], [0.5, 0.5]])}

    assert inference.write_response(numbers, "text/csv", ["predicted_label"])[0] == \
        csv_writer_response(inference, numbers, ["predicted_label"])
    assert inference.write_response(with_nan, "text/csv", ALL_KEYS)[0] == \
        csv_writer_response(inference, with_nan, ALL_KEYS)


def test_many_floats_are_written_as_repr_writes_them_whatever_their_magnitude():
    """From ARROW_FLOAT_TEXTS_MIN values on, pyarrow writes the floats: its digits are repr's, its
    notation differs below 1e-4, from 1e9 and for whole numbers, which repr then writes."""
    from mlops.core.entrypoints import inference_module

    inference = inference_module()
    rng = np.random.default_rng(11)
    n = 20_000
    assert n >= inference.ARROW_FLOAT_TEXTS_MIN
    p = rng.random(n)
    p[:12] = [0.0, 1.0, 1e-4, np.nextafter(1e-4, 0), 1e-5, 5e-324, 0.5, 1 - 1e-12, 0.1, 1 / 3, 2 ** -30, 0.9999]
    p[12:2000] *= 10.0 ** rng.integers(-12, 0, 1988)  # tiny probabilities: the e-notation of repr
    proba = np.column_stack([1 - p, p])
    classes = ["False.", "True."]
    binary = {"predicted_label": np.asarray(classes, dtype=object)[proba.argmax(axis=1)], "probability": p,
              "labels": classes, "probabilities": proba}
    magnitudes = rng.choice([-1.0, 1.0], n) * 10.0 ** rng.uniform(-12, 20, n)
    magnitudes[:8] = [1e9, np.nextafter(1e9, 0), -1e9, 123456789.5, 2.0, -0.0, 1e16, 1e22]
    regression = {"predicted_label": magnitudes}

    assert inference.write_response(binary, "text/csv", ALL_KEYS)[0] == \
        csv_writer_response(inference, binary, ALL_KEYS)
    assert inference.write_response(regression, "text/csv", ["predicted_label"])[0] == \
        csv_writer_response(inference, regression, ["predicted_label"])


def test_a_large_csv_request_is_read_column_by_column_into_the_row_by_row_input(schema_model_dir):
    """Column by column, a large request becomes exactly what the row-by-row reading gives: the
    compiled feature step's matrix (equal to the pipeline's own feature step), or the typed frame."""
    from mlops.core.entrypoints import inference_module

    inference = inference_module()
    model = inference.model_fn(str(schema_model_dir))
    records = [f"{i % 70},{40 + i % 50}.25,{['basic', 'pro', 'Zürich', 'unseen'][i % 4]},{'ns'[i % 2]}"
               for i in range(2000)]
    records[5] = "3,,basic,n"  # a missing number
    body = ("\r\n".join(records)).encode()
    rows = [record.split(",") for record in records]
    typed = inference._typed_frame(rows, model)

    encoded = inference.parse_request(body, "text/csv", model)

    assert model.compiled is not None, model.compile_note
    assert isinstance(encoded, inference.EncodedRows)  # the body is large and plain: read by column
    np.testing.assert_array_equal(encoded.matrix, model.compiled.encode(rows).matrix)
    np.testing.assert_array_equal(encoded.matrix, model.estimator[:-1].transform(typed))
    columns = inference.plain_csv_columns(body, 4, [0, 1, 2, 3])
    frame = inference.columnar_frame(columns, model)  # a model whose feature step did not compile
    pd.testing.assert_frame_equal(frame, typed)
    assert np.isnan(frame.loc[5, "charges"])


def test_a_large_csv_request_of_blank_lines_is_refused_as_empty(schema_model_dir):
    from mlops.core.entrypoints import inference_module

    inference = inference_module()
    model = inference.model_fn(str(schema_model_dir))

    with pytest.raises(inference.RequestError, match="empty text/csv payload"):
        inference.parse_request(b"\r\n" * 20_000, "text/csv", model)
