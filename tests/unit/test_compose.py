"""docker-compose.yaml structure. No Docker engine runs on these machines, so the file is
checked, not run: the services an Airflow 3 deployment needs, their health checks, the mounts of
this project's folders, and the environment each service needs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
AIRFLOW_SERVICES = ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer")


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load((ROOT / "docker-compose.yaml").read_text())


def test_has_the_airflow_3_components_and_their_stores(compose):
    assert set(compose["services"]) >= {*AIRFLOW_SERVICES, "airflow-init", "postgres", "cassandra", "minio",
                                        "model-runtime"}


@pytest.mark.parametrize("service", [*AIRFLOW_SERVICES, "postgres", "cassandra", "minio", "model-runtime"])
def test_every_long_running_service_has_a_healthcheck(compose, service):
    assert compose["services"][service]["healthcheck"]["test"]


@pytest.mark.parametrize("service", AIRFLOW_SERVICES)
def test_airflow_services_mount_the_project_and_wait_for_init(compose, service):
    spec = compose["services"][service]
    mounts = {volume.split(":")[1] for volume in spec["volumes"]}
    assert {"/opt/airflow/dags", "/opt/airflow/plugins", "/opt/airflow/include", "/opt/airflow/sql"} <= mounts
    assert spec["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"
    assert spec["depends_on"]["postgres"]["condition"] == "service_healthy"


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
    from mlops.metadata_db import SQLALCHEMY_SCHEME

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


def test_the_scheduler_which_runs_the_tasks_waits_for_a_healthy_model_runtime(compose):
    assert compose["services"]["airflow-scheduler"]["depends_on"]["model-runtime"]["condition"] == "service_healthy"
