"""One real Airflow (``airflow standalone``) for every test in tests/ui/, with a raw churn
partition already published, stopped (with every process it started) at the end."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def airflow(tmp_path_factory):
    from testkit.airflow_server import AirflowServer

    server = AirflowServer(tmp_path_factory.mktemp("airflow-ui"))
    try:
        server.start()
        server.seed_churn_partition()
        yield server
    finally:
        server.stop()
