"""Autopilot (AutoML V2) model -> batch transform -> predictions joined to their ids."""

from __future__ import annotations

from airflow.sdk import Param, dag, task

from mlops.core.assets import predictions
from mlops.dag_defaults import DEFAULT_ARGS, START_DATE, heavy_queue
from mlops.operators.sagemaker import (
    AutoMLCandidateModelOperator,
    AutoMLJobOperator,
    BatchTransformOperator,
)

USE_CASE = "churn"


@dag(
    dag_id="autopilot_batch_predict",
    schedule="@daily",
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["batch", "autopilot", "sagemaker"],
    params={
        "training_partition_uri": Param(None, type=["null", "string"],
                                        description="Labelled churn partition the AutoML job trains on. Empty: "
                                                    "the newest dated on or before the run's date."),
        "automl_job_name": Param(None, type=["null", "string"],
                                 description="Attach to this existing AutoML job instead of starting one "
                                             "(on AWS its name starts with MLOPS_NAME_PREFIX, added if "
                                             "missing). Empty: a job named for this run (a retry re-attaches)."),
        "candidate_name": Param(None, type=["null", "string"],
                                description="Candidate to deploy. Empty: the best by the job's objective."),
        "time_budget_s": Param(None, type=["null", "integer"], minimum=3600, maximum=2592000,
                               description="The AutoML job's budget in seconds (MaxAutoMLJobRuntimeInSeconds; "
                                           "at least an hour, or Autopilot trains no candidate). Empty: "
                                           "autopilot.time_budget_s from the pipeline config."),
        "scoring_prefix": Param("batch/churn/incoming", type="string",
                                description="Prefix (under the data root) of the CSV files to predict."),
        "write_to_keyspaces": Param(False, type="boolean",
                                    description="Also upsert the predictions into the Keyspaces table "
                                                "mlops.predictions (connection keyspaces_default)."),
    },
    render_template_as_native_obj=True,
    doc_md="""
### autopilot_batch_predict
Trains candidates with Autopilot (AutoML V2) on the newest labelled churn partition dated on or
before the run's date (or the one `training_partition_uri` names) — or attaches
to a named job — picks the best (or a named) candidate, creates a model answering with the
inference response keys from the pipeline config, and runs a batch transform over the scoring
files (SplitType Line, MultiRecord, the record id joined back to each prediction). On AWS the
AutoML job and the transform defer to triggers. Predictions are written as Parquet (and, with
`write_to_keyspaces`, upserted into Keyspaces); when the scoring data carries labels, ROC AUC,
PR AUC, the threshold with the best recall at the configured minimum precision and the
confusion matrix at it go into the run's report (`report.html`, with plots). Locally, FLAML and
a streaming, parallel transform do the same work.
""",
)
def autopilot_batch_predict():
    @task
    def prepare(**context) -> dict:
        import fnmatch

        from mlops.core import partitions
        from mlops.core.config import load_pipeline
        from mlops.core.naming import path_safe, resource_name, run_name
        from mlops.core.runs import run_date
        from mlops.core.storage import data_path

        params, run_id, dag = context["params"], context["run_id"], context["dag"]
        config = load_pipeline(USE_CASE)
        autopilot = config.section("autopilot")
        run_uri = data_path("autopilot", USE_CASE, path_safe(run_id))
        labelled = partitions.resolve(USE_CASE, params["training_partition_uri"], as_of=run_date(context))
        train = partitions.read_partition(labelled["uri"])
        train = train[[*config.feature_columns, config.target]]
        from mlops.backends.limits import check_automl_rows

        check_automl_rows(int(train[config.target].notna().sum()), f"labelled partition {labelled['uri']}")
        run_uri.mkdir(parents=True, exist_ok=True)
        with (run_uri / "train.parquet").open("wb") as handle:
            train.to_parquet(handle, index=False)
        incoming = data_path(*params["scoring_prefix"].strip("/").split("/"))
        files = sorted(str(p) for p in incoming.iterdir() if fnmatch.fnmatch(p.name, "*.csv")) if incoming.exists() else []
        if not files:
            raise FileNotFoundError(f"no CSV files to score under {incoming}")
        from mlops.ml.batch_predictions import prepare_transform_input

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
            "model_name": run_name(dag.dag_id, run_id, "model"),
            "transform_job": run_name(dag.dag_id, run_id, "transform"),
            "response_keys": keys,
            "output_filter": "$[0," + ",".join(str(-i) for i in range(len(keys), 0, -1)) + "]",
            "target": config.target,
            "objective": autopilot["objective"],
            "time_budget_s": params["time_budget_s"] or autopilot["time_budget_s"],
            "local_time_budget_s": autopilot.get("local_time_budget_s"),
            "max_candidates": autopilot["max_candidates"],
        }

    plan = prepare()
    job = AutoMLJobOperator(
        task_id="automl_job",
        queue=heavy_queue(),
        job_name="{{ ti.xcom_pull(task_ids='prepare')['job_name'] }}",
        train_uri="{{ ti.xcom_pull(task_ids='prepare')['train_uri'] }}",
        output_uri="{{ ti.xcom_pull(task_ids='prepare')['run_uri'] }}",
        target="{{ ti.xcom_pull(task_ids='prepare')['target'] }}",
        problem_type="binary",
        objective="{{ ti.xcom_pull(task_ids='prepare')['objective'] }}",
        time_budget_s="{{ ti.xcom_pull(task_ids='prepare')['time_budget_s'] }}",
        local_time_budget_s="{{ ti.xcom_pull(task_ids='prepare')['local_time_budget_s'] }}",
        max_candidates="{{ ti.xcom_pull(task_ids='prepare')['max_candidates'] }}",
    )
    model = AutoMLCandidateModelOperator(
        task_id="create_model",
        job_name="{{ ti.xcom_pull(task_ids='automl_job')['job_name'] }}",
        model_name="{{ ti.xcom_pull(task_ids='prepare')['model_name'] }}",
        candidate_name="{{ params.candidate_name }}",
        response_keys="{{ ti.xcom_pull(task_ids='prepare')['response_keys'] }}",
    )
    transform = BatchTransformOperator(
        task_id="batch_transform",
        queue=heavy_queue(),
        job_name="{{ ti.xcom_pull(task_ids='prepare')['transform_job'] }}",
        model_name="{{ ti.xcom_pull(task_ids='create_model')['model_name'] }}",
        input_uri="{{ ti.xcom_pull(task_ids='prepare')['input_uri'] }}",
        output_uri="{{ ti.xcom_pull(task_ids='prepare')['run_uri'] }}/transform/output",
        input_filter="$[1:]",
        join_source=True,
        output_filter="{{ ti.xcom_pull(task_ids='prepare')['output_filter'] }}",
    )

    @task(outlets=[predictions(USE_CASE)])
    def publish_predictions(plan: dict, result: dict, model: dict, **context) -> dict:
        from mlops.core.config import load_pipeline
        from mlops.core.runs import announce, run_date
        from mlops.core.storage import data_path, to_path, write_json
        from mlops.ml.batch_predictions import (
            evaluate_predictions,
            write_evaluation_report,
            write_predictions_parquet,
        )

        params, run_id, dag_run = context["params"], context["run_id"], context["dag_run"]
        config = load_pipeline(USE_CASE)
        id_column = config.schema["id_column"]
        out = data_path("predictions", USE_CASE, f"ds={run_date(context)}")
        written = write_predictions_parquet(result["output_uri"], id_column, plan["response_keys"],
                                            str(out / "predictions.parquet"))
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
        if params["write_to_keyspaces"]:
            from mlops.hooks.keyspaces import KeyspacesHook
            from mlops.ml.batch_predictions import write_predictions_to_keyspaces

            hook = KeyspacesHook()
            try:
                summary["keyspaces_rows"] = write_predictions_to_keyspaces(
                    hook.get_session(), written["predictions_uri"], id_column, run_id, model["model_name"],
                    dag_run.run_after)
            finally:
                hook.close()
        write_json(str(out / "summary.json"), summary)
        announce(context, predictions(USE_CASE), {"predictions_uri": written["predictions_uri"],
                                                  "rows": written["rows"], "model_name": model["model_name"]})
        return summary

    plan >> job >> model >> transform
    publish_predictions(plan, transform.output, model.output)


autopilot_batch_predict()
