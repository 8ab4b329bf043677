"""Endpoint tests through the boto3 ``sagemaker-runtime`` client: the same code tests a
SageMaker endpoint and the local runtime (only the client's ``endpoint_url`` differs).

Checks (each one a ``{"name", "passed", "detail"}`` entry of the report):

``csv_contract``           text/csv in and out: one answer line per record.
``json_contract``          application/json in and out: one prediction per instance.
``golden_rows``            the CSV answers equal the model's offline probabilities within tolerance.
``csv_json_parity``        the JSON answers equal the CSV answers.
``batch_online_parity``    each golden row sent alone (online) is answered as in the batch request.
``malformed_payload_4xx``  a record with the wrong number of fields is refused by the model as a
                           client error: SageMaker answers a ``ModelError`` (HTTP 424) whose
                           ``OriginalStatusCode``, the container's own status, is 4xx, not 5xx.
                           Any other error (a ``ValidationError`` naming the endpoint, a 413)
                           is not the model refusing the record, and fails the check.
``serves_after_error``     the endpoint still answers after that.
``latency_measured``       p50/p95/p99 over N single-record requests.
"""

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


def _last_fields(answer: str) -> list[float]:
    """The last field (the probability) of every CSV answer line."""
    return [float(next(csv.reader([line]))[-1]) for line in answer.splitlines() if line]


def load_golden(golden_uri: str):
    """(feature names, rows as lists, expected probabilities) from a golden Parquet file."""
    import pandas as pd

    from mlops.core.storage import to_path

    with to_path(golden_uri).open("rb") as handle:
        golden = pd.read_parquet(handle)
    features = [c for c in golden.columns if c != "probability"]
    rows = golden[features].astype(object).where(golden[features].notna(), "").values.tolist()
    return features, rows, golden["probability"].to_numpy(dtype=float)


def model_status(error) -> int | None:
    """The model's own status in a SageMaker ``ModelError`` (its ``OriginalStatusCode``; SageMaker
    itself answers 424), or None when the error is not a ``ModelError``."""
    response = getattr(error, "response", {}) or {}
    if response.get("Error", {}).get("Code") != "ModelError":
        return None
    status = response.get("OriginalStatusCode")
    return int(status) if status is not None else None


def verify_golden(client, endpoint_name: str, golden_uri: str, tolerance: float = 1e-6) -> dict[str, Any]:
    """The endpoint answers the golden rows with the offline probabilities; raise otherwise."""
    import numpy as np

    _, rows, expected = load_golden(golden_uri)
    response = client.invoke_endpoint(EndpointName=endpoint_name, Body=_csv_body(rows).encode(),
                                      ContentType="text/csv", Accept="text/csv")
    got = np.array(_last_fields(response["Body"].read().decode()))
    worst = float(np.max(np.abs(got - expected))) if len(got) == len(expected) and len(got) else None
    if worst is None or worst > tolerance:
        raise RuntimeError(f"endpoint {endpoint_name} does not reproduce the golden rows "
                           f"({len(got)} answers for {len(expected)} rows, max difference {worst})")
    return {"endpoint": endpoint_name, "golden_rows": len(rows), "max_abs_diff": worst}


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

    def worst_difference(a, b) -> float:
        return float(np.max(np.abs(np.asarray(a) - np.asarray(b)))) if len(a) else 0.0

    # contract: text/csv, one line per record, fields predicted_label,probability
    csv_probability = _last_fields(invoke(_csv_body(rows), "text/csv", "text/csv"))
    checks.append(_check("csv_contract", len(csv_probability) == len(rows), records=len(rows),
                         lines=len(csv_probability)))

    # contract: application/json with named features
    payload = json.dumps({"instances": [dict(zip(features, r)) for r in rows]})
    predictions = json.loads(invoke(payload, "application/json", "application/json"))["predictions"]
    json_probability = [float(p["probability"]) for p in predictions]
    checks.append(_check("json_contract", len(predictions) == len(rows), records=len(rows),
                         predictions=len(predictions)))

    # golden rows: online equals offline; CSV equals JSON; one row alone equals the same row in a batch
    if len(csv_probability) == len(expected):
        worst = worst_difference(csv_probability, expected)
        checks.append(_check("golden_rows", worst <= tolerance, max_abs_diff=worst, tolerance=tolerance))
    if len(json_probability) == len(csv_probability):
        worst = worst_difference(json_probability, csv_probability)
        checks.append(_check("csv_json_parity", worst <= tolerance, max_abs_diff=worst))
    online = [value for row in rows for value in _last_fields(invoke(_csv_body([row]), "text/csv", "text/csv"))]
    if len(online) == len(csv_probability):
        worst = worst_difference(online, csv_probability)
        checks.append(_check("batch_online_parity", worst <= tolerance, max_abs_diff=worst, records=len(rows)))
    else:
        checks.append(_check("batch_online_parity", False, online=len(online), batch=len(csv_probability)))

    # malformed payload: a 4xx from the container, and the endpoint keeps serving
    try:
        invoke("this,is,not,a,record\n", "text/csv", "text/csv")
        checks.append(_check("malformed_payload_4xx", False, status=200))
    except ClientError as err:
        status = model_status(err)
        checks.append(_check("malformed_payload_4xx", status is not None and 400 <= status < 500, status=status,
                             http_status=err.response.get("ResponseMetadata", {}).get("HTTPStatusCode"),
                             error=err.response.get("Error", {}).get("Code")))
    still = invoke(_csv_body(rows[:1]), "text/csv", "text/csv")
    checks.append(_check("serves_after_error", bool(still.strip())))

    # latency over N single-record requests
    timings = []
    one = _csv_body(rows[:1])
    for _ in range(requests):
        start = time.perf_counter()
        invoke(one, "text/csv", "text/csv")
        timings.append((time.perf_counter() - start) * 1000)
    latency = {"requests": requests}
    if timings:
        latency.update({q: float(np.percentile(timings, int(q[1:]))) for q in ("p50", "p95", "p99")})
    checks.append(_check("latency_measured", requests > 0, **latency))
    return {"passed": all(c["passed"] for c in checks), "checks": checks, "latency_ms": latency}
