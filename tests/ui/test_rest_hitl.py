"""The REST API flow a platform team scripts: trigger a run with conf, answer the
human-in-the-loop approval with ``PATCH .../hitlDetails``, read the outcome.

Verified how: a real Airflow (the project's stack on PostgreSQL) on loopback with this project's DAGs, the
documented token flow (``POST /auth/token``), the local backend doing the work.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.ui


def test_a_model_approved_through_the_rest_api_is_recorded_with_the_approver(airflow):
    airflow.unpause("train_model")
    older_partition = airflow.partitions[0]  # the browser's runs train on the newest one
    run_id = airflow.trigger("train_model", {"approval_mode": "manual", "n_trials": 2,
                                             "partition_uri": older_partition})
    airflow.wait_until_parked("train_model", run_id, "approve_model")
    detail = airflow.get(f"/dags/train_model/dagRuns/{run_id}/taskInstances/approve_model/-1/hitlDetails")
    assert detail["options"] == ["Approve", "Reject"]
    assert "holdout_roc_auc" in detail["body"]
    # the model report opens from the approval page: the API server serves it (the project's plugin)
    import re

    import httpx

    (link,) = re.findall(r"\[open the model report\]\((http[^)]+)\)", detail["body"])
    assert link.startswith(f"{airflow.url}/mlops/reports/training/churn/")
    report = httpx.get(link, timeout=30)
    assert report.status_code == 200 and report.headers["content-type"].startswith("text/html")
    assert "<html" in report.text.lower() and "holdout" in report.text.lower()
    assert "nothing serves prod yet in account 222222222222" in detail["body"]  # the candidate next to prod

    response = airflow.request(
        "PATCH", f"/dags/train_model/dagRuns/{run_id}/taskInstances/approve_model/-1/hitlDetails",
        json={"chosen_options": ["Approve"], "params_input": {}},
    )
    assert response.status_code == 200, response.text
    assert response.json()["responded_by"]["name"] == "admin"

    airflow.wait_for(lambda: airflow.run("train_model", run_id)["state"] in ("success", "failed"), 300, "run end")
    assert airflow.run("train_model", run_id)["state"] == "success"
    decision = airflow.get(f"/dags/train_model/dagRuns/{run_id}/taskInstances/approve_model/xcomEntries/decision")
    assert decision["value"]["approved"] is True
    assert decision["value"]["approver"] == "admin"
