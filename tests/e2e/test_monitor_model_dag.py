"""monitor_model under dag.test(): training-distribution traffic ends with no drift and no
churn_drift event; shifted traffic emits one event naming the drifted features and the report.

Verified how: tests/e2e/monitor_driver.py in a subprocess (its own MLOPS_HOME and AIRFLOW_HOME),
a real local runtime serving prod with the prod config's data capture, traffic sent with boto3.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    from testkit.net import free_port

    home = tmp_path_factory.mktemp("monitor-model-dag")
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MLOPS_"))},
           "MLOPS_HOME": str(home), "MLOPS_BACKEND": "local", "MLOPS_RUNTIME_PORT": str(free_port()),
           "PYTHONPATH": os.pathsep.join(str(p) for p in (ROOT / 'plugins', ROOT / 'tests', ROOT))}
    done = subprocess.run([sys.executable, str(ROOT / "tests/e2e/monitor_driver.py")], env=env, timeout=900,
                          capture_output=True, text=True)
    assert done.returncode == 0, f"driver failed:\n{(done.stdout + done.stderr)[-4000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_traffic_from_the_training_distribution_emits_no_drift_event(runs):
    calm = runs["calm"]
    assert calm["state"] == "success"
    assert calm["tasks"] == {"monitor": "success", "announce_drift": "skipped"}
    assert calm["summary"]["status"] == "ok" and calm["summary"]["model_package_arn"] == runs["version"]
    assert calm["drift_events"] == []


def test_shifted_traffic_emits_one_churn_drift_event_naming_the_drifted_features(runs):
    shifted = runs["shifted"]
    assert shifted["tasks"] == {"monitor": "success", "announce_drift": "success"}
    (event,) = shifted["drift_events"]
    assert sorted(event["drifted_features"]) == ["charges", "plan"]
    assert event["report_uri"] == shifted["summary"]["report_uri"] and event["on_drift"] == "retrain"
    assert event["model_package_arn"] == runs["version"]
