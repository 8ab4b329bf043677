"""The serving handlers' compiled path (include/serving/inference.py): a text/csv request to a model
trained by include/training/train.py skips the DataFrame, the ColumnTransformer and the per-tree
calls, and must answer exactly what the fitted pipeline answers, refuse what it refuses, and step
aside whenever it cannot prove that."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

from include.serving import inference
from mlops.backends.local.training import training_entry_point

CATEGORICAL = ["State", "Int'l Plan", "Area Code"]
NUMERIC = ["Day Mins", "Eve Mins", "CustServ Calls"]
FEATURES = CATEGORICAL + NUMERIC
SMALL = {"max_iter": 15, "max_leaf_nodes": 8}


def customers(n: int = 400, seed: int = 0) -> pd.DataFrame:
    """Churn-shaped rows with missing numbers, and a label and a 3-class plan that depend on them."""
    rng = np.random.default_rng(seed)
    day = rng.normal(180, 50, n).round(1)
    day[rng.random(n) < 0.1] = np.nan
    calls = rng.poisson(1.5, n).astype(float)
    intl = rng.choice(["yes", "no"], n, p=[0.2, 0.8])
    churned = (np.nan_to_num(day, nan=180) > 200) ^ (rng.random(n) < 0.15) | (calls > 3)
    return pd.DataFrame({
        "State": rng.choice(["KS", "OH", "NJ", "TX", "CA", "NY"], n),
        "Int'l Plan": intl,
        "Area Code": rng.choice([415, 408, 510], n),
        "Day Mins": day,
        "Eve Mins": rng.normal(200, 50, n).round(1),
        "CustServ Calls": calls,
        "Churn?": np.where(churned, "True.", "False."),
        "Plan": np.where(calls > 2, "gold", np.where(intl == "yes", "silver", "basic")),
        "Spend": np.nan_to_num(day, nan=150) * 0.17 + rng.normal(0, 3, n),
    })


MODELS = {  # name: (estimator, problem type, target, hyperparameters)
    "boosted": ("gradient_boosting", "binary", "Churn?", SMALL),
    "boosted_multiclass": ("gradient_boosting", "multiclass", "Plan", SMALL),
    "boosted_regression": ("gradient_boosting", "regression", "Spend", SMALL),
    "logistic": ("logistic_regression", "binary", "Churn?", {}),
    "forest": ("random_forest", "binary", "Churn?", {"n_estimators": 10, "max_depth": 4}),
}


@pytest.fixture(autouse=True)
def one_thread():
    with threadpool_limits(limits=1):
        yield


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory):
    train = training_entry_point()
    frame = customers()
    dirs = {}
    for name, (estimator, problem_type, target, hyperparameters) in MODELS.items():
        config = {"feature_columns": FEATURES, "categorical": CATEGORICAL, "target": target,
                  "problem_type": problem_type, "estimator": estimator, "seed": 3}
        if problem_type == "binary":
            config["positive_label"] = "True."
        pipeline, meta = train.fit_full(frame, config, hyperparameters)
        dirs[name] = tmp_path_factory.mktemp(name)
        train.save_model(pipeline, meta, dirs[name])
    return dirs


def through_the_pipeline(model: inference.LoadedModel) -> inference.LoadedModel:
    """The same model served the way it was before the compiled path: DataFrame -> Pipeline."""
    return dataclasses.replace(model, compiled=None, compile_note="pipeline")


def answer(model: inference.LoadedModel, body: str) -> dict:
    return inference.predict_fn(inference.parse_request(body, "text/csv", model), model)


def assert_same_answer(fast: dict, slow: dict) -> None:
    assert list(fast["predicted_label"]) == list(slow["predicted_label"])
    if "probabilities" in slow:
        assert fast["probabilities"].shape == slow["probabilities"].shape
        assert np.max(np.abs(fast["probabilities"] - slow["probabilities"])) <= 1e-9
        assert list(fast["labels"]) == list(slow["labels"])
    else:
        assert np.max(np.abs(fast["predicted_label"] - slow["predicted_label"])) <= 1e-9


EDGE_RECORDS = [
    "KS,no,415,180.5,200.1,1",  # an ordinary record
    "ZZ,maybe,999,180.5,200.1,1",  # categories never seen in training
    ",,,,,",  # every field empty: no category, every number missing
    "OH,yes,408,,210,",  # missing numbers
    "NJ,no,510,nan,1e2, 4 ",  # "nan", an exponent, a space-padded number
    "TX,no,415.0,-3,0,-0",  # a numeric-looking category that is not one ("415.0" is not "415")
    "CA,yes,510,1e30,-1e30,100000",  # extremes
    " KS,no ,415,180,200,1",  # padded text is another category
]


@pytest.mark.parametrize("name", list(MODELS))
def test_a_model_from_the_training_entry_point_is_served_compiled(model_dirs, name):
    model = inference.model_fn(str(model_dirs[name]))

    assert model.compiled is not None, model.compile_note
    assert model.compile_note.startswith("compiled; equal to the pipeline's feature step")
    boosted = name.startswith("boosted")
    assert ("; trees compiled; equal to the estimator" in model.compile_note) == boosted
    assert isinstance(model.compiled.predictor, inference.CompiledTrees) == boosted


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("record", EDGE_RECORDS)
def test_one_record_gets_the_pipelines_answer(model_dirs, name, record):
    model = inference.model_fn(str(model_dirs[name]))

    assert isinstance(inference.parse_request(record + "\n", "text/csv", model), inference.EncodedRows)
    assert_same_answer(answer(model, record + "\n"), answer(through_the_pipeline(model), record + "\n"))


@pytest.mark.parametrize("rows", [1, 128, 129, 2000])
def test_the_compiled_trees_and_the_estimator_agree_bit_for_bit_on_either_side_of_the_hand_over(model_dirs, rows):
    """Up to ``MAX_ROWS`` rows the compiled trees walk, past it the estimator predicts: both
    give the estimator's own numbers, so where one stops and the other starts changes no answer."""
    model = inference.model_fn(str(model_dirs["boosted"]))
    trees, estimator = model.compiled.predictor, model.estimator[-1]
    matrix = model.compiled.encode([line.split(",") for line in
                                    customers(rows, seed=5)[FEATURES].to_csv(header=False, index=False).splitlines()]).matrix

    assert np.array_equal(trees.walked_proba(matrix), estimator.predict_proba(matrix))
    assert np.array_equal(trees.predict_proba(matrix), estimator.predict_proba(matrix))
    assert np.array_equal(trees.predict(matrix), estimator.predict(matrix))


