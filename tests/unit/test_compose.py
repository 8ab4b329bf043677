"""docker-compose.yaml structure. No Docker engine runs on these machines, so the file is
checked, not run: the services an Airflow 3 deployment needs, their health checks, the mounts of
this project's folders, and the environment each service needs; and that its CeleryExecutor
settings and workers are the ones :class:`~tools.airflow_stack.AirflowStack` runs in
``tests/e2e/test_celery.py`` (both come from :mod:`tools.airflow_env`)."""

from __future__ import annotations

import shlex
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKERS = ("airflow-worker-default", "airflow-worker-heavy")
AIRFLOW_SERVICES = ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer", *WORKERS)


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load((ROOT / "docker-compose.yaml").read_text())


def test_has_the_airflow_3_components_and_their_stores(compose):
    assert set(compose["services"]) >= {*AIRFLOW_SERVICES, "airflow-init", "postgres", "redis", "cassandra", "minio",
                                        "model-runtime"}


@pytest.mark.parametrize("service", [*AIRFLOW_SERVICES, "postgres", "redis", "cassandra", "minio", "model-runtime"])
def test_every_long_running_service_has_a_healthcheck(compose, service):
    assert compose["services"][service]["healthcheck"]["test"]


@pytest.mark.parametrize("service", AIRFLOW_SERVICES)
def test_airflow_services_mount_the_project_and_wait_for_init(compose, service):
    spec = compose["services"][service]
    mounts = {volume.split(":")[1] for volume in spec["volumes"]}
    assert {"/opt/airflow/dags", "/opt/airflow/plugins", "/opt/airflow/include", "/opt/airflow/sql"} <= mounts
    assert spec["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"
    assert spec["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert spec["depends_on"]["redis"]["condition"] == "service_healthy"


@pytest.mark.parametrize("service", AIRFLOW_SERVICES)
def test_airflow_services_get_connections_and_settings_from_the_environment(compose, service):
    env = compose["services"][service]["environment"]
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "false"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql")
    assert "AIRFLOW_CONN_KEYSPACES_DEFAULT" in env and "AIRFLOW_CONN_MINIO" in env
    assert env["MLOPS_DATA_URI"].startswith("s3://")


def test_every_airflow_service_and_the_runtime_run_the_projects_image(compose):
    built = {name: (spec["image"], spec["build"]["dockerfile"]) for name, spec in compose["services"].items()
             if name.startswith("airflow") or name == "model-runtime"}
    assert set(built.values()) == {(compose["services"]["airflow-scheduler"]["image"], "Dockerfile")}


def test_the_image_is_the_pinned_airflow_with_the_locked_requirements():
    pinned = next(line.split("==")[1] for line in (ROOT / "requirements.txt").read_text().splitlines()
                  if line.startswith("apache-airflow=="))
    dockerfile = (ROOT / "Dockerfile").read_text()

    assert f"FROM apache/airflow:{pinned}-python3.11" in dockerfile.splitlines()
    assert "pip install --no-cache-dir -r /opt/airflow/project/requirements.txt " \
           "-c /opt/airflow/project/constraints.txt" in dockerfile


def test_the_metadata_database_driver_is_the_one_the_tests_run(compose):
    from tools.metadata_db import SQLALCHEMY_SCHEME

    url = compose["services"]["airflow-scheduler"]["environment"]["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert url.split("://")[0] == SQLALCHEMY_SCHEME


def test_published_ports_bind_loopback_only(compose):
    for name, spec in compose["services"].items():
        for port in spec.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"


def test_cassandra_gets_the_projects_tables(compose):
    init = compose["services"]["cassandra-init"]
    assert init["depends_on"]["cassandra"]["condition"] == "service_healthy"
    assert "./sql/keyspaces:/cql:ro" in init["volumes"]
    assert "SimpleStrategy" in " ".join(init["entrypoint"])


# ---------------------------------------------------------------- the model runtime, a service of its own
def test_the_model_runtime_serves_from_the_airflow_image_and_the_shared_mlops_home(compose):
    runtime, scheduler = compose["services"]["model-runtime"], compose["services"]["airflow-scheduler"]
    home = runtime["environment"]["MLOPS_HOME"]

    assert runtime["image"] == scheduler["image"]
    assert runtime["command"] == ["python", "-m", "mlops.backends.local.runtime", "serve"]
    assert home == scheduler["environment"]["MLOPS_HOME"]
    home_volume = next(volume.split(":")[0] for volume in scheduler["volumes"] if volume.split(":")[1] == home)
    assert f"{home_volume}:{home}" in runtime["volumes"]
    assert {"/opt/airflow/plugins", "/opt/airflow/include"} <= {v.split(":")[1] for v in runtime["volumes"]}


def test_the_model_runtime_health_check_pings_it(compose):
    runtime = compose["services"]["model-runtime"]

    assert f"http://localhost:{runtime['environment']['MLOPS_RUNTIME_PORT']}/ping" in runtime["healthcheck"]["test"]


def test_the_model_runtime_environment_has_no_airflow_setting(compose):
    env = compose["services"]["model-runtime"]["environment"]

    assert [name for name in env if "AIRFLOW" in name] == []
    assert env["MLOPS_DATA_URI"] == compose["services"]["airflow-scheduler"]["environment"]["MLOPS_DATA_URI"]
    assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL_S3"} <= set(env)


def test_the_model_runtime_binds_its_network_without_publishing_a_port(compose):
    runtime = compose["services"]["model-runtime"]

    assert runtime["environment"]["MLOPS_RUNTIME_HOST"] == "0.0.0.0"  # noqa: S104 - the compose network only
    assert "ports" not in runtime


@pytest.mark.parametrize("service", AIRFLOW_SERVICES)
def test_airflow_services_reach_the_model_runtime_service(compose, service):
    env = compose["services"][service]["environment"]
    port = compose["services"]["model-runtime"]["environment"]["MLOPS_RUNTIME_PORT"]

    assert env["MLOPS_RUNTIME_URL"] == f"http://model-runtime:{port}"
    assert env["MLOPS_RUNTIME_PORT"] == port


@pytest.mark.parametrize("service", WORKERS)
def test_the_workers_which_run_the_tasks_wait_for_a_healthy_model_runtime(compose, service):
    assert compose["services"][service]["depends_on"]["model-runtime"]["condition"] == "service_healthy"


# ---------------------------------------------------------------- the CeleryExecutor, as the tests run it
@pytest.fixture
def project_defaults(monkeypatch):
    """The project's settings with nothing overridden, as compose leaves them."""
    for name in ("MLOPS_HEAVY_QUEUE", "MLOPS_CELERY_DEFAULT_CONCURRENCY", "MLOPS_CELERY_HEAVY_CONCURRENCY",
                 "MLOPS_CELERY_BROKER_URL", "AIRFLOW__OPERATORS__DEFAULT_QUEUE"):
        monkeypatch.delenv(name, raising=False)


def common_env(compose):
    return compose["services"]["airflow-scheduler"]["environment"]


def test_every_airflow_service_has_the_celery_settings_airflow_stack_runs(compose, project_defaults):
    from tools.airflow_env import celery_settings

    for name in AIRFLOW_SERVICES:
        env = compose["services"][name]["environment"]
        expected = celery_settings(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"],
                                   env["AIRFLOW__CELERY__BROKER_URL"]).environment()
        assert {key: env.get(key) for key in expected} == expected, name


def test_the_result_backend_is_the_metadata_database_and_the_broker_the_redis_service(compose):
    env = common_env(compose)

    assert env["AIRFLOW__CELERY__RESULT_BACKEND"] == "db+" + env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    broker = urlsplit(env["AIRFLOW__CELERY__BROKER_URL"])
    assert (broker.scheme, broker.hostname) == ("redis", "redis")


def test_a_worker_per_queue_started_as_airflow_stack_starts_it(compose, project_defaults):
    from tools.airflow_env import default_workers

    workers = default_workers()
    assert [f"airflow-worker-{worker.name}" for worker in workers] == list(WORKERS)
    for worker in workers:
        assert compose["services"][f"airflow-worker-{worker.name}"]["command"] == worker.argv()


def test_the_heavy_worker_serves_the_queue_the_dags_send_heavy_work_to(compose, project_defaults):
    from mlops.dag_defaults import heavy_queue

    command = compose["services"]["airflow-worker-heavy"]["command"]
    assert command[command.index("--queues") + 1] == heavy_queue() == common_env(compose)["MLOPS_HEAVY_QUEUE"]


@pytest.mark.parametrize("service", WORKERS)
def test_a_workers_health_check_pings_its_own_celery_node(compose, service):
    spec = compose["services"][service]
    node = spec["command"][spec["command"].index("--celery-hostname") + 1].replace("%h", "$${HOSTNAME}")

    assert f'inspect ping -d "{node}"' in spec["healthcheck"]["test"][1]


def test_the_scheduler_may_queue_as_many_tasks_as_the_workers_run(compose, project_defaults):
    from tools.airflow_env import default_workers

    assert int(common_env(compose)["AIRFLOW__CORE__PARALLELISM"]) >= sum(w.concurrency for w in default_workers())


def test_init_creates_the_schema_then_the_pools_the_dags_use(compose):
    command = compose["services"]["airflow-init"]["command"]

    assert command[:2] == ["bash", "-c"]
    steps = [shlex.split(step) for step in command[2].split("&&")]
    assert steps == [["airflow", "db", "migrate"], ["python", "-m", "tools.airflow_env", "pools"]]


def test_the_workers_write_task_logs_where_the_api_server_reads_them(compose):
    def logs_volume(service):
        return next(v.split(":")[0] for v in compose["services"][service]["volumes"]
                    if v.split(":")[1] == "/opt/airflow/logs")

    assert {logs_volume(service) for service in AIRFLOW_SERVICES} == {"airflow-logs"}
    assert all("--skip-serve-logs" in compose["services"][service]["command"] for service in WORKERS)
