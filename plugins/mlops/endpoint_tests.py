"""Endpoint tests through the boto3 ``sagemaker-runtime`` client: the same code tests a
SageMaker endpoint and the local runtime (only the client's ``endpoint_url`` differs)."""

from __future__ import annotations

import csv
import io
import json
import time
from typing import Any


def _csv_body(rows: list[list[Any]]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue()


def _check(name: str, passed: bool, **detail: Any) -> dict[str, Any]:
    return {"name": name, "passed": bool(passed), "detail": detail}


def load_golden(golden_uri: str):
    """(feature names, rows as lists, expected probabilities) from a golden Parquet file."""
    import pandas as pd

    from mlops.storage import to_path

    with to_path(golden_uri).open("rb") as handle:
        golden = pd.read_parquet(handle)
    features = [c for c in golden.columns if c != "probability"]
    rows = golden[features].astype(object).where(golden[features].notna(), "").values.tolist()
    return features, rows, golden["probability"].to_numpy(dtype=float)


def verify_golden(client, endpoint_name: str, golden_uri: str, tolerance: float = 1e-6) -> dict[str, Any]:
    """The endpoint answers the golden rows with the offline probabilities; raise otherwise."""
    import numpy as np

    _, rows, expected = load_golden(golden_uri)
    response = client.invoke_endpoint(EndpointName=endpoint_name, Body=_csv_body(rows).encode(),
                                      ContentType="text/csv", Accept="text/csv")
    lines = [line for line in response["Body"].read().decode().splitlines() if line]
    got = np.array([float(next(csv.reader([line]))[-1]) for line in lines])
    if len(got) != len(expected) or float(np.max(np.abs(got - expected))) > tolerance:
        raise RuntimeError(f"endpoint {endpoint_name} does not reproduce the golden rows "
                           f"({len(got)} answers for {len(expected)} rows)")
    return {"endpoint": endpoint_name, "golden_rows": len(rows), "max_abs_diff": float(np.max(np.abs(got - expected)))}


def run_endpoint_tests(client, endpoint_name: str, golden_uri: str, requests: int = 50,
                       tolerance: float = 1e-6) -> dict[str, Any]:
    """Run every check; return ``{"passed", "checks", "latency_ms"}`` (never raises on a failed check).

    ``golden_uri``: Parquet with the model's feature columns plus ``probability`` (offline
    prediction of the positive class) for a few rows.
    """
    import numpy as np
    from botocore.exceptions import ClientError

    features, rows, expected = load_golden(golden_uri)
    checks = []

    def invoke(body: str, content_type: str, accept: str) -> str:
        response = client.invoke_endpoint(
            EndpointName=endpoint_name, Body=body.encode(), ContentType=content_type, Accept=accept
        )
        return response["Body"].read().decode()

    # contract: text/csv, one line per record, fields predicted_label,probability
    answer = invoke(_csv_body(rows), "text/csv", "text/csv")
    lines = [line for line in answer.splitlines() if line]
    csv_probability = np.array([float(next(csv.reader([line]))[-1]) for line in lines]) if lines else np.array([])
    checks.append(_check("csv_contract", len(lines) == len(rows), records=len(rows), lines=len(lines)))

    # contract: application/json with named features
    payload = json.dumps({"instances": [dict(zip(features, r)) for r in rows]})
    predictions = json.loads(invoke(payload, "application/json", "application/json"))["predictions"]
    json_probability = np.array([p["probability"] for p in predictions], dtype=float)
    checks.append(_check("json_contract", len(predictions) == len(rows), records=len(rows),
                         predictions=len(predictions)))

    # golden rows: online equals offline, and CSV equals JSON (batch-vs-online parity)
    if len(csv_probability) == len(expected):
        worst = float(np.max(np.abs(csv_probability - expected))) if len(expected) else 0.0
        checks.append(_check("golden_rows", worst <= tolerance, max_abs_diff=worst, tolerance=tolerance))
    if len(json_probability) == len(csv_probability):
        worst = float(np.max(np.abs(json_probability - csv_probability))) if len(rows) else 0.0
        checks.append(_check("csv_json_parity", worst <= tolerance, max_abs_diff=worst))

    # malformed payload: a 4xx, and the endpoint keeps serving
    try:
        invoke("this,is,not,a,record\n", "text/csv", "text/csv")
        checks.append(_check("malformed_payload_4xx", False, status=200))
    except ClientError as err:
        status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or err.response.get(
            "OriginalStatusCode"
        )
        checks.append(_check("malformed_payload_4xx", status is not None and 400 <= int(status) < 500,
                             status=status))
    still = invoke(_csv_body(rows[:1]), "text/csv", "text/csv")
    checks.append(_check("serves_after_error", bool(still.strip())))

    # latency over N single-record requests
    timings = []
    one = _csv_body(rows[:1])
    for _ in range(requests):
        start = time.perf_counter()
        invoke(one, "text/csv", "text/csv")
        timings.append((time.perf_counter() - start) * 1000)
    latency = {
        "requests": requests,
        "p50": float(np.percentile(timings, 50)),
        "p95": float(np.percentile(timings, 95)),
    }
    checks.append(_check("latency_measured", requests > 0, **latency))
    return {"passed": all(c["passed"] for c in checks), "checks": checks, "latency_ms": latency}
