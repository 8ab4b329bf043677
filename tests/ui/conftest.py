"""One real Airflow (the project's stack on PostgreSQL, see testkit.airflow) for every test in
tests/ui/, stopped at the end, with two raw churn partitions already published: the newest
(``ds=2026-01-02``) for the browser's runs, the other for the REST flow, so that neither gets the
model version the other registered and decided (registration is idempotent)."""

from __future__ import annotations

import pytest

SEED_PARTITION = """
from types import SimpleNamespace

from mlops.core.entrypoints import generators_module
from mlops.operators.s3 import LandingToRawOperator
from mlops.core.storage import data_path

for seed, ds in ((5, "2026-01-01"), (6, "2026-01-02")):
    path = data_path("landing", "churn", f"seed-{seed}.csv")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        generators_module().churn(1500, seed=seed).to_csv(handle, index=False)
    published = LandingToRawOperator(task_id="seed", use_case="churn", files=[str(path)], ds=ds).execute(
        {"ti": SimpleNamespace(try_number=1)})
    print("PARTITION", published["partition_uri"])
"""


@pytest.fixture(scope="session")
def airflow(tmp_path_factory):
    from testkit.airflow import run_with, running_airflow

    with running_airflow(tmp_path_factory.mktemp("airflow-ui")) as (_, api, env):
        printed = run_with(env, SEED_PARTITION).splitlines()
        api.partitions = [line.split()[1] for line in printed if line.startswith("PARTITION ")]
        assert len(api.partitions) == 2, printed
        yield api
