"""What the stages of a deploy run take from the pipeline config and from each other
(``dags/deploy_model.py`` wires them).

* :func:`endpoint_settings`: staging's serverless config, prod's instances, data capture,
  blue/green deployment config and rollback alarms, and the endpoint checks' settings, all
  checked against SageMaker's limits before anything is deployed;
* :func:`prod_evidence`: the staging check results the prod approval shows (and the policy reads);
* :func:`prod_approval_settings`: how prod is approved, and the policy's thresholds.
"""

from __future__ import annotations

from typing import Any


def endpoint_settings(config, settings, prod_endpoint: str) -> dict[str, Any]:
    """The ``endpoint`` section of ``config`` as the deploy tasks take it.

    :param settings: the project :class:`~mlops.core.settings.Settings` (data capture destination).
    :param prod_endpoint: the prod endpoint's logical name (alarms and capture are named for it).
    :raises ~mlops.backends.limits.LimitError: a setting SageMaker would reject.
    """
    from mlops.backends.limits import serverless_config
    from mlops.deploy.endpoint_options import instance_count, prod_endpoint_options, rollback_alarm_requests

    endpoint = config.section("endpoint")
    staging = endpoint["staging"]
    return {
        "serverless": serverless_config(staging["memory_size_mb"], staging["max_concurrency"],
                                        staging.get("provisioned_concurrency")),
        "instance_type": endpoint["prod"]["instance_type"],
        "instance_count": instance_count(endpoint["prod"]),
        "requests": endpoint["test"]["requests"],
        "tolerance": endpoint["test"]["tolerance"],
        # data_capture_config + deployment_config (blue/green, alarm rollback) for prod
        **prod_endpoint_options(settings, prod_endpoint, endpoint["prod"]),
        "rollback_alarms": rollback_alarm_requests(prod_endpoint, endpoint["prod"]),
    }


def prod_evidence(report: dict[str, Any], shadow: dict[str, Any] | None = None) -> dict[str, Any]:
    """The staging check results (:func:`mlops.deploy.endpoint_checks.run_endpoint_tests`) and the
    shadow replay (:func:`mlops.monitor.shadow_replay.replay_for_approval`) as the prod approval's
    evidence: checks passed, p50/p95 latency, one entry per check, the replay's disagreement."""
    return {
        **((shadow or {}).get("evidence") or {}),
        "checks_passed": float(report["passed"]),
        "p50_latency_ms": report["latency_ms"]["p50"],
        "p95_latency_ms": report["latency_ms"]["p95"],
        **{f"check_{c['name']}": "passed" if c["passed"] else f"FAILED {c['detail']}" for c in report["checks"]},
    }


def prod_approval_settings(config, params: dict[str, Any]) -> dict[str, Any]:
    """``{"mode", "thresholds"}`` of the prod approval: the run's Params (``approval_mode``,
    ``max_p95_latency_ms``) over the pipeline config's ``approval`` section; every check must pass."""
    approval = config.section("approval")
    thresholds = {"min_checks_passed": 1.0, **{key: value for key, value in (approval["prod"] or {}).items()
                                               if key.startswith(("min_", "max_"))}}
    if params.get("max_p95_latency_ms") is not None:
        thresholds["max_p95_latency_ms"] = params["max_p95_latency_ms"]
    return {"mode": params.get("approval_mode") or approval["mode"], "thresholds": thresholds}
