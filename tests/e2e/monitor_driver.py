"""Runs monitor_model with dag.test() over prod traffic from the training distribution and over
shifted traffic; prints a JSON summary as its last line (test_monitor_model_dag.py reads it).

Run in a subprocess with its own MLOPS_HOME and AIRFLOW_HOME (Airflow's database is set up here).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
for entry in (str(ROOT / "plugins"), str(ROOT / "tests"), str(ROOT)):
    if entry not in sys.path:
        sys.path.insert(0, entry)


def drift_events() -> list[dict]:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        query = select(AssetEvent).join(AssetModel, AssetEvent.asset_id == AssetModel.id).where(
            AssetModel.name == "churn_drift")
        return [dict(event.extra or {}) for event in session.scalars(query).all()]


def main() -> None:
    from tools.airflow_env import configure

    configure()
    from testkit.monitoring import send_traffic, serve_prod
    from tools.airflow_env import migrate_db, run_dag, task_states, xcom

    migrate_db()
    _, hosting, version, _ = serve_prod(Path(os.environ["MLOPS_HOME"]))
    out = {"version": version.arn}
    try:
        for name, shift, seed in (("calm", False, 5), ("shifted", True, 6)):
            since, until = send_traffic(hosting, shift=shift, seed=seed)
            run = run_dag("monitor_model", {"since": since.isoformat(), "until": until.isoformat()})
            out[name] = {"state": str(run.state).split(".")[-1].lower(),
                         "tasks": {k: v.split(".")[-1].lower() for k, v in task_states(run).items()},
                         "summary": xcom(run, "monitor"), "drift_events": drift_events()}
    finally:
        hosting.stop_runtime()
    print(json.dumps(out, default=str))


if __name__ == "__main__":
    main()
