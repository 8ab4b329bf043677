"""Approved model -> staging (serverless) -> endpoint tests -> prod approval -> prod."""

from __future__ import annotations

from airflow.sdk import Param, dag, task

from mlops.core.assets import approved_model
from mlops.dag_defaults import (
    CHURN_MODEL_GROUP,
    DEFAULT_ARGS,
    PROD_ENDPOINT,
    STAGING_ENDPOINT,
    START_DATE,
    endpoint_pool,
)
from mlops.operators.approval import ProdApprovalOperator
from mlops.operators.sagemaker import (
    CheckEndpointOperator,
    DeleteEndpointOperator,
    DeployModelVersionOperator,
)

USE_CASE = "churn"


@dag(
    dag_id="deploy_model",
    schedule=[approved_model(CHURN_MODEL_GROUP)],
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["deployment", "sagemaker"],
    params={
        "model_package_arn": Param(None, type=["null", "string"],
                                   description="Model package version to deploy. Empty: the version the "
                                               "triggering approval announced, else the newest one approved "
                                               "by the time of the run."),
        "max_p95_latency_ms": Param(None, type=["null", "number"], minimum=1,
                                    description="Prod policy: the staging p95 latency must not exceed this. "
                                                "Empty: approval.prod.max_p95_latency_ms from the pipeline config."),
        "approval_mode": Param(None, type=["null", "string"], enum=[None, "manual", "policy"],
                               description="manual: a person approves prod on the Required Actions page (or "
                                           "over the REST API) after reading the staging test results. policy: "
                                           "the staging test thresholds in the pipeline config decide. Empty: "
                                           "approval.mode from the pipeline config."),
    },
    render_template_as_native_obj=True,
    doc_md="""
### deploy_model
Deploys a model package that is **Approved** and whose artifact sha256 still matches the one
recorded at registration (anything else is refused):

0. **stage targets**: each stage's account, connection and execution role
   (`endpoint.<stage>.target` in the pipeline config; default: the project's own account). A stage
   in another account gets the registry's model package group shared with it, and must be able,
   from its account, to read the version and its artifact (digest re-checked there) and to make
   every call of the deploy; a missing role or permission fails here, naming account, role and action;
1. **staging**: a serverless endpoint (memory size and max concurrency from the pipeline config);
2. **endpoint tests** through the `sagemaker-runtime` client: CSV and JSON contract, golden rows
   within tolerance of the offline predictions, CSV/JSON parity, malformed payload refused by the
   model (a `ModelError` whose `OriginalStatusCode` is 4xx) while the endpoint keeps serving,
   p50/p95 latency; **shadow replay**: a sample of prod's captured traffic sent to the candidate
   (disagreement with prod's answers, both score distributions, latency);
3. **prod approval**: a person (human-in-the-loop) or the policy, with the test results and the
   shadow replay as evidence, next to the version serving prod (in prod's account) scored on the
   candidate's holdout (`approval.prod.max_shadow_disagreement_rate` lets the policy require agreement);
4. **prod**: an instance-backed endpoint with data capture, created, or updated blue/green (canary or
   linear traffic shifting, rolled back by CloudWatch alarms); a silent rollback fails;
5. **verify** prod answers; every deployment is recorded in the registry's history;
6. **staging teardown** runs even when tests fail.

The tasks that change an endpoint take its pool (`endpoint-<name>`, one slot), so this DAG and
`rollback_model` never change the same endpoint at once.
""",
)
def deploy_model():
    @task
    def resolve_package(**context) -> dict:
        from mlops.backends import get_backend
        from mlops.deploy.flow import package_for_run
        from mlops.deploy.rules import resolve_deployable

        registry = get_backend().registry
        return resolve_deployable(registry, CHURN_MODEL_GROUP, package_for_run(registry, CHURN_MODEL_GROUP, context))

    @task
    def endpoint_settings() -> dict:
        """The staging and prod settings, checked against SageMaker's limits before any deploy."""
        from mlops.core.config import load_pipeline
        from mlops.core.settings import get_settings
        from mlops.deploy.stage_settings import endpoint_settings

        return endpoint_settings(load_pipeline(USE_CASE), get_settings(), PROD_ENDPOINT)

    @task
    def stage_targets(package: dict, settings: dict, run_id=None) -> dict:
        """Where staging and prod deploy, proven reachable and permitted before anything is deployed."""
        from mlops.backends import get_backend
        from mlops.core.config import load_pipeline
        from mlops.core.naming import run_name
        from mlops.deploy.flow import prepare_stages

        return prepare_stages(
            get_backend(), load_pipeline(USE_CASE), package,
            endpoints={"staging": STAGING_ENDPOINT, "prod": PROD_ENDPOINT},
            config_names={stage: run_name("deploy_model", run_id, f"{stage}-config") for stage in ("staging", "prod")},
            alarm_names=[request["AlarmName"] for request in settings["rollback_alarms"]])

    package = resolve_package()
    settings = endpoint_settings()
    targets = stage_targets(package, settings)
    staging = DeployModelVersionOperator(
        task_id="deploy_staging",
        pool=endpoint_pool(STAGING_ENDPOINT),
        stage="staging",
        package=package,
        endpoint_name=STAGING_ENDPOINT,
        serverless="{{ ti.xcom_pull(task_ids='endpoint_settings')['serverless'] }}",
        target="{{ ti.xcom_pull(task_ids='stage_targets')['staging'] }}",
    )
    tests = CheckEndpointOperator(
        task_id="test_staging",
        endpoint=staging.output,
        golden_uri="{{ ti.xcom_pull(task_ids='resolve_package')['metadata']['golden_uri'] }}",
        requests="{{ ti.xcom_pull(task_ids='endpoint_settings')['requests'] }}",
        tolerance="{{ ti.xcom_pull(task_ids='endpoint_settings')['tolerance'] }}",
        target="{{ ti.xcom_pull(task_ids='stage_targets')['staging'] }}",
    )

    @task
    def shadow_replay(endpoint: dict, targets: dict, **context) -> dict:
        """The staging candidate replayed against a sample of captured prod traffic."""
        from mlops.core.runs import run_moment
        from mlops.monitor.shadow_replay import replay_for_approval

        return replay_for_approval(USE_CASE, PROD_ENDPOINT, endpoint["name"], targets["staging"], run_moment(context))

    shadow = shadow_replay(staging.output, targets)
    tests >> shadow

    @task
    def prod_evidence(report: dict, shadow: dict) -> dict:
        """The staging test results and the shadow replay the prod approval shows (and the policy reads)."""
        from mlops.deploy.stage_settings import prod_evidence

        return prod_evidence(report, shadow)

    @task
    def prod_approval_settings(params=None) -> dict:
        from mlops.core.config import load_pipeline
        from mlops.deploy.stage_settings import prod_approval_settings

        return prod_approval_settings(load_pipeline(USE_CASE), params)

    @task
    def compare_with_prod(package: dict, targets: dict) -> dict:
        """The version serving prod (in prod's account) scored on the candidate's holdout, for the approver."""
        from mlops.backends import get_backend
        from mlops.core.config import load_pipeline
        from mlops.deploy.flow import compare_with_serving

        holdout = {key: value for key, value in package["metrics"].items() if key.startswith("holdout_")}
        return compare_with_serving(get_backend().registry, load_pipeline(USE_CASE), holdout,
                                    package["metadata"].get("holdout_uri"), targets["prod"]["account_id"])

    evidence = prod_evidence(tests.output, shadow)
    comparison = compare_with_prod(package, targets)
    approval_settings = prod_approval_settings()
    approve = ProdApprovalOperator(
        task_id="approve_prod",
        subject="Promote {{ ti.xcom_pull(task_ids='resolve_package')['arn'] }} to prod?",
        model_package_arn="{{ ti.xcom_pull(task_ids='resolve_package')['arn'] }}",
        evidence=evidence,
        thresholds="{{ ti.xcom_pull(task_ids='prod_approval_settings')['thresholds'] }}",
        mode="{{ ti.xcom_pull(task_ids='prod_approval_settings')['mode'] }}",
        endpoint_name=PROD_ENDPOINT,
        target="{{ ti.xcom_pull(task_ids='stage_targets')['prod'] }}",
        comparison="{{ ti.xcom_pull(task_ids='compare_with_prod') }}",
    )
    [approval_settings, comparison] >> approve

    @task
    def rollback_alarms(settings: dict, targets: dict) -> list[str]:
        """The CloudWatch alarms (in prod's account) a blue/green prod update rolls back on (none locally)."""
        from mlops.backends import get_backend

        return get_backend().hosting_for(targets["prod"]).ensure_rollback_alarms(settings["rollback_alarms"])

    prod = DeployModelVersionOperator(
        task_id="deploy_prod",
        pool=endpoint_pool(PROD_ENDPOINT),
        stage="prod",
        package=package,
        endpoint_name=PROD_ENDPOINT,
        instance_type="{{ ti.xcom_pull(task_ids='endpoint_settings')['instance_type'] }}",
        initial_instance_count="{{ ti.xcom_pull(task_ids='endpoint_settings')['instance_count'] }}",
        data_capture_config="{{ ti.xcom_pull(task_ids='endpoint_settings')['data_capture_config'] }}",
        deployment_config="{{ ti.xcom_pull(task_ids='endpoint_settings')['deployment_config'] }}",
        target="{{ ti.xcom_pull(task_ids='stage_targets')['prod'] }}",
    )
    approve >> rollback_alarms(settings, targets) >> prod

    @task
    def verify_prod(endpoint: dict, package: dict, settings: dict, targets: dict) -> dict:
        from mlops.backends import get_backend
        from mlops.deploy.endpoint_checks import verify_golden

        return verify_golden(get_backend().hosting_for(targets["prod"]).runtime_client(), endpoint["name"],
                             package["metadata"]["golden_uri"], settings["tolerance"])

    teardown = DeleteEndpointOperator(task_id="teardown_staging", endpoint_name=STAGING_ENDPOINT,
                                               pool=endpoint_pool(STAGING_ENDPOINT),
                                               target="{{ ti.xcom_pull(task_ids='stage_targets')['staging'] }}")
    [package, settings] >> targets >> staging >> tests >> evidence >> approve >> prod
    verify_prod(prod.output, package, settings, targets)
    # Staging lives until the prod decision, and is deleted even when tests fail.
    approve >> teardown.as_teardown(setups=staging)


deploy_model()
