"""Approvals as Airflow human-in-the-loop tasks, with a policy mode for unattended runs.

In ``manual`` mode the task waits in ``awaiting_input`` until someone answers on the UI's
required-actions page (or through the REST API, ``PATCH .../hitlDetails``); the body shows the
evidence and what the policy would decide, and the task pushes that recommendation as the XCom
``recommendation``, so an automated approver (the demo) can answer through the same REST API
as the ``policy`` account. In ``policy`` mode the thresholds from the pipeline config answer at
once. Either way the decision, the approver (``policy`` when the policy decided), the reason and
the evidence are written to the registry, and a rejection skips everything downstream so the
run ends cleanly.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from airflow.providers.standard.operators.hitl import ApprovalOperator

from mlops.ui.links import ModelReportLink, persist_report, report_url

MODES = ("policy", "manual")


def evaluate_policy(thresholds: dict[str, float], evidence: dict[str, Any]) -> tuple[bool, str]:
    """Check ``min_<name>`` / ``max_<name>`` thresholds against ``evidence[<name>]``.

    A threshold whose value is missing from the evidence fails, so a policy never approves
    blind. Returns (approved, reason).
    """
    if not thresholds:
        return False, "no policy thresholds configured"
    failures, passes = [], []
    for key, limit in sorted(thresholds.items()):
        bound, _, name = key.partition("_")
        if bound not in ("min", "max") or not name:
            raise ValueError(f"policy threshold {key!r} must be named min_<metric> or max_<metric>")
        value = evidence.get(name)
        if value is None:
            failures.append(f"{name} missing from the evidence")
        elif (bound == "min" and value < limit) or (bound == "max" and value > limit):
            failures.append(f"{name}={value:.4g} {'<' if bound == 'min' else '>'} {limit}")
        else:
            passes.append(f"{name}={value:.4g} {'>=' if bound == 'min' else '<='} {limit}")
    if failures:
        return False, "policy: " + "; ".join(failures)
    return True, "policy: " + "; ".join(passes)


def comparison_table(comparison: dict[str, Any] | None) -> str:
    """Markdown: the candidate next to the version serving the stage, on the same holdout."""
    if not comparison:
        return ""
    where = f" in account {comparison['account']}" if comparison.get("account") else ""
    serving = comparison.get("serving")
    if serving is None:
        return f"**Serving {comparison['stage']}:** {comparison.get('note') or 'nothing'}\n\n"
    title = (f"**Candidate vs the version serving {comparison['stage']}** (version {serving['version']}{where}, "
             "on the candidate's holdout)")
    names = sorted(set(comparison["candidate"]) | set(serving["metrics"]))
    lines = [title, "", f"| metric | candidate | {comparison['stage']} v{serving['version']} |", "|---|---|---|"]
    for name in names:
        shown = [comparison["candidate"].get(name), serving["metrics"].get(name)]
        lines.append(f"| {name} | " + " | ".join("n/a" if v is None else f"{v:.4f}" if isinstance(v, float)
                                                 else str(v) for v in shown) + " |")
    note = f"\n\n{comparison['note']}" if comparison.get("note") else ""
    return "\n".join(lines) + note + "\n\n"


def _markdown_table(evidence: dict[str, Any]) -> str:
    lines = ["| evidence | value |", "|---|---|"]
    for key, value in sorted(evidence.items()):
        shown = f"{value:.4f}" if isinstance(value, float) else str(value)
        lines.append(f"| {key} | {shown} |")
    return "\n".join(lines)


class RegistryApprovalOperator(ApprovalOperator):
    """Approve or reject a model package, by a person (HITL) or by the configured policy.

    :param model_package_arn: the version to decide on (templated).
    :param evidence: numbers the decision rests on, e.g. holdout metrics (templated).
    :param thresholds: policy thresholds ``{min_<metric>: x, max_<metric>: y}``.
    :param mode: ``policy`` or ``manual`` (templated, usually from a Param).
    :param report_uri: link shown in the approval body (templated).
    :param comparison: the candidate next to the version serving prod on the same holdout
        (:func:`mlops.deploy.flow.compare_with_serving`; templated), shown in the body and recorded
        with the decision's evidence.
    """

    template_fields: Sequence[str] = (*ApprovalOperator.template_fields, "model_package_arn", "evidence",
                                      "thresholds", "mode", "report_uri", "comparison")
    operator_extra_links = (ModelReportLink(),)
    policy_name = "policy"
    stage = "model"  # what the decision is about, in notifications

    def __init__(self, *, model_package_arn: str, evidence: dict[str, Any] | str,
                 thresholds: dict[str, float], mode: str = "policy", report_uri: str = "",
                 comparison: dict[str, Any] | str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("ignore_downstream_trigger_rules", False)
        super().__init__(**kwargs)
        self.model_package_arn = model_package_arn
        self.evidence = evidence
        self.thresholds = thresholds
        self.mode = mode
        self.report_uri = report_uri
        self.comparison = comparison

    def _body(self, recommendation: tuple[bool, str]) -> str:
        approved, reason = recommendation
        report = f"[open the model report]({report_url(self.report_uri)})" if self.report_uri else "n/a"
        return (
            f"**Model package:** `{self.model_package_arn}`\n\n"
            f"**Report:** {report}\n\n{_markdown_table(dict(self.evidence))}\n\n"
            f"{comparison_table(self.comparison if isinstance(self.comparison, dict) else None)}"
            f"**The policy recommends:** {'Approve' if approved else 'Reject'} ({reason}); thresholds "
            f"`{self.thresholds}`"
        )

    def recommendation(self) -> tuple[bool, str]:
        """What the policy decides on this evidence: ``(approved, reason)``."""
        return evaluate_policy(self.thresholds, dict(self.evidence))

    def execute(self, context):
        if self.mode not in MODES:
            raise ValueError(f"approval mode {self.mode!r} is not one of {', '.join(MODES)}")
        recommended = self.recommendation()
        self.body = self._body(recommended)
        persist_report(context, self.report_uri)
        earlier = self.earlier_decision()
        if earlier is not None:
            return self.execute_complete(context, earlier)
        if self.mode == "manual":
            context["ti"].xcom_push(key="recommendation", value={"approved": recommended[0],
                                                                 "reason": recommended[1]})
            self.notify("approval_waiting", context, f"{self.stage} approval of {self.model_package_arn} is waiting "
                        f"on the Required Actions page; the policy recommends "
                        f"{'Approve' if recommended[0] else 'Reject'} ({recommended[1]})")
            return super().execute(context)
        approved, reason = recommended
        self.log.info("policy decision: %s (%s)", "Approve" if approved else "Reject", reason)
        event = {
            "chosen_options": [self.APPROVE if approved else self.REJECT],
            "params_input": {},
            "responded_at": datetime.now(UTC),
            "responded_by_user": {"id": self.policy_name, "name": f"{self.policy_name} ({reason})"},
            "policy_reason": reason,
        }
        return self.execute_complete(context, event)

    def earlier_decision(self) -> dict[str, Any] | None:
        """The answer event of a decision made before this task asked (recorded already), or
        None to ask. Here always None; see :class:`ModelApprovalOperator`."""
        return None

    def execute_complete(self, context, event: dict[str, Any]):
        # Record first: on Reject the base class skips downstream by raising, ending this method.
        if "error" not in event:
            self.validate_chosen_options(event["chosen_options"])
            approved = event["chosen_options"][:1] == [self.APPROVE]
            recorded = event.get("recorded_decision")
            if recorded is not None:
                approver, reason = recorded["approver"], recorded["reason"]
                self.log.info("%s was %s already by %s (%s): not asking again, recording nothing",
                              self.model_package_arn, "approved" if approved else "rejected", approver, reason)
            else:
                approver, reason = self.answered_by(event, approved)
                self.record(approved, approver, reason)
                self.notify("approval_decision", context, f"{self.stage} approval of {self.model_package_arn}: "
                            f"{'approved' if approved else 'rejected'} by {approver} ({reason})",
                            approved=approved, approver=approver)
            context["ti"].xcom_push(key="decision", value={
                "approved": approved, "approver": approver, "reason": reason, "arn": self.model_package_arn,
                "decided_before": recorded is not None,
            })
        return super().execute_complete(context=context, event=event)

    def notify(self, event: str, context, message: str, **detail: Any) -> None:
        from mlops.notifications import send

        send(event, context, message, model_version=self.model_package_arn, report_uri=self.report_uri,
             detail={"stage": self.stage, "evidence": dict(self.evidence), **detail})

    def answered_by(self, event: dict[str, Any], approved: bool) -> tuple[str, str]:
        """``(approver, reason)`` of an answer: the policy's own reason when the policy decided
        (in policy mode, or the ``policy`` account answering as it recommends), else the person."""
        user = event.get("responded_by_user") or {}
        if event.get("policy_reason"):
            return self.policy_name, event["policy_reason"]
        if self.policy_name in (user.get("id"), user.get("name")):
            recommended, reason = self.recommendation()
            if recommended == approved:
                return self.policy_name, reason
            return self.policy_name, f"{'approved' if approved else 'rejected'} by the policy account against " \
                                     f"the policy's recommendation ({reason})"
        approver = str(user.get("name") or user.get("id") or "unknown")
        return approver, ("approved" if approved else "rejected") + f" in Airflow by {approver}"

    def record(self, approved: bool, approver: str, reason: str) -> None:
        from mlops.backends import get_backend

        registry = get_backend().registry
        evidence = {**dict(self.evidence), "report_uri": self.report_uri, "mode": self.mode}
        if isinstance(self.comparison, dict):
            evidence["compared_with_serving"] = self.comparison
        # A concurrent identical decision that landed first is kept; the registry records no second one.
        if approved:
            registry.approve(self.model_package_arn, approver, reason, evidence)
        else:
            registry.reject(self.model_package_arn, approver, reason, evidence)
        self.log.info("%s %s by %s", "approved" if approved else "rejected", self.model_package_arn, approver)


class ModelApprovalOperator(RegistryApprovalOperator):
    """Model approval after registration: decides the package's ModelApprovalStatus.

    A version that is Approved or Rejected already (registration reused an earlier run's
    version) is not asked about again: the registry's decision (approver, reason) is the
    answer. Approved lets the run go on (the approved-model asset is announced again);
    Rejected skips downstream like any rejection. A pending version is asked about as usual.
    """

    def earlier_decision(self) -> dict[str, Any] | None:
        from mlops.backends import get_backend
        from mlops.backends.base import APPROVED, PENDING

        version = get_backend().registry.get(self.model_package_arn)
        if version.status == PENDING:
            return None
        approver = version.approver or "registry"
        return {
            "chosen_options": [self.APPROVE if version.status == APPROVED else self.REJECT],
            "params_input": {},
            "responded_at": datetime.now(UTC),
            "responded_by_user": {"id": approver, "name": approver},
            "recorded_decision": {"approver": approver, "reason": version.approval_reason or version.status},
        }


class ProdApprovalOperator(RegistryApprovalOperator):
    """Prod approval after staging tests: records the decision and the staging evidence.

    Does not change the package status (it is already Approved); a rejection is recorded in the
    deployment history and skips the prod deployment.

    :param endpoint_name: the prod endpoint the promotion is for.
    :param target: prod's :class:`~mlops.backends.base.StageTarget` dict (templated): the account
        a rejection is recorded for. None: the project's own account.
    """

    stage = "prod"

    template_fields: Sequence[str] = (*RegistryApprovalOperator.template_fields, "target")

    def __init__(self, *, endpoint_name: str, target: dict[str, Any] | str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.endpoint_name = endpoint_name
        self.target = target

    def record(self, approved: bool, approver: str, reason: str) -> None:
        from mlops.backends import get_backend
        from mlops.backends.base import Deployment

        if approved:
            self.log.info("prod deployment of %s approved by %s: %s", self.model_package_arn, approver, reason)
            return
        backend = get_backend()
        backend.registry.record_deployment(Deployment(
            arn=self.model_package_arn, stage="prod", endpoint_name=backend.hosting.name(self.endpoint_name),
            endpoint_config="",
            outcome="rejected", deployed_at=datetime.now(UTC).isoformat(),
            detail={"approver": approver, "reason": reason, "evidence": dict(self.evidence),
                    **({"compared_with_serving": self.comparison} if isinstance(self.comparison, dict) else {})},
            account=(self.target or {}).get("account_id", ""),
        ))
        self.log.info("prod deployment of %s rejected by %s: %s", self.model_package_arn, approver, reason)
