"""One real Airflow (the project's stack on PostgreSQL, see testkit.airflow) for every test in
tests/ui/, with a raw churn partition already published, stopped at the end."""

from __future__ import annotations

import pytest

SEED_PARTITION = """
from types import SimpleNamespace

from mlops.entrypoints import generators_module
from mlops.operators.s3 import LandingToRawOperator
from mlops.storage import data_path

path = data_path("landing", "churn", "seed.csv")
path.parent.mkdir(parents=True, exist_ok=True)
with path.open("w") as handle:
    generators_module().churn(1500, seed=5).to_csv(handle, index=False)
LandingToRawOperator(task_id="seed", use_case="churn", files=[str(path)], ds="2026-01-01").execute(
    {"ti": SimpleNamespace(try_number=1)})
"""


@pytest.fixture(scope="session")
def airflow(tmp_path_factory):
    from testkit.airflow import run_with, running_airflow

    with running_airflow(tmp_path_factory.mktemp("airflow-ui")) as (_, api, env):
        run_with(env, SEED_PARTITION)
        yield api
