"""Runs keyspaces_ingest with dag.test() against a fake cassandra-driver session; prints a JSON
summary last.

Called by test_keyspaces_ingest_dag.py in a subprocess, so that Airflow starts with the test's own
AIRFLOW_HOME and MLOPS_HOME. The fake session (tests/testkit/fake_cassandra.py) pages and filters
by the driver's own Murmur3 tokens; a worker process could not be handed it, so this one DAG runs
in-process (the scheduler tests check its fast failure without a connection).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "plugins"), str(ROOT / "tests")]


def main() -> None:
    from tools.airflow_env import configure

    configure()
    from mlops.core.entrypoints import generators_module
    from mlops.hooks.keyspaces import KeyspacesHook
    from testkit.fake_cassandra import FakeSession, tables_from_sample_data
    from tools.airflow_env import migrate_db, run_dag, task_states, xcom

    generate = generators_module()
    session = FakeSession(tables_from_sample_data(generate.churn(1500, seed=3), generate.retail(4000, seed=4)))
    KeyspacesHook.get_session = lambda self: session
    KeyspacesHook.close = lambda self: None
    KeyspacesHook.connection_exists = classmethod(lambda cls, conn_id=None: True)
    migrate_db()
    run = run_dag("keyspaces_ingest", {"segments": 3, "fetch_size": 500})
    print(json.dumps({
        "state": str(run.state),
        "tasks": task_states(run),
        "churn": xcom(run, "churn.commit_partition"),
        "retail": xcom(run, "retail.commit_partition"),
        "token_ranges_queried": len(session.calls),
    }, default=str))


if __name__ == "__main__":
    main()
