"""Autopilot (AutoML V2) model -> batch transform -> predictions joined to their ids."""

from __future__ import annotations

import functools

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
        from mlops.core.config import load_pipeline
        from mlops.core.runs import run_date
        from mlops.ml.autopilot_run import plan_autopilot_run

        return plan_autopilot_run(USE_CASE, load_pipeline(USE_CASE), context["params"], context["run_id"],
                                  context["dag"].dag_id, run_date(context))

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
        from mlops.core.storage import data_path
        from mlops.ml.autopilot_run import publish_batch_predictions

        out = str(data_path("predictions", USE_CASE, f"ds={run_date(context)}"))
        publish = functools.partial(publish_batch_predictions, load_pipeline(USE_CASE), plan, result, model,
                                    context["run_id"], out, run_after=context["dag_run"].run_after)
        if context["params"]["write_to_keyspaces"]:
            from mlops.hooks.keyspaces import KeyspacesHook

            hook = KeyspacesHook()
            try:
                summary = publish(keyspaces_session=hook.get_session())
            finally:
                hook.close()
        else:
            summary = publish()
        announce(context, predictions(USE_CASE), {"predictions_uri": summary["predictions_uri"],
                                                  "rows": summary["rows"], "model_name": model["model_name"]})
        return summary

    plan >> job >> model >> transform
    publish_predictions(plan, transform.output, model.output)


autopilot_batch_predict()
