"""Secrets never reach task logs: a connection password and an AWS secret key, read by real tasks
and even logged, printed and raised on purpose, appear in no task log and no output of the run.

Verified how: secrets_driver.py runs keyspaces_ingest (the hook reads ``keyspaces_default`` and
hands its password to a fake cassandra-driver ``Cluster``) and a probe DAG (logs the Keyspaces
settings, builds a SageMaker client through ``mlops.backends.aws.clients`` from ``aws_default``,
fails with the password in its error) with each task under Airflow's worker supervisor, which
writes the task log files. The secrets are random per run, so no fixture can leak them by chance;
a control value logged next to them must appear, so masking is shown working, not logging absent.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.e2e

PROBE_TASKS = ("log_keyspaces_settings", "log_aws_client_credentials", "fail_with_the_password_in_the_error")
INGEST_TASKS = ("segment_list", "churn.copy_token_range", "churn.commit_partition", "retail.copy_token_range",
                "retail.commit_partition")


def sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The driver's summary, every task log by path, the run's console output and the secrets."""
    home = tmp_path_factory.mktemp("secrets")
    values = {
        "keyspaces_password": f"ks-{secrets.token_hex(12)}",
        "aws_secret_key": f"aws-{secrets.token_hex(16)}",
        "aws_extra_secret_key": f"awsx-{secrets.token_hex(16)}",
        "control": f"control-{secrets.token_hex(6)}",
    }
    keyspaces = {"conn_type": "generic", "host": "cassandra.internal.test", "port": 9042, "login": "mlops_svc",
                 "password": values["keyspaces_password"], "extra": {"ssl": False}}
    aws = {"conn_type": "aws", "login": "AKIASECRETSPROBE", "password": values["aws_secret_key"],
           "extra": {"region_name": "us-east-1", "aws_secret_access_key": values["aws_extra_secret_key"]}}
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MLOPS_", "AWS_"))},
        "MLOPS_HOME": str(home),
        "MLOPS_BACKEND": "local",
        "AIRFLOW_CONN_KEYSPACES_DEFAULT": json.dumps(keyspaces),
        "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(aws),
        "SECRETS_PROBE_CONTROL": values["control"],
        "PYTHONPATH": os.pathsep.join(str(p) for p in (ROOT / 'plugins', ROOT / 'tests', ROOT)),
    }
    completed = subprocess.run([sys.executable, str(ROOT / "tests/e2e/secrets_driver.py")], env=env,
                               capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, f"driver failed:\n{completed.stderr[-4000:]}"
    logs = {path: path.read_text(errors="replace") for path in (home / "airflow" / "logs").rglob("*") if path.is_file()}
    summary = json.loads(completed.stdout.strip().splitlines()[-1])
    return summary, logs, completed.stdout + completed.stderr, values


def task_log(logs: dict[Path, str], dag_id: str, task_id: str) -> str:
    found = [text for path, text in logs.items()
             if f"dag_id={dag_id}" in path.parts and f"task_id={task_id}" in path.parts]
    assert found, f"no log file for {dag_id}.{task_id} in {sorted(map(str, logs))}"
    return "".join(found)


def test_the_tasks_read_the_secrets_from_the_connections(run):
    summary, _, _, values = run
    ingest, probe = summary["keyspaces_ingest"], summary["secrets_probe"]
    assert "success" in ingest["state"] and ingest["churn_rows"] == 300
    assert ingest["driver_auth"] and all(auth == ["mlops_svc", sha256(values["keyspaces_password"])]
                                         for auth in ingest["driver_auth"])
    assert probe["keyspaces"] == {"password_sha256": sha256(values["keyspaces_password"])}
    assert probe["aws"] == {"secret_key_sha256": sha256(values["aws_secret_key"]),
                            "extra_secret_sha256": sha256(values["aws_extra_secret_key"])}
    assert probe["tasks"] == {"log_keyspaces_settings": "success", "log_aws_client_credentials": "success",
                              "fail_with_the_password_in_the_error": "failed"}


def test_every_task_wrote_a_non_empty_log_file(run):
    _, logs, _, _ = run
    for dag_id, task_ids in (("keyspaces_ingest", INGEST_TASKS), ("secrets_probe", PROBE_TASKS)):
        for task_id in task_ids:
            assert '"event"' in task_log(logs, dag_id, task_id)


def test_the_keyspaces_hook_connected_with_the_connections_password(run):
    _, logs, _, _ = run
    copy = task_log(logs, "keyspaces_ingest", "churn.copy_token_range")
    assert "connecting to cassandra.internal.test:9042 (tls=False, auth=password)" in copy


@pytest.mark.parametrize("task_id", PROBE_TASKS)
def test_the_control_value_logged_next_to_the_secrets_stays_and_the_secrets_are_masked(run, task_id):
    _, logs, _, values = run
    lines = [line for line in task_log(logs, "secrets_probe", task_id).splitlines() if values["control"] in line]
    assert lines, f"the control value is not in the log of {task_id}"
    assert all("***" in line for line in lines)


def test_printed_secrets_are_masked_too(run):
    _, logs, _, values = run
    log = task_log(logs, "secrets_probe", "log_keyspaces_settings")
    assert f"printed: control {values['control']}, keyspaces password ***" in log


def test_a_secret_in_a_failing_tasks_exception_is_masked(run):
    _, logs, _, values = run
    log = task_log(logs, "secrets_probe", "fail_with_the_password_in_the_error")
    assert f"control {values['control']}: cassandra.internal.test refused mlops_svc:***" in log


@pytest.mark.parametrize("secret", ["keyspaces_password", "aws_secret_key", "aws_extra_secret_key"])
def test_no_secret_appears_in_any_task_log_or_the_runs_output(run, secret):
    _, logs, output, values = run
    assert len(logs) >= len(INGEST_TASKS) + len(PROBE_TASKS) and output
    leaked = [str(path) for path, text in logs.items() if values[secret] in text]
    assert leaked == []
    assert values[secret] not in output


def test_the_keyspaces_settings_repr_leaves_the_password_out_even_before_masking(run):
    _, logs, _, values = run
    log = task_log(logs, "secrets_probe", "log_keyspaces_settings")
    (line,) = [line for line in log.splitlines() if "KeyspacesConnectionSettings(" in line]
    assert "login='mlops_svc'" in line and "password=" not in line.split("KeyspacesConnectionSettings(")[1]
