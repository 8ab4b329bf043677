"""Shadow replay before prod approval: the staging candidate answers a sample of captured prod traffic.

A uniform sample (reservoir, bounded memory) of the prod endpoint's captured invocations in the
``shadow_window_hours`` before the run is sent, as it came (content type, body), to the staging
endpoint through the ``sagemaker-runtime`` client; each answer is compared with the answer prod
gave, which the capture recorded. The approval evidence gets:

* ``shadow_disagreement_rate``: the share of records whose predicted class differs (a binary
  model's probability on either side of 0.5);
* ``shadow_mean_abs_score_diff``: the mean absolute difference of the probabilities;
* ``shadow_p50_latency_ms`` / ``shadow_p95_latency_ms``: the candidate's latency on this traffic;
* ``shadow_scores_prod`` / ``shadow_scores_candidate``: the two score distributions side by side
  (the share of records per tenth of [0, 1]).

A policy can require ``approval.prod.max_shadow_disagreement_rate``; without captured prod traffic
(the first deployment) there is nothing to replay, the evidence says so, and such a policy
rejects (it never approves blind).
"""

from __future__ import annotations

import json
import random
import time
from datetime import datetime, timedelta
from typing import Any

import numpy as np

DEFAULT_RECORDS = 200
DEFAULT_WINDOW_HOURS = 24


def sample_records(files: list[str], since: datetime, until: datetime, k: int, seed: int = 0) -> list[dict]:
    """A uniform sample of at most ``k`` capture records with input and output in ``[since, until)``."""
    from mlops.core.storage import to_path
    from mlops.ml.monitoring import _capture_time, _utc

    if k < 1:
        raise ValueError(f"the shadow sample must hold at least 1 record, got {k}")
    first, end = _capture_time(_utc(since)), _capture_time(_utc(until))
    chosen: list[dict] = []
    seen = 0
    pick = random.Random(seed)  # noqa: S311 - sampling, not security
    for uri in files:
        with to_path(uri).open("r", encoding="utf-8") as handle:
            for line in handle:
                try:
                    record = json.loads(line)
                    inside = first <= record["eventMetadata"]["inferenceTime"] < end
                    complete = {"endpointInput", "endpointOutput"} <= record["captureData"].keys()
                except (ValueError, KeyError, TypeError, AttributeError):
                    continue
                if not (inside and complete):
                    continue
                seen += 1
                if len(chosen) < k:
                    chosen.append(record)
                elif (slot := pick.randrange(seen)) < k:
                    chosen[slot] = record
    return chosen


def _histogram(scores: np.ndarray) -> list[float]:
    counts, _ = np.histogram(scores, bins=10, range=(0.0, 1.0))
    return [round(float(c) / max(len(scores), 1), 4) for c in counts]


def replay(client, endpoint_name: str, records: list[dict], response_keys: list[str] | None = None) -> dict[str, Any]:
    """Send each record's input to ``endpoint_name``; compare the answers with the captured ones."""
    from mlops.ml.monitoring import _decode, _probabilities

    keys = response_keys or ["predicted_label", "probability"]
    prod, candidate, latencies, failed = [], [], [], 0
    for record in records:
        request, answered = record["captureData"]["endpointInput"], record["captureData"]["endpointOutput"]
        accept = answered.get("observedContentType", "text/csv").split(";")[0].strip()
        started = time.perf_counter()
        try:
            response = client.invoke_endpoint(EndpointName=endpoint_name, Body=_decode(request).encode("utf-8"),
                                              ContentType=request.get("observedContentType", "text/csv"),
                                              Accept=accept)
            body = response["Body"].read().decode("utf-8")
        except Exception:  # the candidate refused what prod answered: a disagreement, counted
            failed += 1
            continue
        latencies.append((time.perf_counter() - started) * 1000)
        mine = _probabilities({"observedContentType": response.get("ContentType", accept), "data": body,
                               "encoding": "CSV"}, _count(answered, keys), keys)
        theirs = _probabilities(answered, len(mine), keys)
        for p, q in zip(theirs, mine):
            if p is not None and q is not None:
                prod.append(float(p))
                candidate.append(float(q))
    prod_scores, candidate_scores = np.array(prod), np.array(candidate)
    compared = len(prod_scores)
    disagreements = int(((prod_scores >= 0.5) != (candidate_scores >= 0.5)).sum()) + failed
    return {
        "records": len(records), "rows": compared, "failed": failed,
        "disagreement_rate": round(disagreements / max(compared + failed, 1), 6),
        "mean_abs_score_diff": round(float(np.abs(prod_scores - candidate_scores).mean()), 6) if compared else None,
        "latency_ms": {"p50": round(float(np.percentile(latencies, 50)), 3) if latencies else None,
                       "p95": round(float(np.percentile(latencies, 95)), 3) if latencies else None},
        "scores": {"edges": [round(i / 10, 1) for i in range(11)], "prod": _histogram(prod_scores),
                   "candidate": _histogram(candidate_scores)},
    }


