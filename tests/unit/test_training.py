"""The training entry point (include/training/train.py) and the local Trainer and Tuner."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import PredefinedSplit, cross_val_score
from threadpoolctl import threadpool_limits

from include.serving import inference
from mlops.backends.base import TrainingData
from mlops.backends.local.training import (
    ENTRY_POINT,
    LocalTrainer,
    OptunaTuner,
    training_entry_point,
)
from mlops.backends.local.workers import WorkerDied
from mlops.core import storage
from mlops.ml.folds import fold_manifest
from testkit.airflow_task import result_of, run_like_an_airflow_task, start_like_an_airflow_task
from testkit.workers import ScorerThatDies

TARGET = "Churn?"
CATEGORICAL = ["State", "Int'l Plan", "Area Code"]
NUMERIC = ["Day Mins", "Eve Mins", "CustServ Calls"]
FEATURES = CATEGORICAL + NUMERIC
SMALL_HPS = {"max_iter": 20, "learning_rate": 0.1, "max_leaf_nodes": 8}


def churn_like(n: int = 300, seed: int = 0) -> pd.DataFrame:
    """A frame shaped like the churn schema whose label really depends on the features."""
    rng = np.random.default_rng(seed)
    intl = rng.choice(["yes", "no"], n, p=[0.2, 0.8])
    day = rng.normal(180, 50, n).round(1)
    calls = rng.poisson(1.5, n)
    logit = -1.8 + 0.03 * (day - 180) + 0.9 * np.clip(calls - 1.5, 0, None) + 1.8 * (intl == "yes")
    churned = rng.random(n) < 1 / (1 + np.exp(-logit))
    return pd.DataFrame(
        {
            "State": rng.choice(["KS", "OH", "NJ", "TX", "CA", "NY"], n),
            "Int'l Plan": intl,
            "Area Code": rng.choice([415, 408, 510], n),
            "Day Mins": day,
            "Eve Mins": rng.normal(200, 50, n).round(1),
            "CustServ Calls": calls,
            TARGET: np.where(churned, "True.", "False."),
        }
    )


@pytest.fixture(autouse=True)
def one_thread_per_process():
    """OpenMP threads crawl when the CPUs are shared with other processes (CI, parallel
    tests); one thread per process keeps these tests fast and their timings stable."""
    with threadpool_limits(limits=1):
        yield


@pytest.fixture(scope="module")
def train():
    return training_entry_point()


@pytest.fixture(scope="module")
def rows():
    return churn_like()


@pytest.fixture(scope="module")
def manifest(rows):
    return fold_manifest(rows, TARGET, k=3, seed=11)


def config(estimator: str = "gradient_boosting", **overrides):
    return {
        "estimator": estimator,
        "target": TARGET,
        "feature_columns": FEATURES,
        "categorical": CATEGORICAL,
        "problem_type": "binary",
        "objective": "roc_auc",
        "positive_label": "True.",
        "seed": 7,
        **overrides,
    }


@pytest.fixture
def training_data(tmp_path, rows, manifest, mlops_home):
    rows.to_parquet(tmp_path / "train.parquet", index=False)
    storage.write_json((tmp_path / "folds.json").as_uri(), manifest)
    return TrainingData(
        train_uri=(tmp_path / "train.parquet").as_uri(),
        folds_uri=(tmp_path / "folds.json").as_uri(),
        target=TARGET,
        feature_columns=FEATURES,
        categorical=CATEGORICAL,
        problem_type="binary",
        estimator="gradient_boosting",
        objective="roc_auc",
        positive_label="True.",
        seed=42,
    )


# ---------------------------------------------------------------- train.py as a module
@pytest.mark.parametrize(
    ("estimator", "hyperparameters"),
    [
        ("gradient_boosting", SMALL_HPS),
        ("random_forest", {"n_estimators": 15, "max_depth": 4}),
        ("logistic_regression", {"C": 0.5}),
    ],
)
def test_cross_validate_equals_sklearn_cross_val_score_on_the_same_folds(
    train, rows, manifest, estimator, hyperparameters
):
    ours = train.cross_validate(rows, manifest, config(estimator), hyperparameters)
    pipeline = train.build_pipeline(estimator, hyperparameters, FEATURES, CATEGORICAL, "binary", 7)
    y = (rows[TARGET] == "True.").astype(int).to_numpy()
    theirs = cross_val_score(
        pipeline, rows[FEATURES], y, cv=PredefinedSplit(manifest["folds"]), scoring="roc_auc"
    )
    assert len(ours) == 3
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-12)
    assert np.mean(ours) > 0.7, "the synthetic label has a real signal"


def test_a_fold_scorer_bins_each_fold_once_and_scores_exactly_as_a_fresh_fit(train, rows, manifest):
    """Trials on one fold share the model's binning; the scores are those of fits that bin anew."""
    shared = train.FoldScorer(rows, manifest, config())
    fresh = train.FoldScorer(rows, manifest, config(), share_binning=False)
    trials = [SMALL_HPS, {**SMALL_HPS, "learning_rate": 0.3, "max_leaf_nodes": 4},
              {**SMALL_HPS, "early_stopping": True, "validation_fraction": 0.2},  # validation rows binned too
              {**SMALL_HPS, "max_bins": 16}]  # other binning parameters: binned again, kept apart

    for hyperparameters in trials * 2:
        for position in range(len(shared.splits)):
            assert shared.score(position, hyperparameters) == fresh.score(position, hyperparameters)

    # per fold: the training rows binned with 255 and with 16 bins, the validation rows once, and
    # the early-stopping run's own (smaller) training rows; nothing binned again by the repeats
    assert [len(kept) for kept in shared._binning.values()] == [4, 4, 4]
    assert fresh._binning == {}
    kept = next(iter(shared._binning[0].values()))[1]
    assert not kept.flags.writeable, "a binned matrix shared by fits must not be changed by one"


