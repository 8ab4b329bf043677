"""Runs the whole chain with dag.test() in this process and prints a JSON summary last.

Called by test_pipeline_e2e.py in a subprocess, so that Airflow starts with the test's own
AIRFLOW_HOME and MLOPS_HOME. keyspaces_ingest runs first against a fake cassandra-driver
session (tests/support/fake_cassandra.py); then the same chain the demo runs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "plugins"), str(ROOT / "tests")]


def main() -> None:
    from mlops.airflow_env import configure

    configure()
    from mlops.airflow_env import migrate_db, run_dag, task_states, xcom
    from mlops.demo import run_pipeline
    from mlops.entrypoints import generators_module
    from mlops.hooks.keyspaces import KeyspacesHook
    from testkit.fake_cassandra import FakeSession, tables_from_sample_data

    generate = generators_module()
    session = FakeSession(tables_from_sample_data(generate.churn(1500, seed=3), generate.retail(4000, seed=4)))
    KeyspacesHook.get_session = lambda self: session
    KeyspacesHook.close = lambda self: None
    migrate_db()
    run = run_dag("keyspaces_ingest", {"segments": 3, "fetch_size": 500})
    keyspaces = {
        "state": str(run.state),
        "tasks": task_states(run),
        "churn": xcom(run, "churn.commit_partition"),
        "retail": xcom(run, "retail.commit_partition"),
        "token_ranges_queried": len(session.calls),
    }
    if "success" not in keyspaces["state"]:
        print(json.dumps({"keyspaces": keyspaces}))
        raise SystemExit("keyspaces_ingest failed")
    # A generous latency budget: the prod policy must not depend on how busy the test machine is.
    summary = run_pipeline(churn_rows=2000, retail_rows=6000, n_trials=3, automl_budget_s=10,
                           max_p95_latency_ms=10_000)
    summary["keyspaces"] = keyspaces
    print(json.dumps(summary, default=str))


if __name__ == "__main__":
    main()