@pytest.mark.parametrize("name", list(MODELS))
def test_the_training_rows_get_the_pipelines_answers(model_dirs, name):
    model = inference.model_fn(str(model_dirs[name]))
    frame = customers(300, seed=11)[FEATURES]
    body = frame.to_csv(header=False, index=False)

    fast = answer(model, body)

    assert_same_answer(fast, answer(through_the_pipeline(model), body))
    estimator = model.estimator  # and the fitted pipeline on the original typed frame, directly
    if model.is_classifier:
        assert np.max(np.abs(fast["probabilities"] - estimator.predict_proba(frame))) <= 1e-9
    else:
        assert np.max(np.abs(fast["predicted_label"] - estimator.predict(frame))) <= 1e-9


def test_requests_parsed_together_get_the_answers_they_get_alone(model_dirs):
    model = inference.model_fn(str(model_dirs["boosted"]))
    bodies = [record + "\n" for record in EDGE_RECORDS]

    together, sizes = inference.batch_input_fn(bodies, "text/csv", model)

    assert isinstance(together, inference.EncodedRows) and sizes == [1] * len(bodies)
    combined = inference.predict_fn(together, model)
    for i, body in enumerate(bodies):
        assert_same_answer({k: v if k == "labels" else v[i:i + 1] for k, v in combined.items()},
                           answer(through_the_pipeline(model), body))