def test_on_fold_sees_every_fold_and_can_stop_early(train, rows, manifest):
    seen = []
    train.cross_validate(rows, manifest, config(), SMALL_HPS, on_fold=lambda f, s: seen.append(f))
    assert seen == [0, 1, 2]

    def stop(fold, score):
        raise RuntimeError(f"stop after fold {fold}")

    with pytest.raises(RuntimeError, match="stop after fold 0"):
        train.cross_validate(rows, manifest, config(), SMALL_HPS, on_fold=stop)


def test_time_manifest_trains_each_fold_only_on_its_past(train, rows):
    timed = rows.assign(signup=np.random.default_rng(1).permutation(len(rows)))
    manifest = fold_manifest(timed, TARGET, k=3, seed=0, strategy="time", time_column="signup")
    splits = train.fold_splits(manifest, len(timed))
    assert [fold for fold, _, _ in splits] == [0, 1, 2]
    for _, train_rows, test_rows in splits:
        assert timed["signup"].iloc[train_rows].max() < timed["signup"].iloc[test_rows].min()


def test_manifest_for_other_rows_is_refused(train, rows, manifest):
    with pytest.raises(ValueError, match="fold manifest is for 300 rows; the training data has 299"):
        train.cross_validate(rows.iloc[1:], manifest, config(), SMALL_HPS)


def test_positive_label_is_class_one_even_when_it_sorts_first(train, rows):
    relabelled = rows.assign(**{TARGET: rows[TARGET].map({"True.": "churn", "False.": "stay"})})
    model, meta = train.fit_full(relabelled, config(positive_label="churn"), SMALL_HPS)
    assert meta["classes"] == ["stay", "churn"]
    assert list(model.classes_) == ["stay", "churn"]
    proba = model.predict_proba(relabelled[FEATURES])[:, 1]
    assert proba[relabelled[TARGET] == "churn"].mean() > proba[relabelled[TARGET] == "stay"].mean()
    assert set(model.predict(relabelled[FEATURES])) <= {"stay", "churn"}


