"""keyspaces_ingest end to end against a fake session at the cassandra-driver boundary: every row
of both tables lands in the raw partitions through the token-range tasks, and each commit
announces its partition.

Verified how: ``dag.test()`` in a subprocess (tests/e2e/keyspaces_driver.py) with the driver's
session replaced by tests/testkit/fake_cassandra.py; no Cassandra server here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def ingest(tmp_path_factory):
    from testkit.net import free_port

    home = tmp_path_factory.mktemp("keyspaces")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MLOPS_"))},
        "MLOPS_HOME": str(home),
        "MLOPS_BACKEND": "local",
        "MLOPS_RUNTIME_PORT": str(free_port()),
        "PYTHONPATH": os.pathsep.join(str(p) for p in (ROOT / 'plugins', ROOT / 'tests', ROOT)),
    }
    completed = subprocess.run([sys.executable, str(ROOT / "tests/e2e/keyspaces_driver.py")], env=env,
                               capture_output=True, text=True, timeout=900)
    (home / "driver.log").write_text(completed.stdout + completed.stderr)
    assert completed.returncode == 0, f"driver failed, log at {home / 'driver.log'}:\n{completed.stderr[-4000:]}"
    return json.loads(completed.stdout.strip().splitlines()[-1])


def test_keyspaces_ingest_copies_every_row_through_token_ranges(ingest):
    assert "success" in ingest["state"]
    assert ingest["churn"]["rows"] == 1500
    assert ingest["retail"]["rows"] == 4000
    assert ingest["token_ranges_queried"] == 2 * 3


def test_each_commit_names_its_partition_by_the_runs_date_and_content(ingest):
    for use_case in ("churn", "retail"):
        committed = ingest[use_case]
        assert committed["partition_uri"].endswith(f"raw/{use_case}/ds={committed['ds']}")
        assert len(committed["digest"]) == 64