@pytest.mark.parametrize("body", [
    "KS,no,415,180.5,200.1\n",  # a field short
    "KS,no,415,180.5,200.1,1,7\n",  # a field too many
    "KS,no,415,180.5,200.1,1\nOH,no,415\n",  # the second record short
    "KS,no,415,lots,200.1,1\n",  # not a number
    "\n\n",  # no record
])
def test_a_bad_request_is_refused_with_the_pipelines_error(model_dirs, body):
    model = inference.model_fn(str(model_dirs["boosted"]))

    with pytest.raises(inference.RequestError) as fast:
        inference.parse_request(body, "text/csv", model)
    with pytest.raises(inference.RequestError) as slow:
        inference.parse_request(body, "text/csv", through_the_pipeline(model))

    assert (type(fast.value), str(fast.value)) == (type(slow.value), str(slow.value))


def test_the_container_handlers_answer_as_the_pipeline(model_dirs):
    model = inference.model_fn(str(model_dirs["boosted"]))
    body = "\n".join(EDGE_RECORDS) + "\n"

    fast = inference.output_fn(inference.predict_fn(inference.input_fn(body, "text/csv"), model), "text/csv")
    slow = inference.output_fn(inference.predict_fn(inference.input_fn(body, "text/csv", through_the_pipeline(
        model)), model), "text/csv")
    refused = inference.output_fn(inference.predict_fn(inference.input_fn("KS,no\n", "text/csv"), model), "text/csv")

    assert fast == slow
    assert isinstance(refused, inference.ErrorResponse) and refused.status == 400


def test_json_requests_still_go_through_the_pipeline(model_dirs):
    model = inference.model_fn(str(model_dirs["boosted"]))
    instances = [["KS", "no", 415, 180.5, 200.1, 1], ["ZZ", "yes", "510", None, 3, 0]]
    body = inference.json.dumps({"instances": instances})

    parsed = inference.parse_request(body, "application/json", model)

    assert isinstance(parsed, pd.DataFrame)
    assert np.array_equal(inference.predict_fn(parsed, model)["probabilities"],
                          model.estimator.predict_proba(parsed))


def test_a_compiled_feature_step_that_differs_from_the_pipeline_is_not_used(model_dirs, monkeypatch):
    original = inference.CompiledFeatures.encode

    def off_by_a_little(self, rows):
        encoded = original(self, rows)
        encoded.matrix[:, -1] += 1e-12
        return encoded

    monkeypatch.setattr(inference.CompiledFeatures, "encode", off_by_a_little)
    model = inference.model_fn(str(model_dirs["logistic"]))

    assert model.compiled is None
    assert "differs from the pipeline's" in model.compile_note
    assert isinstance(inference.parse_request(EDGE_RECORDS[0] + "\n", "text/csv", model), pd.DataFrame)


def test_compiled_trees_that_differ_from_the_estimator_are_not_used(model_dirs, monkeypatch):
    original = inference.CompiledTrees.raw_predict
    monkeypatch.setattr(inference.CompiledTrees, "raw_predict", lambda self, X: original(self, X) * (1 + 1e-15))
    model = inference.model_fn(str(model_dirs["boosted"]))

    assert "trees not compiled: the compiled trees differ" in model.compile_note
    assert model.compiled.predictor is model.estimator[-1]  # the features stay compiled
    assert_same_answer(answer(model, EDGE_RECORDS[1] + "\n"), answer(through_the_pipeline(model), EDGE_RECORDS[1] + "\n"))


def test_a_pipeline_it_does_not_know_is_served_as_it_is(model_dirs):
    from sklearn.preprocessing import OneHotEncoder

    model = inference.model_fn(str(model_dirs["boosted"]))
    strict = dataclasses.replace(model, compiled=None)
    categorical = strict.estimator[0].named_transformers_["categorical"]
    categorical.steps[-1] = ("one_hot", OneHotEncoder(handle_unknown="error", sparse_output=False).fit(
        np.asarray(customers()[CATEGORICAL], dtype=str)))

    compiled, note = inference.compile_features(strict)

    assert compiled is None and "handle_unknown='ignore'" in note


def test_a_model_without_a_schema_is_not_compiled(model_dirs):
    model = dataclasses.replace(inference.model_fn(str(model_dirs["boosted"])), categorical=None)

    assert inference.compile_features(model) == (None, "no categorical schema in model.json")
