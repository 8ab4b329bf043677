"""SageMaker steps: tuning, training, model registry, endpoints, Autopilot, batch transform.

Why one module of this length: the amazon provider's layout, one module per AWS service; it
holds nine operators, each of them short.

Each operator is thin: it builds the request, makes one call on a port of the configured
backend (SageMaker on ``aws``, the local twin on ``local``) and returns a small JSON dict for
XCom. Names come from :func:`mlops.core.naming.run_name`, so a retry reuses the same job name.

Class names say what the step does, never ``SageMaker...Operator``: these operators take other
arguments than the amazon provider's (``airflow.providers.amazon.aws.operators.sagemaker``) and
run on this machine by default, and a DAG may import both. ``tests/unit/test_operator_names.py``
keeps it so.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator

from mlops.core.naming import run_name
from mlops.ui.links import ModelReportLink, ResourceLink, persist, persist_report


def _backend():
    from mlops.backends import get_backend

    return get_backend()


def _name(context, step: str) -> str:
    return run_name(context["dag"].dag_id, context["run_id"], step)


def _default_deferrable() -> bool:
    from airflow.configuration import conf

    return conf.getboolean("operators", "default_deferrable", fallback=False)


def _defer(operator: BaseOperator, handle, **kwargs: Any) -> None:
    """Defer ``operator`` to the trigger ``handle`` carries; ``execute_complete`` gets ``handle`` back
    (as a dict) with ``kwargs``."""
    from airflow.sdk.module_loading import import_string

    trigger = import_string(handle.trigger["classpath"])(**handle.trigger["kwargs"])
    operator.defer(trigger=trigger, method_name="execute_complete", kwargs={"handle": handle.to_dict(), **kwargs})


class _JobOperator(BaseOperator):
    """Runs one long-running port job: submit, then defer (or wait), then collect.

    Subclasses say which port (``port_name``) and how to ``submit``. A retry submits under the
    same name, so the port describes first and re-attaches instead of launching a second job.

    Killed (marked failed, cleared, timed out: Airflow calls :meth:`on_kill`), the task stops
    its job: ``Stop*`` on AWS, the worker processes of a local twin. A deferred task's job is
    stopped by its trigger's ``on_kill`` instead (:mod:`mlops.triggers`).

    :param deferrable: free the worker slot while AWS works (the provider's triggers wait).
    """

    port_name: str = ""
    operator_extra_links = (ResourceLink(),)

    def __init__(self, *, deferrable: bool | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.deferrable = _default_deferrable() if deferrable is None else deferrable
        self._running: tuple[Any, Any] | None = None  # (port, handle or None) while execute works

    def port(self):
        return getattr(_backend(), self.port_name)

    def submit(self, port, context):
        raise NotImplementedError

    def on_kill(self) -> None:
        """Stop the job this task started or attached to (nothing once it finished or deferred)."""
        if self._running is None:
            return
        port, handle = self._running
        self._running = None
        self.log.warning("task killed: stopping %s", f"{handle.kind} job {handle.name}" if handle else "its work")
        port.stop(handle)

    def execute(self, context) -> dict[str, Any]:
        from mlops.backends.base import JobHandle

        port = self.port()
        self._running = (port, None)
        handle = self.submit(port, context)
        self._running = (port, handle) if not handle.done else None
        if not handle.done:
            if self.deferrable:
                self._running = None  # from here the trigger waits, and stops the job if killed
                _defer(self, handle)
            handle = port.wait(handle)
            self._running = None
        result = port.collect(JobHandle.from_dict(handle.to_dict()))
        self.log_result(result)
        self.persist_link(context, handle.kind, handle.name, result)
        return result

    def execute_complete(self, context, event: dict[str, Any] | None = None, handle: dict | None = None):
        from mlops.backends.base import JobHandle

        event = event or {}
        if event.get("status") not in (None, "success"):
            raise RuntimeError(f"{handle['kind']} {handle['name']} failed: {event.get('message', event)}")
        result = self.port().collect(JobHandle(**{**handle, "done": True}))
        self.log_result(result)
        self.persist_link(context, handle["kind"], handle["name"], result)
        return result

    def log_result(self, result: dict[str, Any]) -> None:
        pass

    def persist_link(self, context, kind: str, name: str, result: dict[str, Any]) -> None:
        local = result.get("model_uri") or result.get("history_uri")
        persist(context, _backend().resource_url(kind, name, local))


class CrossValidatedTuningOperator(_JobOperator):
    """Hyperparameter tuning where every trial is scored by k-fold cross-validation.

    :param training_data: a :class:`~mlops.backends.base.TrainingData` dict (templated).
    :param search_space: ``{name: {type, low, high, log, choices}}`` from the pipeline config.
    :param n_trials: trial budget.
    :param output_uri: where the tuning history goes (templated).
    """

    template_fields: Sequence[str] = ("training_data", "search_space", "output_uri", "n_trials")
    port_name = "tuner"

    def __init__(self, *, training_data: dict[str, Any] | str, search_space: dict[str, Any] | str,
                 n_trials: int | str, output_uri: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.training_data = training_data
        self.search_space = search_space
        self.n_trials = n_trials
        self.output_uri = output_uri

    def submit(self, port, context):
        from mlops.backends.base import TrainingData

        return port.submit(
            job_name=_name(context, "tune"),
            data=TrainingData.from_dict(self.training_data),
            search_space=dict(self.search_space),
            n_trials=int(self.n_trials),
            output_uri=self.output_uri,
        )

    def log_result(self, result: dict[str, Any]) -> None:
        best = result["best"]
        self.log.info("best mean %s=%.4f ± %.4f with %s", result["objective"], best["mean"], best["std"],
                      best["hyperparameters"])


class TrainModelOperator(_JobOperator):
    """Fit one model on all training rows with fixed hyperparameters (the refit).

    :param training_data: a :class:`~mlops.backends.base.TrainingData` dict (templated).
    :param hyperparameters: hyperparameters, e.g. the tuner's best (templated).
    :param output_uri: model output prefix (templated).
    """

    template_fields: Sequence[str] = ("training_data", "hyperparameters", "output_uri")
    port_name = "trainer"

    def __init__(self, *, training_data: dict[str, Any] | str, hyperparameters: dict[str, Any] | str,
                 output_uri: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.training_data = training_data
        self.hyperparameters = hyperparameters
        self.output_uri = output_uri

    def submit(self, port, context):
        from mlops.backends.base import TrainingData

        return port.submit(
            job_name=_name(context, "refit"),
            data=TrainingData.from_dict(self.training_data),
            hyperparameters=dict(self.hyperparameters),
            output_uri=self.output_uri,
        )

    def log_result(self, result: dict[str, Any]) -> None:
        self.log.info("model %s sha256=%s", result["model_uri"], result["sha256"])


class RegisterModelVersionOperator(BaseOperator):
    """Register a model version (``PendingManualApproval``) in a model package group.

    A version already registered with the same dataset digest, code version and hyperparameters
    is reused instead (see :meth:`~mlops.backends.base.Registry.register`); the result (the
    :class:`~mlops.backends.base.ModelVersion` dict) says which with ``"reused": true/false``.

    :param group: model package group, created if missing.
    :param model: a :class:`~mlops.backends.base.TrainedModel` dict (templated).
    :param metrics: metrics to record with the version (templated).
    :param metadata: lineage: dataset digest, validation id, hyperparameters, ... (templated).
    """

    template_fields: Sequence[str] = ("group", "model", "metrics", "metadata")
    operator_extra_links = (ResourceLink(), ModelReportLink())

    def __init__(self, *, group: str, model: dict[str, Any] | str, metrics: dict[str, Any] | str,
                 metadata: dict[str, Any] | str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.group = group
        self.model = model
        self.metrics = metrics
        self.metadata = metadata

    def execute(self, context) -> dict[str, Any]:
        registry = _backend().registry
        registry.ensure_group(self.group)
        metadata = {**dict(self.metadata), "dag_id": context["dag"].dag_id, "run_id": context["run_id"]}
        version = registry.register(
            self.group, self.model["model_uri"], self.model["sha256"], dict(self.metrics), metadata
        )
        if version.reused:
            from mlops.backends.base import RegistrationIdentity

            self.log.info("version %s already registered for %s: reusing it (%s, %s)", version.version,
                          RegistrationIdentity.from_metadata(metadata), version.arn, version.status)
        else:
            self.log.info("registered %s (%s)", version.arn, version.status)
        persist(context, _backend().resource_url("model-package", version.group, metadata.get("report_uri")))
        persist_report(context, metadata.get("report_uri"))
        return version.to_dict()  # with "reused"


class DeployModelVersionOperator(BaseOperator):
    """Deploy an Approved model version to a stage's endpoint (create, or update in place).

    Serverless config for staging, instance config for prod (with data capture and a blue/green
    deployment config with alarm rollback). After the call the endpoint must run the new
    endpoint config: a silent rollback fails the task without retries. Every attempt is
    recorded in the registry's deployment history (:mod:`mlops.deploy.flow`).

    :param stage: ``staging`` or ``prod``.
    :param package: the :class:`~mlops.backends.base.ModelVersion` dict to deploy (templated).
    :param endpoint_name: endpoint name (templated).
    :param serverless: ``{"MemorySizeInMB", "MaxConcurrency"}`` for a serverless endpoint.
    :param instance_type: instance type for an instance-backed endpoint.
    :param data_capture_config: SageMaker ``DataCaptureConfig`` (templated).
    :param deployment_config: ``UpdateEndpoint`` ``DeploymentConfig`` (templated).
    :param target: the stage's :class:`~mlops.backends.base.StageTarget` dict (templated; from
        :func:`mlops.deploy.flow.prepare_stages`): the endpoint is made in that account, with its
        connection and execution role, and recorded with it. None: the project's own account.
    :param deferrable: free the worker slot while SageMaker creates or updates the endpoint.
    """

    template_fields: Sequence[str] = ("package", "endpoint_name", "serverless", "instance_type",
                                      "initial_instance_count", "data_capture_config", "deployment_config", "target")
    operator_extra_links = (ResourceLink(),)

    def __init__(self, *, stage: str, package: dict[str, Any] | str, endpoint_name: str,
                 serverless: dict[str, Any] | str | None = None, instance_type: str | None = None,
                 initial_instance_count: int | str = 1, data_capture_config: dict[str, Any] | str | None = None,
                 deployment_config: dict[str, Any] | str | None = None, target: dict[str, Any] | str | None = None,
                 deferrable: bool | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if stage not in ("staging", "prod"):
            raise ValueError(f"stage {stage!r} is not staging or prod")
        self.stage = stage
        self.package = package
        self.endpoint_name = endpoint_name
        self.serverless = serverless
        self.instance_type = instance_type
        self.initial_instance_count = initial_instance_count
        self.data_capture_config = data_capture_config
        self.deployment_config = deployment_config
        self.target = target
        self.deferrable = _default_deferrable() if deferrable is None else deferrable

    @property
    def account(self) -> str:
        return (self.target or {}).get("account_id", "")

    def _spec(self, context, package: dict[str, Any]):
        from mlops.backends.base import EndpointSpec

        return EndpointSpec(
            endpoint_name=self.endpoint_name,
            config_name=_name(context, f"{self.stage}-config"),
            model_uri=package["model_uri"],
            sha256=package["sha256"],
            serverless=dict(self.serverless) if self.serverless else None,
            instance_type=self.instance_type or None,
            initial_instance_count=int(self.initial_instance_count),
            model_package_arn=package["arn"],
            data_capture_config=dict(self.data_capture_config) if self.data_capture_config else None,
            deployment_config=dict(self.deployment_config) if self.deployment_config else None,
        )

    def execute(self, context) -> dict[str, Any]:
        from mlops.deploy.flow import complete_deployment, deploy_version, plan_deployment, start_deployment

        backend = _backend()
        registry, hosting = backend.registry, backend.hosting_for(self.target)
        package, spec = plan_deployment(registry, hosting, self.package, lambda p: self._spec(context, p))
        if not self.deferrable:
            return self._finish(context, backend, package, spec, lambda: deploy_version(
                registry, hosting, package, spec, self.stage, account=self.account))
        handle = start_deployment(registry, hosting, package, spec, self.stage, account=self.account)
        if not handle.done:
            _defer(self, handle, package=package, spec=spec.to_dict())
        return self._finish(context, backend, package, spec, lambda: complete_deployment(
            registry, hosting, package, spec, handle, self.stage, account=self.account))

    def execute_complete(self, context, event: dict[str, Any] | None = None, handle: dict | None = None,
                         package: dict | None = None, spec: dict | None = None) -> dict[str, Any]:
        from mlops.backends.base import EndpointSpec, JobHandle
        from mlops.deploy.flow import complete_deployment

        backend = _backend()
        spec = EndpointSpec.from_dict(spec)
        return self._finish(context, backend, package, spec, lambda: complete_deployment(
            backend.registry, backend.hosting_for(self.target), package, spec, JobHandle(**{**handle, "done": True}),
            self.stage, event=event or {}, account=self.account))

    def _finish(self, context, backend, package: dict[str, Any], spec, deploy) -> dict[str, Any]:
        """Run ``deploy`` (it records the attempt), then tell people: a silent rollback fails the
        task without retries; a prod deploy is announced."""
        from airflow.sdk.exceptions import AirflowFailException

        from mlops.deploy.flow import SilentRollback
        from mlops.notifications import send

        report = (package.get("metadata") or {}).get("report_uri", "")
        try:
            endpoint = deploy()
        except SilentRollback as err:
            send("silent_rollback", context, f"{self.stage} endpoint {spec.endpoint_name} (account "
                 f"{self.account or 'of the project'}) was rolled back: {err}", model_version=package["arn"],
                 report_uri=report, detail={"stage": self.stage, "account": self.account})
            raise AirflowFailException(str(err)) from err  # the alarms said no: a retry would repeat it
        self.log.info("%s endpoint %s (account %s) serves %s at %s", self.stage, endpoint.name,
                      self.account or "of the project's connection", package["arn"], endpoint.url)
        url = backend.resource_url("endpoint", endpoint.name, endpoint.url)
        persist(context, url)
        if self.stage == "prod":
            send("prod_deployed", context, f"prod endpoint {endpoint.name} (account {self.account or 'of the project'}) "
                 f"serves {package['arn']}", model_version=package["arn"], report_uri=report,
                 console_url=url or "", detail={"endpoint": endpoint.name, "account": self.account,
                                                 "config": endpoint.config_name})
        return {**endpoint.to_dict(), "arn": package["arn"], "stage": self.stage, "account": self.account}


class DeleteEndpointOperator(BaseOperator):
    """Delete an endpoint (a teardown: deleting a missing endpoint is not an error).

    :param target: the stage's :class:`~mlops.backends.base.StageTarget` dict (templated): the
        account the endpoint is in. None: the project's own account.
    """

    template_fields: Sequence[str] = ("endpoint_name", "target")

    def __init__(self, *, endpoint_name: str, target: dict[str, Any] | str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.endpoint_name = endpoint_name
        self.target = target

    def execute(self, context) -> None:
        _backend().hosting_for(self.target).delete(self.endpoint_name)
        self.log.info("deleted endpoint %s", self.endpoint_name)


class CheckEndpointOperator(BaseOperator):
    """Test a live endpoint through the ``sagemaker-runtime`` client (same code on both backends).

    Contract (text/csv and application/json), golden rows against the model's offline
    predictions, a malformed payload must be refused by the model with a 4xx (SageMaker's
    ``ModelError`` with that ``OriginalStatusCode``) and leave the endpoint serving, and
    p50/p95 latency over ``requests`` calls. Fails the task listing every failed check.

    :param endpoint: the :class:`~mlops.backends.base.Endpoint` dict (templated).
    :param golden_uri: Parquet rows with the features and the offline ``probability`` (templated).
    :param target: the stage's :class:`~mlops.backends.base.StageTarget` dict (templated): the
        endpoint is invoked from that account. None: the project's own account.
    """

    template_fields: Sequence[str] = ("endpoint", "golden_uri", "requests", "tolerance", "target")

    def __init__(self, *, endpoint: dict[str, Any] | str, golden_uri: str, requests: int | str = 50,
                 tolerance: float | str = 1e-6, target: dict[str, Any] | str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.endpoint = endpoint
        self.golden_uri = golden_uri
        self.requests = requests
        self.tolerance = tolerance
        self.target = target

    def execute(self, context) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowFailException

        from mlops.deploy.endpoint_checks import run_endpoint_tests

        client = _backend().hosting_for(self.target).runtime_client()
        report = run_endpoint_tests(client, self.endpoint["name"], self.golden_uri,
                                    requests=int(self.requests), tolerance=float(self.tolerance))
        for check in report["checks"]:
            self.log.info("%s: %s %s", check["name"], "ok" if check["passed"] else "FAILED", check["detail"])
        if not report["passed"]:
            failed = [c["name"] for c in report["checks"] if not c["passed"]]
            raise AirflowFailException(f"endpoint {self.endpoint['name']} failed: {', '.join(failed)}")
        return report


class AutoMLJobOperator(_JobOperator):
    """Run an Autopilot (AutoML V2) job, or attach to the job of that name if it exists.

    On AWS a running job defers to ``SageMakerAutoMLJobV2Trigger`` (Failed and Stopped fail the
    task with the job's reason); locally FLAML runs in the task. Returns
    ``{"job_name", "status", "candidates"}``, candidates ranked best first.

    :param job_name: job name (templated); a retry reuses it and attaches.
    :param train_uri: labelled training data (templated).
    :param time_budget_s: the job's budget, ``MaxAutoMLJobRuntimeInSeconds`` (templated).
    :param local_time_budget_s: how long the local twin searches, at most ``time_budget_s``
        (templated; ``None``: the whole budget). SageMaker ignores it.
    """

    template_fields: Sequence[str] = ("job_name", "train_uri", "output_uri", "target", "objective",
                                      "time_budget_s", "local_time_budget_s", "max_candidates")
    port_name = "automl"

    def __init__(self, *, job_name: str, train_uri: str, target: str, problem_type: str, objective: str,
                 output_uri: str, max_candidates: int | str = 5, time_budget_s: int | str = 3600,
                 local_time_budget_s: int | str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.job_name = job_name
        self.train_uri = train_uri
        self.target = target
        self.problem_type = problem_type
        self.objective = objective
        self.output_uri = output_uri
        self.max_candidates = max_candidates
        self.time_budget_s = time_budget_s
        self.local_time_budget_s = local_time_budget_s

    def submit(self, port, context):
        local = self.local_time_budget_s
        return port.submit(
            self.job_name, self.train_uri, self.target, self.problem_type, self.objective,
            int(self.max_candidates), int(self.time_budget_s), self.output_uri,
            local_time_budget_s=None if local in (None, "", "None") else int(local),
        )

    def log_result(self, result: dict[str, Any]) -> None:
        for rank, candidate in enumerate(result["candidates"], 1):
            self.log.info("%d. %s %s=%.4f", rank, candidate["name"], candidate["objective_metric"],
                          candidate["objective_value"])

    def persist_link(self, context, kind: str, name: str, result: dict[str, Any]) -> None:
        ranked = result["candidates"]
        persist(context, _backend().resource_url(kind, name, ranked[0]["model_uri"] if ranked else None))


class AutoMLCandidateModelOperator(BaseOperator):
    """Create a model from the best (or a named) Autopilot candidate with inference response keys.

    :param job_name: the AutoML job (templated).
    :param candidate_name: a candidate to use instead of the best (templated; empty = best).
    :param response_keys: e.g. ``["predicted_label", "probability"]``.
    :return: ``{"model_name", "candidate", "response_keys", "probability_of"}``; ``probability_of``
        says what the model's ``probability`` key is the probability of
        (:meth:`~mlops.backends.base.AutoML.probability_of`), for the evaluation.
    """

    template_fields: Sequence[str] = ("job_name", "candidate_name", "model_name", "response_keys")

    def __init__(self, *, job_name: str, model_name: str, response_keys: list[str] | str,
                 candidate_name: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.job_name = job_name
        self.model_name = model_name
        self.response_keys = response_keys
        self.candidate_name = candidate_name

    def execute(self, context) -> dict[str, Any]:
        automl = _backend().automl
        ranked = automl.candidates(self.job_name)
        if self.candidate_name:
            chosen = next((c for c in ranked if c.name == self.candidate_name), None)
            if chosen is None:
                raise ValueError(
                    f"candidate {self.candidate_name!r} is not in job {self.job_name}: "
                    f"{', '.join(c.name for c in ranked)}"
                )
        else:
            chosen = ranked[0]
        model_name = automl.create_model(self.model_name, chosen, list(self.response_keys))
        self.log.info("model %s from candidate %s (%s=%.4f)", model_name, chosen.name,
                      chosen.objective_metric, chosen.objective_value)
        return {"model_name": model_name, "candidate": chosen.to_dict(), "response_keys": list(self.response_keys),
                "probability_of": automl.probability_of(chosen)}


class BatchTransformOperator(_JobOperator):
    """Batch transform: one prediction line per input line, joined to the input as configured.

    On AWS the job defers to the provider's ``SageMakerTrigger(job_type="transform")``; a retry
    re-attaches to a running job, reuses a Completed one and starts ``<job_name>-r2`` only after a
    failed one. Returns the :class:`~mlops.backends.base.TransformResult` dict.

    :param model_name: model to run (templated).
    :param input_uri: headerless CSV file or prefix (templated).
    :param output_uri: output prefix (templated).
    """

    template_fields: Sequence[str] = ("model_name", "input_uri", "output_uri", "job_name", "input_filter",
                                      "output_filter")
    port_name = "transform"

    def __init__(self, *, job_name: str, model_name: str, input_uri: str, output_uri: str,
                 input_filter: str | None = None, join_source: bool = False,
                 output_filter: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.job_name = job_name
        self.model_name = model_name
        self.input_uri = input_uri
        self.output_uri = output_uri
        self.input_filter = input_filter
        self.join_source = join_source
        self.output_filter = output_filter

    def submit(self, port, context):
        from mlops.backends.limits import check_name

        check_name("job_name", self.job_name, "TransformJobName")  # both backends, before any work
        check_name("model_name", self.model_name, "ModelName")
        return port.submit(
            self.job_name, self.model_name, self.input_uri, self.output_uri,
            input_filter=self.input_filter, join_source=self.join_source, output_filter=self.output_filter,
        )

    def log_result(self, result: dict[str, Any]) -> None:
        self.log.info("transform %s: %d input rows -> %d output rows at %s", result["job_name"],
                      result["input_rows"], result["output_rows"], result["output_uri"])

    def persist_link(self, context, kind: str, name: str, result: dict[str, Any]) -> None:
        persist(context, _backend().resource_url(kind, name, result["output_uri"]))
