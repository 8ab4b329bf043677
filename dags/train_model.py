"""Validated data -> k-fold CV + tuning -> quality gate -> refit -> holdout -> registry -> approval."""

from __future__ import annotations

from airflow.sdk import Param, dag, task

from mlops.core.assets import approved_model, model_drift, raw_data
from mlops.dag_defaults import CHURN_MODEL_GROUP, DEFAULT_ARGS, START_DATE, heavy_queue
from mlops.operators.approval import ModelApprovalOperator
from mlops.operators.sagemaker import (
    CrossValidatedTuningOperator,
    RegisterModelVersionOperator,
    TrainModelOperator,
)
from mlops.operators.validation import DataValidationOperator
from mlops.sensors.sagemaker import ModelPackageApprovalSensor

USE_CASE = "churn"


@dag(
    dag_id="train_model",
    schedule=(raw_data(USE_CASE) | model_drift(USE_CASE)),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["training", "sagemaker"],
    params={
        "partition_uri": Param(None, type=["null", "string"],
                               description="Raw partition to train on, e.g. file:///.../raw/churn/ds=2026-01-01. "
                                           "Empty: the one the triggering churn_raw event announced, else the "
                                           "newest dated on or before the run's date."),
        "n_trials": Param(None, type=["null", "integer"], minimum=1, maximum=500,
                          description="Tuning trials. Empty: training.n_trials from the pipeline config."),
        "baseline": Param(None, type=["null", "number"],
                          description="Quality gate: the mean CV objective must reach this. Empty: "
                                      "training.baseline from the pipeline config."),
        "approval_mode": Param(None, type=["null", "string"], enum=[None, "manual", "policy", "registry"],
                               description="manual: a person approves on the Required Actions page (or over "
                                           "the REST API). policy: the thresholds in the pipeline config decide "
                                           "and are recorded as the approver. registry: wait for a decision made "
                                           "in the model registry (SageMaker Studio on AWS). Empty: approval.mode "
                                           "from the pipeline config."),
    },
    render_template_as_native_obj=True,
    doc_md="""
### train_model
Trains the churn classifier (`include/pipelines/churn.yaml`) on the raw partition the triggering
`churn_raw` event announced (or the one `partition_uri` names, else the newest dated on or
before the run's date):

1. **validate** the partition with Great Expectations (a failure quarantines it and stops here);
2. **prepare** a holdout that CV and tuning never see, and a fold manifest (stratified k-fold);
3. **tune** hyperparameters, every trial scored by k-fold CV (Optuna locally, a SageMaker HPO job on AWS);
4. **quality gate**: mean CV objective >= baseline, else the run ends with the reason recorded
   and no model is registered;
5. **refit** on all training rows, **evaluate** on the holdout, write the model report;
6. **register** the version as `PendingManualApproval` (a version already registered for the same
   data digest, code version and hyperparameters is reused, not registered twice), then
   **approve** it: a person on the Required Actions page, or the policy (`approval_mode`). The
   page shows the holdout metrics next to the version serving prod (in prod's account) scored on
   the same holdout, and links the model report.

Approval emits the `churn-classifier_approved` asset naming the version, which triggers
`deploy_model` for exactly that version.

A `churn_drift` event from `monitor_model` starts a run too: **retrain_trigger** lets it go ahead
when `monitoring.on_drift` is `retrain` (else the run stops there), and the drift report and its
reason go into the new version's lineage (`drift_trigger`); the same gates and approvals apply.
""",
)
def train_model():
    @task.short_circuit
    def retrain_trigger(**context) -> dict | None:
        from mlops.monitor.job import retrain_decision

        return retrain_decision(USE_CASE, context)

    trigger = retrain_trigger()

    @task(multiple_outputs=True)
    def resolve_partition(**context) -> dict:
        from mlops.core.partitions import partition_for_run

        return partition_for_run(USE_CASE, context)

    partition = resolve_partition()
    trigger >> partition
    validation = DataValidationOperator(task_id="validate", use_case=USE_CASE, partition_uri=partition["uri"])

    @task
    def prepare(partition_uri: str, validation: dict, run_id=None) -> dict:
        from mlops.core.config import load_pipeline
        from mlops.core.naming import path_safe
        from mlops.core.storage import data_path
        from mlops.ml.dataset import prepare_training_data

        out = data_path("training", USE_CASE, path_safe(run_id))
        prepared = prepare_training_data(load_pipeline(USE_CASE), partition_uri, str(out))
        return {**prepared, "validation_id": validation["validation_id"], "run_uri": str(out)}

    prepared = prepare(partition["uri"], validation.output)

    @task
    def tuning_settings(params=None) -> dict:
        from mlops.core.config import load_pipeline
        from mlops.ml.training_run import tuning_settings

        return tuning_settings(load_pipeline(USE_CASE), params)

    settings = tuning_settings()
    tuned = CrossValidatedTuningOperator(
        task_id="tune",
        queue=heavy_queue(),
        training_data="{{ ti.xcom_pull(task_ids='prepare')['training_data'] }}",
        search_space="{{ ti.xcom_pull(task_ids='tuning_settings')['search_space'] }}",
        n_trials="{{ ti.xcom_pull(task_ids='tuning_settings')['n_trials'] }}",
        output_uri="{{ ti.xcom_pull(task_ids='prepare')['run_uri'] }}",
    )
    [prepared, settings] >> tuned

    @task.branch
    def quality_gate(tuning: dict, settings: dict) -> str:
        from mlops.ml.training_run import passes_quality_gate

        passed, compared = passes_quality_gate(tuning, settings)
        print(f"quality gate: {compared}")
        return "refit" if passed else "below_baseline"

    gate = quality_gate(tuned.output, settings)

    @task
    def below_baseline(tuning: dict, settings: dict) -> dict:
        """End cleanly: nothing is registered, so nothing can be approved or deployed."""
        reason = (f"mean CV {tuning['objective']} {tuning['best']['mean']:.4f} is below the baseline "
                  f"{settings['baseline']}; no model registered")
        print(reason)
        return {"registered": False, "reason": reason}

    refit = TrainModelOperator(
        task_id="refit",
        queue=heavy_queue(),
        training_data="{{ ti.xcom_pull(task_ids='prepare')['training_data'] }}",
        hyperparameters="{{ ti.xcom_pull(task_ids='tune')['best']['hyperparameters'] }}",
        output_uri="{{ ti.xcom_pull(task_ids='prepare')['run_uri'] }}",
    )
    gate >> [refit, below_baseline(tuned.output, settings)]

    @task
    def evaluate(model: dict, prepared: dict, tuning: dict) -> dict:
        from mlops.core.config import load_pipeline
        from mlops.ml.training_run import evaluate_refit

        return evaluate_refit(load_pipeline(USE_CASE), model, prepared, tuning)

    evaluation = evaluate(refit.output, prepared, tuned.output)

    @task
    def lineage(prepared: dict, tuning: dict, evaluation: dict, trigger: dict) -> dict:
        from mlops.ml.training_run import registration_lineage

        return registration_lineage(prepared, tuning, evaluation, trigger)

    register = RegisterModelVersionOperator(
        task_id="register",
        group=CHURN_MODEL_GROUP,
        model=refit.output,
        metrics="{{ ti.xcom_pull(task_ids='evaluate')['metrics'] }}",
        metadata=lineage(prepared, tuned.output, evaluation, trigger),
    )
    evaluation >> register

    @task
    def approval_settings(params=None) -> dict:
        from mlops.core.config import load_pipeline

        approval = load_pipeline(USE_CASE).section("approval")
        return {"mode": params["approval_mode"] or approval["mode"], "thresholds": approval["model"]}

    @task
    def compare_with_prod(prepared: dict, evaluation: dict) -> dict:
        """The version serving prod (in prod's account) scored on this run's holdout, for the approver."""
        from mlops.backends import get_backend
        from mlops.core.config import load_pipeline, stage_target
        from mlops.deploy.flow import compare_with_serving

        backend, config = get_backend(), load_pipeline(USE_CASE)
        prod = backend.stages.resolve(stage_target(config, "prod"))
        return compare_with_serving(backend.registry, config, evaluation["metrics"], prepared["holdout_uri"],
                                    prod.account_id)

    settings_for_approval = approval_settings()
    comparison = compare_with_prod(prepared, evaluation)
    approve = ModelApprovalOperator(
        task_id="approve_model",
        subject="Approve churn model {{ ti.xcom_pull(task_ids='register')['arn'] }}?",
        model_package_arn="{{ ti.xcom_pull(task_ids='register')['arn'] }}",
        evidence="{{ ti.xcom_pull(task_ids='evaluate')['metrics'] }}",
        thresholds="{{ ti.xcom_pull(task_ids='approval_settings')['thresholds'] }}",
        report_uri="{{ ti.xcom_pull(task_ids='evaluate')['report_uri'] }}",
        mode="{{ ti.xcom_pull(task_ids='approval_settings')['mode'] }}",
        comparison="{{ ti.xcom_pull(task_ids='compare_with_prod') }}",
    )
    comparison >> approve

    @task.branch
    def approval_route(settings: dict) -> str:
        return "wait_for_registry_approval" if settings["mode"] == "registry" else "approve_model"

    # registry mode: a decision in SageMaker Studio (or any registry client) is honoured; the
    # sensor waits in the triggerer on AWS and reschedules its pokes locally.
    wait = ModelPackageApprovalSensor(
        task_id="wait_for_registry_approval",
        model_package_arn="{{ ti.xcom_pull(task_ids='register')['arn'] }}",
        deferrable=True,
        timeout=7 * 24 * 3600,
    )
    # Skipped when the model is rejected (either way), so only an approval triggers deploy_model,
    # and the event names the version: deploy_model deploys exactly that one.
    @task(outlets=[approved_model(CHURN_MODEL_GROUP)], trigger_rule="none_failed_min_one_success")
    def announce_approved(registered: dict, **context) -> dict:
        from airflow.sdk.exceptions import AirflowSkipException

        from mlops.core.runs import announce

        decision = context["ti"].xcom_pull(task_ids="approve_model", key="decision") or {}
        if decision.get("decided_before"):  # a reused version: its approval was announced back then
            raise AirflowSkipException(f"{registered['arn']} was approved before this run; nothing new to deploy")
        event = {"model_package_arn": registered["arn"], "group": registered["group"],
                 "version": registered["version"]}
        announce(context, approved_model(CHURN_MODEL_GROUP), event)
        return event

    register >> approval_route(settings_for_approval) >> [approve, wait] >> announce_approved(register.output)


train_model()
