"""The steps of a training run that are not an operator (``dags/train_model.py`` wires them).

* :func:`tuning_settings`: trial budget, quality-gate baseline and search space, from the run's
  Params over the pipeline config;
* :func:`passes_quality_gate`: the tuned model's mean CV objective against the baseline;
* :func:`evaluate_refit`: the refit model on the holdout, its report and golden rows;
* :func:`registration_lineage`: what a model version records about how it was made.
"""

from __future__ import annotations

from typing import Any


def tuning_settings(config, params: dict[str, Any]) -> dict[str, Any]:
    """``{"n_trials", "baseline", "search_space"}``: the run's Params where given, else the
    pipeline config's ``training`` section."""
    training = config.section("training")
    return {
        "n_trials": params.get("n_trials") or training["n_trials"],
        "baseline": params["baseline"] if params.get("baseline") is not None else training["baseline"],
        "search_space": training["search_space"],
    }


def passes_quality_gate(tuning: dict[str, Any], settings: dict[str, Any]) -> tuple[bool, str]:
    """``(passed, what was compared)``: the mean CV objective of the best trial must reach the baseline."""
    mean, baseline = tuning["best"]["mean"], settings["baseline"]
    return mean >= baseline, f"mean CV {tuning['objective']} {mean:.4f} vs baseline {baseline}"


def evaluate_refit(config, model: dict[str, Any], prepared: dict[str, Any], tuning: dict[str, Any]) -> dict[str, Any]:
    """Score the refit ``model`` on the run's holdout; write the model report and the golden rows
    the endpoint checks compare with.

    :param model: the :class:`~mlops.backends.base.TrainedModel` dict of the refit.
    :param prepared: the run's prepared data (``training_data``, ``holdout_uri``, ``run_uri``).
    :param tuning: the :class:`~mlops.backends.base.TuningResult` dict.
    :return: ``{"metrics", "report_uri", "golden_uri"}``; metrics are the holdout's plus the CV mean and std.
    """
    from mlops.core.storage import read_json, to_path
    from mlops.ml.evaluation import evaluate_holdout, model_report_html, write_report

    training_data = prepared["training_data"]
    metrics, curves = evaluate_holdout(model, prepared["holdout_uri"], training_data["target"],
                                       training_data["positive_label"],
                                       golden_rows=config.section("endpoint")["test"]["golden_rows"])
    history = read_json(tuning["history_uri"])["trials"]
    run_uri = prepared["run_uri"]
    report_uri = write_report(model_report_html(f"{config.name} model report", tuning, history, metrics, curves),
                              f"{run_uri}/model_report.html")
    golden_uri = f"{run_uri}/golden.parquet"
    with to_path(golden_uri).open("wb") as handle:
        curves["golden"].to_parquet(handle, index=False)
    cv = {f"cv_{tuning['objective']}_mean": tuning["best"]["mean"],
          f"cv_{tuning['objective']}_std": tuning["best"]["std"]}
    return {"metrics": {**metrics, **cv}, "report_uri": report_uri, "golden_uri": golden_uri}


def registration_lineage(prepared: dict[str, Any], tuning: dict[str, Any], evaluation: dict[str, Any],
                         trigger: dict[str, Any] | None = None) -> dict[str, Any]:
    """The metadata a model version is registered with: data, validation, hyperparameters, fold
    scores, report, golden rows, holdout, the Model Monitor baseline, code version, and the drift
    report that triggered the run, if one did (its identity is the dataset digest, the code
    version and the hyperparameters: :class:`~mlops.backends.base.RegistrationIdentity`)."""
    from mlops.core.code_version import code_version

    return {
        "dataset_digest": prepared["dataset_digest"],
        "validation_id": prepared["validation_id"],
        "hyperparameters": tuning["best"]["hyperparameters"],
        "fold_scores": tuning["best"]["fold_scores"],
        "report_uri": evaluation["report_uri"],
        "golden_uri": evaluation["golden_uri"],
        "holdout_uri": prepared["holdout_uri"],
        "baseline_statistics_uri": prepared.get("baseline_statistics_uri"),
        "baseline_constraints_uri": prepared.get("baseline_constraints_uri"),
        "code_version": code_version(),
        "drift_trigger": trigger if trigger and trigger.get("kind", "").endswith("drift") else None,
    }