def test_hyperparameters_round_trip_through_the_command_line(train):
    values = {
        "positive_label": "True.",
        "target": "Churn?",
        "feature_columns": FEATURES,
        "learning_rate": 0.05,
        "max_iter": 120,
        "early_stopping": False,
        "label_looking_like_a_number": "1",
    }
    encoded = train.encode_hyperparameters(values)
    args = [token for name, text in encoded.items() for token in (f"--{name}", text)]
    assert all(isinstance(token, str) for token in args)
    assert train.parse_hyperparameters(args) == values

    # SageMaker's training toolkit JSON-decodes the values, then passes str() of each.
    toolkit = [token for name, text in encoded.items() for token in (f"--{name}", str(json.loads(text)))]
    assert train.parse_hyperparameters(toolkit) == {**values, "label_looking_like_a_number": 1}


def test_unknown_hyperparameter_is_named(train, rows, manifest):
    with pytest.raises(ValueError, match="has no hyperparameter.*learning_rat\\b"):
        train.cross_validate(rows, manifest, config(), {"learning_rat": 0.1})


# ---------------------------------------------------------------- train.py in the container contract
def test_entry_point_runs_as_a_sagemaker_script_and_its_model_serves(train, rows, manifest, tmp_path):
    channel, folds, model_dir, output = (tmp_path / d for d in ("train", "folds", "model", "output"))
    channel.mkdir()
    folds.mkdir()
    rows.iloc[:150].to_parquet(channel / "part-0.parquet", index=False)
    rows.iloc[150:].to_csv(channel / "part-1.csv", index=False)
    (folds / "folds.json").write_text(json.dumps(manifest))
    hyperparameters = train.encode_hyperparameters({**config(), **SMALL_HPS})
    argv = [token for name, text in hyperparameters.items() for token in (f"--{name}", text)]
    env = {
        **os.environ,
        "SM_CHANNEL_TRAIN": str(channel),
        "SM_CHANNEL_FOLDS": str(folds),
        "SM_MODEL_DIR": str(model_dir),
        "SM_OUTPUT_DATA_DIR": str(output),
        "OMP_NUM_THREADS": "1",
    }
    done = subprocess.run(
        [sys.executable, str(ENTRY_POINT), *argv], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr

    metrics = json.loads((output / "metrics.json").read_text())
    # SageMaker keeps every match of a metric's regex and reports the last as its final value.
    emitted = {
        d["Name"]: [float(value) for value in re.findall(d["Regex"], done.stdout)]
        for d in train.metric_definitions("roc_auc", k=3)
    }
    captured = {name: values[-1] for name, values in emitted.items()}
    assert captured["cv_mean:roc_auc"] == pytest.approx(metrics["cv_mean"], abs=1e-6)
    running = [np.mean(metrics["fold_scores"][: i + 1]) for i in range(3)]
    assert emitted["cv_mean:roc_auc"] == pytest.approx(running, abs=1e-6), "one running mean per fold"
    fold_lines = [captured[f"fold_{i}:roc_auc"] for i in range(3)]
    assert fold_lines == pytest.approx(metrics["fold_scores"], abs=1e-6)
    assert metrics["fold_scores"] == pytest.approx(
        train.cross_validate(rows, manifest, config(), SMALL_HPS), abs=1e-12
    )

    model = inference.model_fn(str(model_dir))
    assert model.classes == ["False.", "True."]
    assert model.feature_columns == FEATURES
    csv_body = rows[FEATURES].head(5).to_csv(header=False, index=False)
    prediction = inference.predict_fn(inference.input_fn(csv_body, "text/csv", model), model)
    reference = model.estimator.predict_proba(rows[FEATURES].head(5))[:, model.classes.index("True.")]
    assert prediction["probability"] == pytest.approx(reference, abs=1e-12)  # the CSV round trip changes nothing
    assert list(prediction["predicted_label"]) == ["True." if p > 0.5 else "False." for p in reference]


def container_env(monkeypatch, tmp_path, rows, manifest):
    channel, folds = tmp_path / "train", tmp_path / "folds"
    channel.mkdir()
    folds.mkdir()
    rows.to_parquet(channel / "rows.parquet", index=False)
    (folds / "folds.json").write_text(json.dumps(manifest))
    for name, folder in (("SM_CHANNEL_TRAIN", channel), ("SM_CHANNEL_FOLDS", folds),
                         ("SM_MODEL_DIR", tmp_path / "model"), ("SM_OUTPUT_DATA_DIR", tmp_path / "output")):
        monkeypatch.setenv(name, str(folder))


def argv(train, **extra):
    encoded = train.encode_hyperparameters({**config(), **SMALL_HPS, **extra})
    return [token for name, text in encoded.items() for token in (f"--{name}", text)]


def test_an_hpo_trial_scores_the_folds_and_skips_the_final_fit(train, rows, manifest, tmp_path, monkeypatch):
    container_env(monkeypatch, tmp_path, rows, manifest)
    monkeypatch.setenv("MLOPS_CHECKPOINT_DIR", str(tmp_path / "no-such-folder"))
    metrics = train.main(argv(train, final_fit=False))
    assert metrics["fold_scores"] == pytest.approx(train.cross_validate(rows, manifest, config(), SMALL_HPS))
    assert not (tmp_path / "model").exists(), "no model: the refit is a job of its own"
    assert json.loads((tmp_path / "output" / "metrics.json").read_text())["cv_mean"] == metrics["cv_mean"]


def test_a_restarted_spot_job_resumes_from_its_fold_checkpoint(train, rows, manifest, tmp_path, monkeypatch,
                                                              capsys):
    container_env(monkeypatch, tmp_path, rows, manifest)
    checkpoints = tmp_path / "checkpoints"
    checkpoints.mkdir()
    monkeypatch.setenv("MLOPS_CHECKPOINT_DIR", str(checkpoints))
    first = train.main(argv(train, final_fit=False))
    [checkpoint] = checkpoints.glob("cv-*.json")
    assert train.read_fold_checkpoint(checkpoint) == dict(enumerate(first["fold_scores"]))

    train.write_fold_checkpoint(checkpoint, {0: 0.5})  # as if interrupted after fold 0
    capsys.readouterr()
    resumed = train.main(argv(train, final_fit=False))
    assert "folds [0] already scored" in capsys.readouterr().out
    assert resumed["fold_scores"] == pytest.approx([0.5, *first["fold_scores"][1:]], abs=1e-12)

    other = train.main(argv(train, final_fit=False, max_iter=21))
    assert other["fold_scores"][0] != 0.5, "another request never reads this checkpoint"


# ---------------------------------------------------------------- local Trainer and Tuner
SEARCH_SPACE = {
    "learning_rate": {"type": "float", "low": 0.05, "high": 0.3, "log": True},
    "max_iter": {"type": "int", "low": 5, "high": 30},
    "max_leaf_nodes": {"type": "int", "low": 4, "high": 16, "log": True},
}


def test_tuner_is_deterministic_for_a_seed_with_folds_in_parallel(training_data, tmp_path):
    output = (tmp_path / "tuning").as_uri()
    sequential = OptunaTuner(n_jobs=1).tune("tune-a", training_data, SEARCH_SPACE, 5, output)
    parallel = OptunaTuner(n_jobs=2).tune("tune-b", training_data, SEARCH_SPACE, 5, output)

    assert parallel.best.hyperparameters == sequential.best.hyperparameters
    assert parallel.best.fold_scores == sequential.best.fold_scores
    assert len(parallel.best.fold_scores) == 3
    assert parallel.best.mean == pytest.approx(np.mean(parallel.best.fold_scores), abs=1e-15)
    assert parallel.best.std == pytest.approx(np.std(parallel.best.fold_scores), abs=1e-15)

    history = storage.read_json(parallel.history_uri)
    assert parallel.history_uri == f"{output}/tune-b/tuning_history.json"
    assert len(history["trials"]) == parallel.n_trials == 5
    strip = [{k: t[k] for k in ("number", "params", "fold_scores", "state")} for t in history["trials"]]
    first = storage.read_json(sequential.history_uri)["trials"]
    assert strip == [{k: t[k] for k in ("number", "params", "fold_scores", "state")} for t in first]
    assert max(t["mean"] for t in history["trials"] if t["state"] == "COMPLETE") == parallel.best.mean


def test_tuner_best_trial_scores_equal_cross_val_score_on_the_same_folds(training_data, tmp_path, train, rows,
                                                                        manifest):
    result = OptunaTuner(n_jobs=2).tune("tune-parity", training_data, SEARCH_SPACE, 4, tmp_path.as_uri())
    pipeline = train.build_pipeline("gradient_boosting", result.best.hyperparameters, FEATURES, CATEGORICAL,
                                    "binary", training_data.seed)
    y = (rows[TARGET] == "True.").astype(int).to_numpy()
    theirs = cross_val_score(pipeline, rows[FEATURES], y, cv=PredefinedSplit(manifest["folds"]), scoring="roc_auc")
    np.testing.assert_allclose(result.best.fold_scores, theirs, rtol=0, atol=1e-12)


def test_another_seed_asks_other_trials(training_data, tmp_path):
    from dataclasses import replace

    first = OptunaTuner(n_jobs=1, window=2).tune("tune-s42", training_data, SEARCH_SPACE, 2, tmp_path.as_uri())
    other = OptunaTuner(n_jobs=1, window=2).tune("tune-s43", replace(training_data, seed=43), SEARCH_SPACE, 2,
                                                     tmp_path.as_uri())
    params = [[t["params"] for t in storage.read_json(r.history_uri)["trials"]] for r in (first, other)]
    assert params[0] != params[1]


def test_tuning_in_an_airflow_task_process_runs_its_fold_workers_cleanly(training_data, tmp_path):
    ran = run_like_an_airflow_task("tune", data=training_data.to_dict(), search_space=SEARCH_SPACE, n_trials=4,
                                   output_uri=tmp_path.as_uri(), n_jobs=2)

    outcome = result_of(ran)
    assert outcome["result"]["n_trials"] == 4
    assert len(outcome["result"]["best"]["fold_scores"]) == 3
    assert outcome["airflow_imported_by_a_child"] is False


def test_a_fold_worker_that_dies_fails_the_tuning_job_naming_its_exit_code_and_last_stderr_lines(
        training_data, tmp_path, train, monkeypatch):
    real = train.FoldScorer
    monkeypatch.setattr(train, "FoldScorer", lambda *args: ScorerThatDies(real(*args), position=1))

    with pytest.raises(WorkerDied) as died:
        OptunaTuner(n_jobs=2).tune("tune-dies", training_data, SEARCH_SPACE, 4, tmp_path.as_uri())

    message = str(died.value)
    assert message.startswith("tuning job tune-dies: worker process ")
    assert "exited with code 137; the last lines it wrote to stderr:\nScorerThatDies: fold 1 exits with 137" \
        in message


def _alive(pid: int) -> bool:
    """Whether process ``pid`` still runs (a zombie waiting to be reaped does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def test_killing_the_tuning_task_stops_its_fold_worker_processes(training_data, tmp_path):
    pid_dir = tmp_path / "pids"
    pid_dir.mkdir()
    task = start_like_an_airflow_task("tune_until_killed", data=training_data.to_dict(), search_space=SEARCH_SPACE,
                                      n_trials=4, output_uri=tmp_path.as_uri(), pid_dir=str(pid_dir))
    try:
        deadline = time.monotonic() + 300  # a bound on the wait for the workers, not a measurement
        while len(list(pid_dir.iterdir())) < 2 and task.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        workers = [int(path.name) for path in pid_dir.iterdir()]
        assert len(workers) == 2 and all(_alive(pid) for pid in workers), task.stderr.read() if task.poll() else ""

        os.kill(task.pid, signal.SIGTERM)  # what Airflow's supervisor sends a task it kills
        _, stderr = task.communicate(timeout=300)
    finally:
        if task.poll() is None:
            task.kill()
            task.wait()

    assert task.returncode != 0
    assert "WorkerPoolStopped: tuning job train-model-tune-manual-killed-" in stderr
    assert "stopped, its worker processes ended: the task was killed" in stderr
    assert not any(_alive(pid) for pid in workers)


def test_a_fold_pool_starts_no_guess_after_the_rounds_last_score_is_in(monkeypatch):
    """Once the score asked for is in, the pool returns it without handing a free worker the next
    wanted fold: after a round's last score the race prunes first, and a guess on a trial it
    prunes would hold a worker for a whole fit."""
    import time
    from concurrent.futures import ThreadPoolExecutor

    from mlops.backends.local import fold_race

    class InstantScorer:
        splits = [0, 1, 2]

        def score(self, position, hyperparameters):
            return 0.5 + position / 10

    monkeypatch.setattr(fold_race, "_WORKER_SCORER", InstantScorer())
    params = {0: {}, 1: {}}
    wanted = [(0, 0), (1, 0), (0, 1)]  # the round's two folds, then a guess at trial 0's next one
    with ThreadPoolExecutor(2) as executor:
        pool = fold_race._FoldPool(InstantScorer(), 2, executor)
        assert pool.result((0, 0), params, wanted) == 0.5
        while not pool.futures[(1, 0)].done():
            time.sleep(0.001)
        assert pool.result((1, 0), params, wanted) == 0.5  # the round's last score

        assert pool.started == 2 and (0, 1) not in pool.futures

        # the next round asks for (0, 1): it starts then
        assert pool.result((0, 1), params, [(0, 1)]) == 0.6
        assert pool.started == 3


def test_fold_race_pruner_keeps_only_the_leading_fraction_at_each_fold():
    import optuna

    from mlops.backends.local.fold_race import fold_race_pruner

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", pruner=fold_race_pruner(keep=0.25, min_peers=3))
    first = study.ask()
    first.report(0.89, step=0)
    assert not first.should_prune(), "no peers yet: nobody is pruned"
    for value in (0.80, 0.85, 0.95):
        peer = study.ask()
        peer.report(value, step=0)
        study.tell(peer, state=optuna.trial.TrialState.PRUNED)
    assert first.should_prune(), "0.89 is not in the best quarter of 0.80, 0.85, 0.95"
    leader = study.ask()
    leader.report(0.96, step=0)
    assert not leader.should_prune()
    leader.report(0.50, step=1)
    assert not leader.should_prune(), "at fold 1 it has fewer than 3 peers"
    failed = study.ask()
    failed.report(0.99, step=0)
    study.tell(failed, state=optuna.trial.TrialState.FAIL)
    late = study.ask()
    late.report(0.955, step=0)
    assert not late.should_prune(), "failed trials do not raise the bar"


def test_fold_race_pruner_uses_the_looser_bar_after_the_first_fold():
    import optuna

    from mlops.backends.local.fold_race import fold_race_pruner
    from mlops.backends.local.training import OptunaTuner

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize",
                                pruner=fold_race_pruner(keep=0.25, keep_later=0.5, min_peers=3))
    for value in (0.90, 0.91, 0.92, 0.93):  # survivors of fold 0, now at fold 1
        peer = study.ask()
        peer.report(0.95, step=0)
        peer.report(value, step=1)
        study.tell(peer, state=optuna.trial.TrialState.PRUNED)
    above_median = study.ask()
    above_median.report(0.95, step=0)
    above_median.report(0.916, step=1)
    assert not above_median.should_prune(), "0.916 is above the median 0.915 of the others at fold 1"
    straggler = study.ask()
    straggler.report(0.95, step=0)
    straggler.report(0.912, step=1)
    assert straggler.should_prune(), "0.912 is below the median of the others at fold 1"
    with pytest.raises(ValueError, match="keep_later"):
        OptunaTuner(keep_later=0)


def test_after_the_first_fold_two_survivors_race_each_other_and_the_one_behind_stops():
    import optuna

    from mlops.backends.local.fold_race import fold_race_pruner

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize",
                                pruner=fold_race_pruner(keep=0.25, min_peers=3, min_peers_later=1))
    ahead, behind = study.ask(), study.ask()
    for trial, value in ((ahead, 0.911), (behind, 0.910)):
        trial.report(0.95, step=0)
        trial.report(value, step=1)
    assert behind.should_prune(), "0.910 is behind the only other trial at fold 1 (0.911)"
    assert not ahead.should_prune()
    lone = study.ask()
    lone.report(0.95, step=0)
    assert not lone.should_prune(), "the first fold still needs 3 peers"
    with pytest.raises(ValueError, match="min_peers_later"):
        OptunaTuner(min_peers_later=0)


def test_tuner_records_pruned_trials_with_the_folds_they_scored(training_data, tmp_path):
    result = OptunaTuner(n_jobs=1).tune(
        "tune-pruned", training_data, SEARCH_SPACE, 6, tmp_path.as_uri()
    )
    trials = storage.read_json(result.history_uri)["trials"]
    assert {t["state"] for t in trials} == {"COMPLETE", "PRUNED"}  # seed 42 prunes some
    for trial in trials:
        folds = len(trial["fold_scores"])
        assert folds == 3 if trial["state"] == "COMPLETE" else 1 <= folds < 3
        assert trial["mean"] == pytest.approx(np.mean(trial["fold_scores"]), abs=1e-15)


def test_completed_tuning_job_is_reused(training_data, tmp_path, monkeypatch):
    output = (tmp_path / "tuning").as_uri()
    first = OptunaTuner(n_jobs=1).tune("tune-once", training_data, SEARCH_SPACE, 2, output)
    monkeypatch.setattr("mlops.backends.local.training.training_entry_point", _must_not_run)
    assert OptunaTuner(n_jobs=1).tune("tune-once", training_data, SEARCH_SPACE, 2, output) == first


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ({"max_iter": {"type": "integer", "low": 1, "high": 9}}, "'max_iter': unknown type 'integer'"),
        ({"eta": {"type": "float", "low": 0, "high": 1, "log": True}}, "'eta': a log scale needs low > 0"),
        ({"max_depth": {"type": "categorical", "choices": []}}, "'max_depth': categorical needs"),
        ({"max_iter": {"type": "int", "low": 10, "high": 2}}, "'max_iter': low 10 is above high 2"),
    ],
)
def test_bad_search_space_is_named(training_data, tmp_path, space, message):
    with pytest.raises(ValueError, match=message):
        OptunaTuner().tune("tune-bad", training_data, space, 2, tmp_path.as_uri())


def test_trainer_writes_a_servable_artifact_where_sagemaker_would(train, rows, training_data, tmp_path):
    trained = LocalTrainer().fit("fit-job", training_data, SMALL_HPS, tmp_path.as_uri())
    assert trained.model_uri == f"{tmp_path.as_uri()}/fit-job/output/model.tar.gz"
    assert trained.sha256 == storage.sha256_of(trained.model_uri)
    model_dir = storage.unpack_model(trained.model_uri, tmp_path / "serve", trained.sha256)
    model = inference.model_fn(str(model_dir))
    frame = pd.DataFrame(churn_like(5, seed=3)[FEATURES])
    served = inference.predict_fn(frame, model)

    reference, _ = train.fit_full(rows, config(seed=training_data.seed), SMALL_HPS)  # the same, in process
    expected = reference.predict_proba(frame)[:, 1]
    assert served["probability"] == pytest.approx(expected, abs=1e-12)
    assert list(served["predicted_label"]) == list(reference.predict(frame))


def test_trainer_reuses_a_completed_job_instead_of_retraining(training_data, tmp_path, monkeypatch):
    first = LocalTrainer().fit("fit-job", training_data, SMALL_HPS, tmp_path.as_uri())
    monkeypatch.setattr("mlops.backends.local.training.training_entry_point", _must_not_run)
    assert LocalTrainer().fit("fit-job", training_data, SMALL_HPS, tmp_path.as_uri()) == first
    with pytest.raises(ValueError, match="already completed with other hyperparameters"):
        LocalTrainer().fit("fit-job", training_data, {**SMALL_HPS, "max_iter": 21}, tmp_path.as_uri())


def _must_not_run():
    raise AssertionError("a completed job was run again")



# ---------------------------------------------------------------- gate, holdout and report
def test_quality_gate_passes_at_the_baseline_and_says_why_it_stops_below():
    from mlops.ml.evaluation import quality_gate

    assert quality_gate(0.80, 0.80, "roc_auc")["passed"] is True
    below = quality_gate(0.7912, 0.80, "roc_auc")
    assert below["passed"] is False
    assert below["reason"] == "mean CV roc_auc 0.7912 is below the baseline 0.8; no model refit or registered"


def test_holdout_evaluation_and_report_of_a_refit_model(training_data, tmp_path):
    from mlops.ml.evaluation import evaluate_holdout, model_report_html

    model = LocalTrainer().fit("fit-report", training_data, SMALL_HPS, tmp_path.as_uri()).to_dict()
    holdout = churn_like(200, seed=5)
    holdout.to_parquet(tmp_path / "holdout.parquet", index=False)
    metrics, curves = evaluate_holdout(model, (tmp_path / "holdout.parquet").as_uri(), TARGET, "True.",
                                       golden_rows=7)
    assert set(metrics) == {"holdout_roc_auc", "holdout_pr_auc", "holdout_accuracy", "holdout_f1", "holdout_rows"}
    assert metrics["holdout_rows"] == 200 and 0.6 < metrics["holdout_roc_auc"] <= 1
    assert curves["confusion"].sum() == 200 and len(curves["golden"]) == 7

    tuning = {"job_name": "tune-x", "objective": "roc_auc", "n_trials": 3,
              "best": {"hyperparameters": SMALL_HPS, "fold_scores": [0.81, 0.79, 0.83], "mean": 0.81, "std": 0.0163}}
    history = [
        {"number": 0, "state": "COMPLETE", "mean": 0.80, "fold_scores": [0.8, 0.8, 0.8], "params": {"max_iter": 9}},
        {"number": 1, "state": "PRUNED", "mean": 0.70, "fold_scores": [0.7], "params": {"max_iter": 5}},
        {"number": 2, "state": "COMPLETE", "mean": 0.81, "fold_scores": [0.81, 0.79, 0.83], "params": SMALL_HPS},
    ]
    report = model_report_html("churn model report", tuning, history, metrics, curves,
                               folds={"k": 3, "seed": 11, "strategy": "stratified"}, model_uri=model["model_uri"])
    assert "mean 0.8100 ± 0.0163 over 3 folds" in report
    assert "<td>1</td><td>0.7900</td>" in report, "per-fold table"
    assert "2 complete,\n1 pruned, 0 failed" in report
    assert f"{metrics['holdout_roc_auc']:.4f}" in report
    assert model["model_uri"] in report and "k 3, seed 11, strategy stratified" in report
    assert [alt for alt in re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,', report)] == [
        "CV per fold", "Tuning history", "Holdout curves"]
