"""Fold manifests, holdout splits and dataset digests (``mlops.ml.folds``)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import GroupKFold, KFold, StratifiedKFold

from mlops.ml.folds import dataset_digest, fold_manifest, holdout_split, manifest_sha256

TARGET = "Churn?"


@pytest.fixture
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    n = 240
    return pd.DataFrame(
        {
            "State": rng.choice(["KS", "OH", "NJ", "TX"], n),
            "Day Mins": rng.normal(180, 50, n).round(1),
            "CustServ Calls": rng.poisson(1.5, n),
            "customer": rng.integers(0, 40, n),
            "signup": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.permutation(n), unit="D"),
            TARGET: np.where(rng.random(n) < 0.2, "True.", "False."),
        }
    )


def fold_ids(manifest) -> np.ndarray:
    return np.asarray(manifest["folds"])


def test_manifest_has_the_documented_keys_and_is_json(frame):
    manifest = fold_manifest(frame, TARGET, k=5, seed=42)
    assert set(manifest) == {"k", "seed", "strategy", "dataset_digest", "n_rows", "folds"}
    assert [manifest[key] for key in ("k", "seed", "strategy", "n_rows")] == [5, 42, "stratified", 240]
    assert manifest["dataset_digest"] == dataset_digest(frame)
    assert json.loads(json.dumps(manifest)) == manifest


@pytest.mark.parametrize("strategy", ["stratified", "kfold", "group"])
def test_every_row_is_in_exactly_one_of_k_folds(frame, strategy):
    manifest = fold_manifest(frame, TARGET, k=5, seed=1, strategy=strategy, group_column="customer")
    ids = fold_ids(manifest)
    assert len(ids) == len(frame)
    assert sorted(set(ids)) == [0, 1, 2, 3, 4]


def test_manifest_is_deterministic_for_a_seed_and_changes_with_it(frame):
    first = fold_manifest(frame, TARGET, k=5, seed=42)
    assert fold_manifest(frame, TARGET, k=5, seed=42) == first
    assert fold_manifest(frame, TARGET, k=5, seed=43)["folds"] != first["folds"]


def test_stratified_folds_keep_the_class_ratio(frame):
    ids = fold_ids(fold_manifest(frame, TARGET, k=5, seed=7))
    for label in frame[TARGET].unique():
        per_fold = np.bincount(ids[frame[TARGET].to_numpy() == label], minlength=5)
        assert per_fold.max() - per_fold.min() <= 1, (label, per_fold)


@pytest.mark.parametrize(
    ("strategy", "splitter"),
    [
        ("stratified", StratifiedKFold(4, shuffle=True, random_state=9)),
        ("kfold", KFold(4, shuffle=True, random_state=9)),
        ("group", GroupKFold(4)),
    ],
)
def test_folds_are_scikit_learns_test_folds(frame, strategy, splitter):
    ids = fold_ids(fold_manifest(frame, TARGET, k=4, seed=9, strategy=strategy, group_column="customer"))
    groups = frame["customer"].astype(str) if strategy == "group" else None
    for fold, (_, test) in enumerate(splitter.split(frame, frame[TARGET], groups)):
        assert np.array_equal(np.flatnonzero(ids == fold), np.sort(test))


def test_group_folds_never_split_a_group(frame):
    ids = fold_ids(fold_manifest(frame, TARGET, k=5, seed=0, strategy="group", group_column="customer"))
    assert (pd.Series(ids).groupby(frame["customer"]).nunique() == 1).all()


def test_time_folds_are_contiguous_blocks_in_time_order(frame):
    ids = fold_ids(fold_manifest(frame, TARGET, k=4, seed=0, strategy="time", time_column="signup"))
    ordered = ids[np.argsort(frame["signup"].to_numpy(), kind="stable")]
    assert ordered[0] == -1, "the earliest block only ever trains"
    assert np.all(np.diff(ordered) >= 0), "each fold is later than the one before"
    assert sorted(set(ids)) == [-1, 0, 1, 2, 3]


def test_digest_is_stable_for_the_same_rows_and_columns(frame, tmp_path):
    digest = dataset_digest(frame)
    assert dataset_digest(frame.copy()) == digest
    assert dataset_digest(frame[list(reversed(frame.columns))]) == digest
    assert dataset_digest(frame.set_index("State")) != digest  # a column moved to the index
    frame.to_parquet(tmp_path / "rows.parquet", index=False)
    assert dataset_digest(pd.read_parquet(tmp_path / "rows.parquet")) == digest


def test_digest_changes_with_a_value_or_the_row_order(frame):
    digest = dataset_digest(frame)
    changed = frame.copy()
    changed.loc[17, "Day Mins"] += 0.1
    assert dataset_digest(changed) != digest
    assert dataset_digest(frame.iloc[::-1].reset_index(drop=True)) != digest
    assert dataset_digest(frame.rename(columns={"State": "state"})) != digest


def test_holdout_split_is_deterministic_disjoint_and_stratified(frame):
    train, holdout = holdout_split(frame, TARGET, fraction=0.25, seed=5, stratify=True)
    again_train, again_holdout = holdout_split(frame, TARGET, fraction=0.25, seed=5, stratify=True)
    pd.testing.assert_frame_equal(train, again_train)
    pd.testing.assert_frame_equal(holdout, again_holdout)
    assert (len(train), len(holdout)) == (180, 60)
    rows = pd.concat([train, holdout]).sort_values(["signup"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(rows, frame.sort_values(["signup"]).reset_index(drop=True))
    overall = (frame[TARGET] == "True.").mean()
    assert abs((holdout[TARGET] == "True.").mean() - overall) < 1 / len(holdout) + 1e-9


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"k": 1}, "at least 2 folds"),
        ({"k": 241}, "the frame has 240"),
        ({"k": 5, "strategy": "random"}, "not one of"),
        ({"k": 5, "target": "churned"}, r"\['churned'\] not in the frame"),
        ({"k": 5, "strategy": "group"}, "needs group_column"),
        ({"k": 5, "strategy": "group", "group_column": "account"}, r"\['account'\] not in the frame"),
        ({"k": 5, "strategy": "time"}, "needs time_column"),
    ],
)
def test_bad_requests_are_named(frame, kwargs, message):
    kwargs = {"target": TARGET, "seed": 0, **kwargs}
    with pytest.raises(ValueError, match=message):
        fold_manifest(frame, **kwargs)


def test_a_class_smaller_than_k_is_named(frame):
    frame.loc[:2, TARGET] = "Maybe."
    with pytest.raises(ValueError, match=r"'Maybe\.' \(3\)"):
        fold_manifest(frame, TARGET, k=5, seed=0)


def test_too_few_groups_for_k_is_named(frame):
    with pytest.raises(ValueError, match="distinct values of 'State'; found 4"):
        fold_manifest(frame, TARGET, k=5, seed=0, strategy="group", group_column="State")


def test_manifest_sha256_names_the_exact_folds(frame):
    manifest = fold_manifest(frame, TARGET, k=5, seed=42)
    assert manifest_sha256(manifest) == manifest_sha256(json.loads(json.dumps(manifest)))
    assert manifest_sha256(manifest) != manifest_sha256(fold_manifest(frame, TARGET, k=5, seed=43))


def test_a_frame_of_thousands_of_columns_gets_a_bounded_error():
    frame = pd.DataFrame(np.zeros((4, 5_000)), columns=[f"c{i}" for i in range(5_000)])

    with pytest.raises(ValueError, match=r"\['churned'\] not in the frame") as error:
        fold_manifest(frame, "churned", 2, 0)
    assert len(str(error.value)) < 500 and "4,995 more (5,000 in all)" in str(error.value)