def _count(side: dict[str, Any], keys: list[str]) -> int:
    """How many records an answer holds (CSV lines, or JSON predictions)."""
    from mlops.ml.monitoring import _csv_rows, _decode

    text = _decode(side)
    if side.get("observedContentType", "").split(";")[0].strip().lower() == "application/json":
        return len(json.loads(text).get("predictions", []))
    return len(_csv_rows(text))


def evidence_of(result: dict[str, Any]) -> dict[str, Any]:
    """The approval evidence of a replay (see the module docstring)."""
    if not result.get("rows") and not result.get("failed"):
        return {"shadow_replay": result.get("note") or "no captured prod traffic to replay"}
    return {
        "shadow_records": result["rows"],
        "shadow_disagreement_rate": result["disagreement_rate"],
        "shadow_mean_abs_score_diff": result["mean_abs_score_diff"],
        "shadow_p50_latency_ms": result["latency_ms"]["p50"],
        "shadow_p95_latency_ms": result["latency_ms"]["p95"],
        "shadow_scores_prod": " ".join(f"{v:.2f}" for v in result["scores"]["prod"]),
        "shadow_scores_candidate": " ".join(f"{v:.2f}" for v in result["scores"]["candidate"]),
    }


def replay_for_approval(use_case: str, prod_endpoint: str, candidate_endpoint: str, target, until: datetime,
                        backend=None) -> dict[str, Any]:
    """Replay a sample of ``prod_endpoint``'s capture in the window before ``until`` against
    ``candidate_endpoint`` (staging, in ``target``'s account); ``{"result", "evidence"}``."""
    from mlops.backends import get_backend
    from mlops.core.config import load_pipeline, stage_target
    from mlops.core.settings import get_settings
    from mlops.deploy.endpoint_options import data_capture_config
    from mlops.ml.monitoring import capture_files, capture_prefix
    from mlops.monitor.job import serving_baseline

    config = load_pipeline(use_case)
    prod_settings = config.section("approval").get("prod") or {}
    backend = backend or get_backend()
    records = int(prod_settings.get("shadow_records", DEFAULT_RECORDS))
    since = until - timedelta(hours=int(prod_settings.get("shadow_window_hours", DEFAULT_WINDOW_HOURS)))
    account = backend.stages.resolve(stage_target(config, "prod")).account_id
    serving = serving_baseline(backend.registry, account, until)
    if serving is None:
        result = {"records": 0, "rows": 0, "failed": 0, "note": "nothing serves prod yet: no traffic to replay"}
        return {"result": result, "evidence": evidence_of(result)}
    capture = data_capture_config(get_settings(), prod_endpoint, config.section("endpoint")["prod"])
    prefix = capture_prefix(capture, serving[1].get("endpoint_name") or prod_endpoint)
    sample = sample_records(capture_files(prefix, since, until), since, until, records)
    if not sample:
        result = {"records": 0, "rows": 0, "failed": 0,
                  "note": f"no captured prod traffic between {since.isoformat()} and {until.isoformat()}"}
        return {"result": result, "evidence": evidence_of(result)}
    client = backend.hosting_for(target).runtime_client()
    result = {**replay(client, candidate_endpoint, sample), "prod_version": serving[0].arn,
              "window": {"since": since.isoformat(), "until": until.isoformat()}}
    return {"result": result, "evidence": evidence_of(result)}
