"""The steps of an AutoML batch-prediction run that are not an operator
(``dags/autopilot_batch_predict.py`` wires them).

* :func:`plan_autopilot_run`: the labelled training rows and the scoring files of a run, written
  where the AutoML job and the batch transform read them, and the names and settings both use;
* :func:`publish_batch_predictions`: the transform's output as Parquet, its evaluation when the
  scoring data carries labels, and (optionally) the rows upserted into Keyspaces.
"""

from __future__ import annotations

from typing import Any


def plan_autopilot_run(use_case: str, config, params: dict[str, Any], run_id: str, dag_id: str,
                       as_of) -> dict[str, Any]:
    """Write the run's training rows and transform input; return what the job and transform take.

    :param use_case: the pipeline's name (its data folders).
    :param config: the pipeline config (its ``autopilot`` section and schema).
    :param params: the run's Params (``training_partition_uri``, ``scoring_prefix``,
        ``automl_job_name``, ``time_budget_s``).
    :param as_of: the run's date: the newest labelled partition dated on or before it is used.
    :raises FileNotFoundError: no CSV file to score under ``scoring_prefix``.
    :raises ~mlops.backends.limits.LimitError: fewer labelled rows than Autopilot takes.
    """
    import fnmatch

    from mlops.backends.limits import check_automl_rows
    from mlops.core import partitions
    from mlops.core.naming import path_safe, resource_name, run_name
    from mlops.core.storage import data_path
    from mlops.ml.batch_predictions import prepare_transform_input

    autopilot = config.section("autopilot")
    run_uri = data_path("autopilot", use_case, path_safe(run_id))
    labelled = partitions.resolve(use_case, params["training_partition_uri"], as_of=as_of)
    train = partitions.read_partition(labelled["uri"])
    train = train[[*config.feature_columns, config.target]]
    check_automl_rows(int(train[config.target].notna().sum()), f"labelled partition {labelled['uri']}")
    run_uri.mkdir(parents=True, exist_ok=True)
    with (run_uri / "train.parquet").open("wb") as handle:
        train.to_parquet(handle, index=False)
    incoming = data_path(*params["scoring_prefix"].strip("/").split("/"))
    files = sorted(str(p) for p in incoming.iterdir() if fnmatch.fnmatch(p.name, "*.csv")) if incoming.exists() else []
    if not files:
        raise FileNotFoundError(f"no CSV files to score under {incoming}")
    batch = prepare_transform_input(files, config.schema["id_column"], config.feature_columns,
                                    config.target, str(run_uri / "transform"))
    keys = autopilot["response_keys"]
    return {
        **batch,
        "training_partition": labelled,
        "train_uri": str(run_uri / "train.parquet"),
        "run_uri": str(run_uri),
        # AutoML V2 job names are limited to 32 characters
        "job_name": params["automl_job_name"] or resource_name("automl", run_id, max_len=32),
        "model_name": run_name(dag_id, run_id, "model"),
        "transform_job": run_name(dag_id, run_id, "transform"),
        "response_keys": keys,
        "output_filter": "$[0," + ",".join(str(-i) for i in range(len(keys), 0, -1)) + "]",
        "target": config.target,
        "objective": autopilot["objective"],
        "time_budget_s": params["time_budget_s"] or autopilot["time_budget_s"],
        "local_time_budget_s": autopilot.get("local_time_budget_s"),
        "max_candidates": autopilot["max_candidates"],
    }


def publish_batch_predictions(config, plan: dict[str, Any], result: dict[str, Any], model: dict[str, Any],
                              run_id: str, out_uri: str, keyspaces_session=None, run_after=None) -> dict[str, Any]:
    """Write the predictions (``<out_uri>/predictions.parquet``), evaluate them when the plan has
    labels (``report.html`` in the run folder), upsert them into Keyspaces through
    ``keyspaces_session`` when one is given, and write ``<out_uri>/summary.json``.

    :param plan: what :func:`plan_autopilot_run` returned.
    :param result: the :class:`~mlops.backends.base.TransformResult` dict.
    :param model: what ``AutoMLCandidateModelOperator`` returned.
    :raises RuntimeError: the transform gave another number of predictions than input rows.
    :return: the summary (rows, model, candidate, report and evaluation, Keyspaces rows).
    """
    from mlops.core.storage import to_path, write_json
    from mlops.ml.batch_predictions import (
        evaluate_predictions,
        write_evaluation_report,
        write_predictions_parquet,
        write_predictions_to_keyspaces,
    )

    id_column = config.schema["id_column"]
    written = write_predictions_parquet(result["output_uri"], id_column, plan["response_keys"],
                                        f"{out_uri}/predictions.parquet")
    if written["rows"] != plan["rows"]:
        raise RuntimeError(f"{written['rows']} predictions for {plan['rows']} input rows")
    summary = {**written, "model_name": model["model_name"], "candidate": model["candidate"]["name"]}
    if plan["labels_uri"]:
        import pandas as pd

        with to_path(written["predictions_uri"]).open("rb") as handle:
            frame = pd.read_parquet(handle)
        with to_path(plan["labels_uri"]).open("rb") as handle:
            labels = pd.read_parquet(handle)
        evaluation = evaluate_predictions(
            frame, labels, id_column, config.target, config.schema["positive_label"],
            config.section("autopilot").get("min_precision", 0.5), with_curves=True,
            probability_of=model.get("probability_of"))
        summary["report_uri"] = write_evaluation_report(
            evaluation, f"{plan['run_uri']}/report.html", f"Batch predictions {run_id}", summary)
        evaluation.pop("curves")
        summary["evaluation"] = evaluation
    if keyspaces_session is not None:
        summary["keyspaces_rows"] = write_predictions_to_keyspaces(
            keyspaces_session, written["predictions_uri"], id_column, run_id, model["model_name"], run_after)
    write_json(f"{out_uri}/summary.json", summary)
    return summary
