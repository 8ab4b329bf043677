"""Re-point prod to the Approved version before the one it serves (manual trigger)."""

from __future__ import annotations

from airflow.sdk import dag, task

from mlops.dag_defaults import CHURN_MODEL_GROUP, DEFAULT_ARGS, PROD_ENDPOINT, START_DATE, endpoint_pool

USE_CASE = "churn"


@dag(
    dag_id="rollback_model",
    schedule=None,
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["deployment", "sagemaker"],
    doc_md="""
### rollback_model
Finds the version prod serves now (the deployment history of prod's account:
`endpoint.prod.target` in the pipeline config), takes the newest **Approved** version older than
it, checks its artifact digest (in prod's account too, when it is another one), and deploys it to
prod there with the same blue/green settings as `deploy_model`. The deployment is recorded with
`rollback_from`; a silent rollback fails the run like any deploy.
""",
)
def rollback_model():
    @task(pool=endpoint_pool(PROD_ENDPOINT))  # never at the same time as deploy_model's deploy_prod
    def rollback_prod(run_id=None, **context) -> dict:
        from mlops.backends import get_backend
        from mlops.backends.base import EndpointSpec
        from mlops.core.config import load_pipeline, stage_target
        from mlops.core.naming import run_name
        from mlops.core.settings import get_settings
        from mlops.deploy.endpoint_options import prod_endpoint_options, rollback_alarm_requests
        from mlops.deploy.flow import rollback, rollback_plan
        from mlops.notifications import send

        backend = get_backend()
        config = load_pipeline(USE_CASE)
        prod = config.section("endpoint")["prod"]
        target = backend.stages.resolve(stage_target(config, "prod"))
        hosting = backend.hosting_for(target)
        hosting.ensure_rollback_alarms(rollback_alarm_requests(PROD_ENDPOINT, prod))
        spec = EndpointSpec(
            endpoint_name=PROD_ENDPOINT, config_name=run_name("rollback_model", run_id, "prod-config"),
            model_uri="", sha256="", instance_type=prod["instance_type"],
            initial_instance_count=int(prod["initial_instance_count"]),
            **prod_endpoint_options(get_settings(), PROD_ENDPOINT, prod),
        )  # rollback() fills in the target's artifact, digest and package ARN
        current, package = rollback_plan(backend.registry, hosting, CHURN_MODEL_GROUP, "prod", target)
        endpoint = rollback(backend.registry, hosting, CHURN_MODEL_GROUP, "prod", spec, target, (current, package))
        send("rollback", {**context, "run_id": run_id},
             f"prod endpoint {endpoint.name} (account {target.account_id}) rolled back from {current.arn} to "
             f"{package['arn']}", model_version=package["arn"], report_uri=package["metadata"].get("report_uri", ""),
             console_url=backend.resource_url("endpoint", endpoint.name, endpoint.url) or "",
             detail={"rollback_from": current.arn, "account": target.account_id})
        return endpoint.to_dict()

    rollback_prod()


rollback_model()
